"""The output folder of a pre-encoding run: items, their check on resume, the run's records.

Layout (what stable-audio-tools' ``PreEncodedDataset`` reads: every ``.npy`` under the folder
with its ``.json`` beside it): ``OUT/<relpath>.npy`` holds an item's latents, float32
(latent_dim, frames); ``OUT/<relpath>.json`` its metadata; ``OUT/details.json`` the run's
settings, ``OUT/report.json`` the last run's summary and failures. An item is written
latents first, metadata last, each to a temporary file renamed into place, so an item whose
``.json`` exists is whole; a kill leaves at most hidden temporary files, removed by the next run.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional

import numpy as np

from .settings import PreEncodeError

DETAILS = "details.json"
REPORT = "report.json"
# atomic_output's temporary names: ".<target name>.<random>.tmp"
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp$")
META_FIELDS = ("path", "relpath", "timestamps", "seconds_start", "seconds_total", "padding_mask", "sample_rate")


def item_paths(out: Path, relpath: str):
    """``(latents .npy, metadata .json)`` of the item ``relpath`` in ``out``."""
    base = out.joinpath(*relpath.split("/"))
    return base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")


def claim_output(out: Path, details: dict) -> None:
    """Make ``out`` this run's folder: create it and write details.json, or check that the one
    there came from the same settings (else PreEncodeError: resuming would mix two kinds of latents)."""
    from ..audio import atomic_output
    out.mkdir(parents=True, exist_ok=True)
    path = out / DETAILS
    if path.exists():
        try:
            earlier = json.loads(path.read_text()).get("settings")
        except (OSError, ValueError, AttributeError) as e:
            raise PreEncodeError(f"{path}: unreadable ({e}); is {out} a pre-encoded folder?") from None
        if earlier != details["settings"]:
            changed = sorted(k for k in set(earlier or {}) | set(details["settings"])
                             if (earlier or {}).get(k) != details["settings"].get(k))
            raise PreEncodeError(f"{out} holds latents made with other settings ({', '.join(changed)} differ); "
                                 f"write to a new folder, or remove it")
        return
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(details, indent=2))


def remove_stale_temporaries(out: Path) -> int:
    """Delete the temporary files an interrupted run left in ``out``; returns how many."""
    removed = 0
    for folder, _, files in os.walk(out):
        for name in files:
            if _TEMP_NAME.match(name):
                try:
                    os.unlink(os.path.join(folder, name))
                    removed += 1
                except OSError:
                    pass
    return removed


def is_complete(out: Path, relpath: str, latent_dim: int, frames: Optional[int]) -> bool:
    """Whether the item ``relpath`` is in ``out`` whole: metadata that parses, names this item and
    has every field; latents that parse as float32 (latent_dim, frames), finite, with one mask
    entry per frame. ``frames`` None (whole files) accepts any positive length."""
    from ..models.npy_file import NpyFileError, read_npy
    npy, meta_path = item_paths(out, relpath)
    if not (npy.is_file() and meta_path.is_file()):  # a FIFO would block the read
        return False
    try:
        meta = json.loads(meta_path.read_text())
        z = read_npy(npy)
    except (OSError, ValueError, NpyFileError):
        return False
    if not isinstance(meta, dict) or meta.get("relpath") != relpath or any(f not in meta for f in META_FIELDS):
        return False
    if z.dtype != np.float32 or z.ndim != 2 or z.shape[0] != latent_dim or z.shape[1] == 0:
        return False
    if frames is not None and z.shape[1] != frames:
        return False
    mask = meta["padding_mask"]
    return isinstance(mask, list) and len(mask) == z.shape[1] and bool(np.isfinite(z).all())


def write_item(out: Path, relpath: str, latents: np.ndarray, meta: dict) -> None:
    """Write one item atomically: latents, then metadata (whose presence marks the item whole)."""
    from ..audio import atomic_output
    npy, meta_path = item_paths(out, relpath)
    npy.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(npy) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(latents, dtype=np.float32))
    with atomic_output(meta_path) as tmp:
        tmp.write_text(json.dumps(meta))


def write_report(out: Path, summary: dict, failures: list, warnings: list) -> Path:
    """Write ``OUT/report.json``: the run's summary, each failed file with its error, and each
    file encoded with a reader's warning (a file cut short)."""
    from ..audio import atomic_output
    path = out / REPORT
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps({"summary": summary, "failed": failures, "warnings": warnings}, indent=2))
    return path
