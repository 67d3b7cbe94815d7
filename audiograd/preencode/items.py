"""Turn one audio file into the model's input and stable-audio-tools' metadata for it.

This follows stable-audio-tools' ``SampleDataset`` (its audio-folder loader, which its
``pre_encode.py`` runs) with its augmentations off, so that a file always gives the same item:

- resampled to the model's rate (soxr here; torchaudio's sinc resampler there);
- padded with zeros or cropped to ``sample_size`` samples from the start (``random_crop``
  false) by the rule of its ``PadCrop_Normalized_T``, which gives ``timestamps``,
  ``seconds_start``, ``seconds_total`` and the padding mask;
- refused as silent when its loudest sample is below -60 dBFS (that loader drops such items);
- clamped to [-1, 1], then given the model's channel count (mono is duplicated, extra channels
  are dropped, several become mono by their mean), in that order;
- no random phase flip.

With ``sample_size=None`` (``--chunked``) the whole file is one item, with no padding.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Optional, Tuple

import numpy as np

SILENCE_DB = -60.0


class SilentAudio(ValueError):
    """An item whose loudest sample is below -60 dBFS: stable-audio-tools' loader skips these."""


def load_item(path: str, relpath: str, sample_rate: int, channels: int,
              sample_size: Optional[int]) -> Tuple[np.ndarray, dict, list]:
    """``(audio, metadata, warnings)`` of the file ``path``: audio float32 (channels, samples)
    ready for the encoder, metadata with the fields of stable-audio-tools' pre-encoder except
    ``padding_mask`` (see :func:`latent_padding_mask`), warnings as lines of text."""
    from ..audio import read_audio, resample
    from .listing import local_copy
    start = time.time()
    with warnings.catch_warnings(record=True) as caught, local_copy(path) as local:
        warnings.simplefilter("always")
        audio, sr = read_audio(local)
    notes = [str(w.message).replace(str(local), path) for w in caught]
    if sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
    audio, meta = pad_crop(audio, sample_rate, sample_size)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak == 0.0 or 20 * math.log10(peak) < SILENCE_DB:
        raise SilentAudio(f"{path}: silent (peak below {SILENCE_DB:.0f} dBFS); stable-audio-tools' loader "
                          f"drops such items")
    audio = fit_channels(np.clip(audio, -1.0, 1.0), channels)
    info = {"path": path, "relpath": relpath, **meta, "sample_rate": int(sample_rate),
            "load_time": time.time() - start}
    return np.ascontiguousarray(audio, dtype=np.float32), info, notes


def pad_crop(audio: np.ndarray, sample_rate: int, sample_size: Optional[int]) -> Tuple[np.ndarray, dict]:
    """``audio`` padded or cropped to ``sample_size`` from its start, and the metadata
    stable-audio-tools computes for it (``audio_samples`` is the mask's count of real samples)."""
    n = audio.shape[1]
    size = n if sample_size is None else int(sample_size)
    upper_bound = max(0, n - size)
    out = np.zeros((audio.shape[0], size), dtype=np.float32)
    out[:, :min(n, size)] = audio[:, :size]
    meta = {"timestamps": [0 / (upper_bound + size), size / (upper_bound + size)],
            "seconds_start": 0, "seconds_total": math.ceil(n / sample_rate),
            "audio_samples": min(n, size)}
    return out, meta


def fit_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """stable-audio-tools' channel rule: to stereo, mono is duplicated and more channels are cut to
    the first two; to mono, channels are averaged."""
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    if audio.shape[0] == 1:
        return np.repeat(audio, channels, axis=0)
    if audio.shape[0] < channels:
        raise ValueError(f"cannot make {channels} channels of {audio.shape[0]}")
    return audio[:channels]


def latent_padding_mask(audio_samples: int, sample_size: int, frames: int) -> list:
    """The padding mask at the latent rate: 1 where the item held audio, as pre_encode.py gets it
    from the sample mask with ``F.interpolate(mode="nearest")`` (source index floor(i * in / out),
    computed in float32 as PyTorch does)."""
    scale = np.float32(sample_size / frames)
    src = np.minimum(np.floor(np.arange(frames, dtype=np.float32) * scale).astype(np.int64), sample_size - 1)
    return (src < audio_samples).astype(int).tolist()
