"""Training checkpoints in one safetensors file: model weights, optimizer state, and extras.

Tensors are stored under ``model.<key>`` and ``optim.<param index>.<name>``; everything that
is not an array (hyperparameters, step counters, the caller's ``extra`` dict) goes into the
file's JSON metadata. The file is written to a temporary name and renamed, so an interrupted
save never leaves a half-written checkpoint in place of a good one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from ..audio.output import atomic_output
from ..models.checkpoint import load_state


def split_optimizer(state: Dict[str, Any], prefix: str = "optim"):
    """An optimizer's ``state_dict`` as (arrays named ``<prefix>.<param index>.<name>``, a
    JSON-serializable dict of the rest)."""
    arrays, scalars = {}, {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, np.ndarray) and value.ndim:
                arrays[f"{prefix}.{index}.{name}"] = value
            else:  # step counters and other scalars travel in the metadata
                scalars.setdefault(str(index), {})[name] = value.item() if isinstance(value, np.ndarray) else value
    return arrays, {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(path, model, optimizer=None, extra: Optional[Dict[str, Any]] = None) -> None:
    """Save ``model`` (and ``optimizer``, and a JSON-serializable ``extra`` dict) atomically.

    Missing parent folders are created; the file is written like every audiograd output
    (:func:`audiograd.audio.output.atomic_output`: regular files only, symlinks written
    through, the previous checkpoint intact on any failure).
    """
    from safetensors.numpy import save_file
    tensors = {f"model.{k}": np.ascontiguousarray(v.numpy()) for k, v in model.state_dict().items()}
    meta: Dict[str, Any] = {"extra": extra or {}}
    if optimizer is not None:
        arrays, meta["optimizer"] = split_optimizer(optimizer.state_dict())
        tensors.update({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={"audiograd": json.dumps(meta)})


def join_optimizer(tensors: Dict[str, np.ndarray], saved: Dict[str, Any], prefix: str = "optim") -> Dict[str, Any]:
    """The inverse of :func:`split_optimizer`: an optimizer ``state_dict``."""
    state: Dict[int, Dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entries in saved["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": saved["param_groups"]}


def load_checkpoint(path, model, optimizer=None) -> Dict[str, Any]:
    """Restore ``model`` (strictly) and ``optimizer`` from ``path``; returns the saved ``extra``."""
    from ..models.safetensors_file import safetensors_metadata
    tensors = load_state(path)  # validates the whole file first, naming it in any error
    text = safetensors_metadata(Path(path)).get("audiograd")
    try:
        meta = json.loads(text) if text else None
    except ValueError as e:
        raise ValueError(f"{path}: audiograd metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or "extra" not in meta:
        raise ValueError(f"{path}: not an audiograd training checkpoint (no audiograd metadata)")
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is not None:
        if "optimizer" not in meta:
            raise ValueError(f"{path}: checkpoint holds no optimizer state")
        try:
            optimizer.load_state_dict(join_optimizer(tensors, meta["optimizer"]))
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
            raise ValueError(f"{path}: malformed optimizer state ({type(e).__name__}: {e})") from None
    return meta["extra"]
