"""Read and write audio files (soundfile), resample (soxr), match channel counts.

Audio arrays are float32 shaped (channels, samples). Writes are atomic: the data goes to a
temporary file in the target's directory which then replaces the target, so a failure never
leaves a partial or truncated file behind.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Tuple, Union

import numpy as np

PathLike = Union[str, os.PathLike]


class AudioFileError(ValueError):
    """An audio file that cannot be read or written; the message names the file."""


def read_audio(path: PathLike) -> Tuple[np.ndarray, int]:
    """Decode a WAV/FLAC/OGG (anything libsndfile reads) file.

    Returns ``(audio, sample_rate)`` with ``audio`` float32 shaped (channels, samples).
    Raises FileNotFoundError for a missing file and AudioFileError for an unreadable one.
    """
    import soundfile as sf
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioFileError(f"{path}: not a readable audio file ({e})") from None
    return np.ascontiguousarray(data.T), int(sr)


@contextlib.contextmanager
def atomic_output(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    On any exception the temporary file is removed, ``path`` is left untouched and the
    exception propagates. ``suffix`` keeps an extension on the temporary name for writers
    that choose a format from it.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {directory}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(fd)
    tmp = Path(tmp)
    try:
        # mkstemp makes the file private; give it the mode a plain open() would (or the target's)
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_audio(path: PathLike, audio: np.ndarray, sample_rate: int, subtype: str = None) -> None:
    """Write ``audio`` (channels, samples) atomically; the format follows the extension.

    ``subtype`` is soundfile's (e.g. "PCM_16", "FLOAT"); default: FLOAT for WAV (no clipping
    of model output), the format's default otherwise.
    """
    import soundfile as sf
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"write_audio: expected (channels, samples), got shape {audio.shape}")
    path = Path(path)
    fmt = path.suffix.lstrip(".").upper() or "WAV"
    if fmt not in sf.available_formats():
        raise AudioFileError(f"{path}: unknown audio file extension {path.suffix!r}")
    if subtype is None and fmt == "WAV":
        subtype = "FLOAT"
    with atomic_output(path) as tmp:
        try:
            sf.write(str(tmp), audio.T, int(sample_rate), format=fmt, subtype=subtype)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            raise AudioFileError(f"{path}: cannot write audio ({e})") from None


def resample(audio: np.ndarray, from_sr: int, to_sr: int) -> np.ndarray:
    """Resample (channels, samples) audio from ``from_sr`` to ``to_sr`` Hz with soxr (HQ)."""
    import soxr
    audio = np.asarray(audio, dtype=np.float32)
    if int(from_sr) == int(to_sr):
        return audio
    if from_sr <= 0 or to_sr <= 0:
        raise ValueError(f"resample: sample rates must be positive, got {from_sr} -> {to_sr}")
    out = soxr.resample(np.ascontiguousarray(audio.T), int(from_sr), int(to_sr), quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Convert (channels, samples) audio to ``channels`` channels.

    Mono to N channels duplicates; N channels to mono averages; any other mismatch raises
    ValueError naming both counts.
    """
    audio = np.asarray(audio, dtype=np.float32)
    have = audio.shape[0]
    if have == channels:
        return audio
    if have == 1:
        return np.repeat(audio, channels, axis=0)
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    raise ValueError(f"cannot convert audio with {have} channels to {channels} channels")
