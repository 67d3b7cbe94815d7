"""The two stages of pre-encoding, as plain callables that Ray runs (and a plain loop can too).

- :func:`prepare_row` (a CPU task per file): skip an item already complete in the output, else
  decode, resample and pad/crop it (:mod:`.items`);
- :class:`ItemEncoder` (an actor: the model is loaded once): encode a batch of prepared items
  and write each one (:mod:`.store`).

Rows are dicts of plain values, so they travel through Ray Data's Arrow blocks: the audio goes
as bytes with its shape, the metadata as JSON text. Every row ends with a ``status`` of
"done", "skipped" or "failed" (with ``error``), ``seconds`` of audio it held, and any
``warning`` of its reader (a file cut short).
"""
from __future__ import annotations

import json
import os
import socket
from typing import Optional

import numpy as np

from .items import latent_padding_mask, load_item
from .settings import PreEncodeSettings
from .store import is_complete, write_item

TODO, DONE, SKIPPED, FAILED = "todo", "done", "skipped", "failed"
_MAX_ERROR = 500


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR - 3] + "..."


def expected_frames(settings: PreEncodeSettings, ratio: int) -> Optional[int]:
    """Latent frames of every item (None for whole files: each has its own length)."""
    return None if settings.chunked else settings.sample_size // ratio


def prepare_row(row: dict, settings: PreEncodeSettings, geometry: tuple) -> dict:
    """One file's row for the encoder: its prepared audio, or why there is nothing to encode."""
    sample_rate, channels, latent_dim, ratio = geometry
    out = {"path": row["path"], "relpath": row["relpath"], "status": TODO, "error": "", "audio": b"",
           "channels": 0, "samples": 0, "meta": "", "seconds": 0.0, "warning": ""}
    if is_complete(settings.output, row["relpath"], latent_dim, expected_frames(settings, ratio)):
        out["status"] = SKIPPED
        return out
    try:
        audio, meta, notes = load_item(row["path"], row["relpath"], sample_rate, channels,
                                       None if settings.chunked else settings.sample_size)
        if audio.shape[1] < ratio:
            raise ValueError(f"{row['path']}: {audio.shape[1]} samples is shorter than one latent "
                             f"({ratio} samples at {sample_rate} Hz)")
    except Exception as e:  # a broken file is reported, never fatal
        out.update(status=FAILED, error=_one_line(e))
        return out
    out.update(audio=audio.tobytes(), channels=audio.shape[0], samples=audio.shape[1], meta=json.dumps(meta),
               seconds=meta["audio_samples"] / sample_rate, warning="; ".join(notes))
    return out


def load_encoder_model(settings: PreEncodeSettings, on_gpu: bool = False):
    """The OobleckVAE the settings name (seeded random weights for ``random_weights``), on the GPU
    (the one Ray gave this worker) or the host."""
    from .. import manual_seed
    from ..models.oobleck import OobleckVAE
    if settings.random_weights:
        manual_seed(0)
        model = OobleckVAE(settings.config)
    else:
        model = OobleckVAE.from_pretrained(settings.checkpoint, config=settings.config)
    return model.cuda() if on_gpu else model


class ItemEncoder:
    """Encodes batches of prepared rows and writes each item; made once per worker."""

    def __init__(self, settings: PreEncodeSettings, on_gpu: bool = False, threads: Optional[int] = None):
        from ..config import config
        if threads:
            config.num_threads = int(threads)
        self.settings = settings
        self.model = load_encoder_model(settings, on_gpu)
        self.precision = settings.precision if on_gpu else "fp32"
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict) -> dict:
        """Encode the "todo" rows of ``batch`` (columns of equal length), write them; return the
        rows' outcomes (path, relpath, status, error, warning, seconds, worker)."""
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        todo = [r for r in rows if r["status"] == TODO]
        for group in ([[r] for r in todo] if self.settings.chunked else [todo] if todo else []):
            self._encode_group(group)
        keys = ("path", "relpath", "status", "error", "warning", "seconds")
        result = {k: [r[k] for r in rows] for k in keys}
        result["worker"] = [self.worker if r["status"] == DONE else "" for r in rows]
        return {k: np.asarray(v) for k, v in result.items()}

    def _encode_group(self, group: list) -> None:
        from ..config import config
        from ..models.chunked import encode_chunked
        s = self.settings
        # set around the call only: in a plain loop this is the caller's process
        previous, config.cuda_matmul_precision = config.cuda_matmul_precision, self.precision
        try:
            audio = np.stack([np.frombuffer(r["audio"], dtype=np.float32).reshape(int(r["channels"]), int(r["samples"]))
                              for r in group])
            seeds = [s.item_seed(r["relpath"]) for r in group] if s.sample else None
            latents = encode_chunked(self.model, audio, chunk_samples=s.chunk * self.model.downsampling_ratio,
                                     margin=s.margin, sample=s.sample, seed=seeds)
        except Exception as e:
            for r in group:
                r.update(status=FAILED, error=f"{r['path']}: cannot encode ({_one_line(e)})")
            return
        finally:
            config.cuda_matmul_precision = previous
        for r, z in zip(group, latents):
            try:
                meta = json.loads(r["meta"])
                sample_size = int(r["samples"])
                meta["padding_mask"] = latent_padding_mask(meta.pop("audio_samples"), sample_size, z.shape[1])
                write_item(s.output, r["relpath"], z, meta)
                r.update(status=DONE)
            except Exception as e:
                r.update(status=FAILED, error=f"{r['path']}: cannot write its latents ({_one_line(e)})")
