"""Read and write audio files (soundfile), resample (soxr), match channel counts.

Audio arrays are float32 shaped (channels, samples). Reads refuse what would silently give
wrong results (absurd sample rates or channel counts, NaN/inf samples, empty files) and warn
about files cut short. Writes go through :func:`audiograd.audio.output.atomic_output`: only
regular files, atomically, never leaving a partial file behind.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Tuple

import numpy as np

from .declared import declared_frames
from .output import PathLike, atomic_output


class AudioFileError(ValueError):
    """An audio file that cannot be read or written; the message names the file."""


class TruncatedAudioWarning(UserWarning):
    """An audio file holds fewer frames than its header promises; what is there was read."""


# Sample rates outside this range are refused: below 1 kHz no audio model or codec makes
# sense (a corrupt header claiming 1 Hz would turn a short file into hours of resampled
# work), and 768 kHz is the highest rate audio interfaces and formats use.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
# Third-order ambisonics uses 16 channels and large film formats 64; more is a broken header.
MAX_CHANNELS = 256
_BLOCK_FRAMES = 4096  # small: a decode error part-way loses at most one block


def probe_audio(path: PathLike):
    """Check an audio file's header without decoding it; returns soundfile's ``info``.

    Cheap enough to run before any work: refuses missing files (FileNotFoundError), files
    libsndfile cannot open, sample rates outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] Hz, zero
    or more than MAX_CHANNELS channels (AudioFileError, naming the file).
    """
    import soundfile as sf
    path = Path(path)
    if not path.is_file():
        if path.exists():  # a FIFO would block, a device never end
            raise AudioFileError(f"{path}: not a regular file")
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as e:
        raise AudioFileError(f"{path}: not a readable audio file ({e})") from None
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioFileError(f"{path}: sample rate {info.samplerate} Hz is outside the supported range "
                             f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz (corrupt header?)")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioFileError(f"{path}: {info.channels} channels (supported: 1 to {MAX_CHANNELS})")
    return info


def read_audio(path: PathLike) -> Tuple[np.ndarray, int]:
    """Decode a WAV/FLAC/OGG (anything libsndfile reads) file.

    Returns ``(audio, sample_rate)`` with ``audio`` float32 shaped (channels, samples).
    Raises FileNotFoundError for a missing file and AudioFileError (naming the file) for one
    that :func:`probe_audio` refuses, that cannot be decoded, that holds no samples, or whose
    samples are not all finite (the message gives the first NaN/inf: channel, sample index and
    time). A file shorter than its header promises (a WAV data chunk or FLAC STREAMINFO
    claiming more frames than the file holds, as a copy or recording cut short leaves it) is
    read anyway, with a TruncatedAudioWarning giving the frames expected and read: the part
    that is there is intact and usually wanted, and the warning keeps the loss visible.
    """
    import soundfile as sf
    path = Path(path)
    info = probe_audio(path)
    promised = declared_frames(path, info)
    blocks, error = [], None
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                try:
                    block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as e:
                    error = e
                    break
                if not len(block):
                    break
                blocks.append(block)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as e:
        raise AudioFileError(f"{path}: not a readable audio file ({e})") from None
    frames = sum(len(b) for b in blocks)
    if error is not None and (not frames or promised is None or frames >= promised):
        raise AudioFileError(f"{path}: cannot decode the audio after {frames} frames ({error})")
    if frames == 0:
        raise AudioFileError(f"{path}: the file holds no audio samples")
    if promised is not None and frames < promised:
        warnings.warn(TruncatedAudioWarning(
            f"{path}: the file is shorter than its header says: {promised} frames expected, {frames} read "
            f"({(promised - frames) / info.samplerate:.3f} s missing); using the frames that are there"),
            stacklevel=2)
    audio = np.ascontiguousarray(np.concatenate(blocks).T)
    check_finite(audio, info.samplerate, path)
    return audio, int(info.samplerate)


def read_audio_reporting(path: PathLike, report: Callable[[str], None]) -> Tuple[np.ndarray, int]:
    """:func:`read_audio`, its warnings (a file cut short) passed to ``report`` as one line of
    text each, for command-line tools that print them rather than Python's warning format."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = read_audio(path)
    for w in caught:
        report(f"warning: {w.message}")
    return result


def check_finite(audio: np.ndarray, sample_rate: int, path: PathLike) -> None:
    """Raise AudioFileError naming ``path`` and the first (in time) NaN or infinite sample."""
    bad = ~np.isfinite(audio)
    if not bad.any():
        return
    sample = int(np.argmax(bad.any(axis=0)))
    channel = int(np.argmax(bad[:, sample]))
    value = audio[channel, sample]
    raise AudioFileError(f"{path}: sample {sample} of channel {channel} (at {sample / sample_rate:.6f} s) is "
                         f"{value}; audio must be finite ({int(bad.sum())} bad samples in all)")


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
