"""A folder of audio files as autoencoder training data, item by item as stable-audio-tools'
``SampleDataset`` makes them.

An item of file F: F decoded with :func:`audiograd.audio.read_audio` (which refuses broken files)
and resampled to ``sample_rate`` (soxr; stable-audio-tools uses torchaudio's sinc resampler, so
samples and lengths differ slightly); cut at a uniformly random offset or padded with zeros at
the end to ``sample_size`` samples (:func:`pad_crop`); if that chunk is silent (peak below -60
dBFS), the chunk of another file instead; sign flipped with probability 1/2; clamped to [-1, 1];
channels matched last (:func:`force_channels`). All randomness comes from a numpy Generator.

Batches are pure functions of ``(seed, step)`` (see :meth:`AudioFolderDataset.batch_item`), so a
training run resumed at any step sees the batches an uninterrupted run would.
"""
from __future__ import annotations

import math
import os
import stat
import threading
import warnings
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..audio.io import read_audio, resample

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
SILENCE_DB = -60.0
SILENT_TRIES = 16
# Last seed word of the item generators (and of the file orders of negative epochs): numpy ignores
# trailing zero words, so [seed, step, 0] would otherwise give epoch step's order generator.
_ITEM_STREAM, _APART_STREAM = 1, 2


class SkippedAudioWarning(UserWarning):
    """A file under the dataset's folder is left out; the message names it and says why."""


class _Unusable(Exception):
    pass


def list_audio_files(root, extensions: Sequence[str] = AUDIO_EXTENSIONS) -> List[Path]:
    """The audio files under ``root``, recursively, sorted by their path relative to ``root``.

    Extensions match case-insensitively. Hidden files and folders (names starting with ".") are
    left out. Symlinks are followed, each folder listed once (a symlink loop cannot recurse
    forever). An entry with an audio extension that is no regular file (a FIFO would block, a
    dangling or looping symlink cannot be opened) and a folder that cannot be listed give a
    SkippedAudioWarning naming them. Raises ValueError naming ``root`` if it is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"audio folder not found: {root}" if not root.exists() else f"not a folder: {root}")
    exts = {("" if e.startswith(".") else ".") + e.lower() for e in extensions}
    found, seen, pending = [], set(), [root]
    while pending:
        folder = pending.pop()
        try:
            info = folder.stat()
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as e:
            _warn(f"skipping folder {folder}: it cannot be listed ({e.strerror or e})")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            is_audio = os.path.splitext(entry.name)[1].lower() in exts
            try:
                mode = os.stat(path).st_mode
            except OSError as e:
                if is_audio:
                    _warn(f"skipping {path}: it cannot be opened ({e.strerror or e})")
                continue
            if stat.S_ISDIR(mode):
                pending.append(path)
            elif is_audio and stat.S_ISREG(mode):
                found.append(path)
            elif is_audio:
                _warn(f"skipping {path}: not a regular file")
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def random_offset(length: int, sample_size: int, rng: np.random.Generator) -> int:
    """Start of a random crop: uniform over [0, length - sample_size] for audio longer than the
    crop, else 0 without drawing (as stable-audio-tools draws nothing then)."""
    if length <= sample_size:
        return 0
    return int(rng.integers(0, length - sample_size, endpoint=True))


def pad_crop(audio: np.ndarray, sample_size: int, sample_rate: int, offset: int = 0) -> Tuple[np.ndarray, dict]:
    """``audio`` (channels, n) cut to ``sample_size`` samples from ``offset`` or zero-padded at the
    end, and stable-audio-tools' metadata of that chunk (``PadCrop_Normalized_T``): ``timestamps``
    (start and end as fractions of max(n, sample_size)), ``seconds_start`` (floored),
    ``seconds_total`` (ceiled) and ``padding_mask`` (float32, 1 where the chunk holds audio)."""
    channels, n = audio.shape
    upper = max(0, n - sample_size)
    if not 0 <= offset <= upper:
        raise ValueError(f"pad_crop: offset {offset} outside [0, {upper}] for {n} samples")
    kept = min(n, sample_size)
    chunk = np.zeros((channels, sample_size), dtype=np.float32)
    chunk[:, :kept] = audio[:, offset:offset + kept]
    mask = np.zeros(sample_size, dtype=np.float32)
    mask[:kept] = 1
    span = upper + sample_size
    return chunk, {"timestamps": (offset / span, (offset + sample_size) / span),
                   "seconds_start": math.floor(offset / sample_rate),
                   "seconds_total": math.ceil(n / sample_rate), "padding_mask": mask}


def force_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """stable-audio-tools' channel rule: to mono, the mean of all channels (``Mono``); to stereo, mono
    duplicated and channels past the second dropped (``Stereo``). Beyond stereo, the same rule with
    ``channels`` in place of 2; fewer channels than that, but more than one, raise ValueError."""
    have = audio.shape[0]
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    if have == 1:
        return np.repeat(audio, channels, axis=0)
    if have < channels:
        raise ValueError(f"cannot make {channels} channels of {have}")
    return audio[:channels]


def is_silent(audio: np.ndarray) -> bool:
    """True when the loudest sample is below -60 dBFS, the level below which stable-audio-tools
    replaces a chunk."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return peak == 0.0 or 20 * math.log10(peak) < SILENCE_DB


def _warn(message: str) -> None:
    warnings.warn(SkippedAudioWarning(message), stacklevel=3)


class AudioFolderDataset:
    """Fixed-size training chunks of the audio files under ``root`` (see the module docstring).

    ``channels``: 1 (mono), 2 (stereo) or more (see :func:`force_channels`; a file that cannot
    give that many is skipped). ``random_crop`` false crops at offset 0; ``augment_phase`` false
    never flips; ``skip_silence`` false keeps silent chunks (with it on, after SILENT_TRIES silent
    chunks in a row the first of them is kept, where stable-audio-tools would draw forever).
    A file that cannot be used (it cannot be decoded, has NaN samples or an absurd header, too few
    channels, or is silent throughout) gives one SkippedAudioWarning and lands in ``skipped``
    (path -> reason); it is not read again.
    """

    def __init__(self, root, sample_size: int, sample_rate: int, channels: int, seed: int = 0,
                 random_crop: bool = True, augment_phase: bool = True, skip_silence: bool = True,
                 extensions: Sequence[str] = AUDIO_EXTENSIONS):
        for name, value in (("sample_size", sample_size), ("sample_rate", sample_rate), ("channels", channels)):
            if int(value) != value or value < 1:
                raise ValueError(f"AudioFolderDataset: {name} must be a positive integer, got {value!r}")
        if int(seed) != seed or seed < 0:
            raise ValueError(f"AudioFolderDataset: seed must be a non-negative integer, got {seed!r}")
        self.root = Path(root)
        self.sample_size, self.sample_rate, self.channels = int(sample_size), int(sample_rate), int(channels)
        self.seed, self.random_crop, self.augment_phase = int(seed), random_crop, augment_phase
        self.skip_silence = skip_silence
        self.files = list_audio_files(self.root, extensions)
        if not self.files:
            raise ValueError(f"no audio files ({', '.join(extensions)}) under {self.root}")
        self.skipped: Dict[str, str] = {}
        self._lock = threading.Lock()
        self._permutations: Dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def item(self, index: int, rng: np.random.Generator) -> Tuple[np.ndarray, dict]:
        """``(audio, info)`` from file ``index`` (listing order), randomness from ``rng``: audio
        float32 (channels, sample_size); info as stable-audio-tools' (path, relpath, timestamps,
        seconds_start, seconds_total, padding_mask, sample_rate). In place of an unusable file or a
        silent chunk, the next files in listing order are tried."""
        return self._draw(range(len(self.files)), index % len(self.files), rng)

    def batch_item(self, step: int, position: int, batch_size: int) -> Tuple[np.ndarray, dict]:
        """Item ``position`` of batch ``step``: a pure function of (seed, step, position, batch_size)
        and the file list.

        Items run through epochs: item g = step * batch_size + position is entry g % len(self) of
        epoch g // len(self)'s file order, ``np.random.default_rng([seed, epoch]).permutation``;
        an unusable file or silent chunk is replaced by the next entries of that order. Crop and
        flip draw from ``np.random.default_rng([seed, step, position, 1])``. Negative steps give
        batches apart from the training stream (a fixed demo batch, say): their epochs' orders and
        items draw from ``[seed, -epoch, 1]`` and ``[seed, -step, position, 2]``.
        """
        if not 0 <= position < batch_size:
            raise ValueError(f"batch_item: need 0 <= position < batch_size, got {position}, {batch_size}")
        epoch, entry = divmod(step * batch_size + position, len(self.files))
        words = [step, position, _ITEM_STREAM] if step >= 0 else [-step, position, _APART_STREAM]
        rng = np.random.default_rng([self.seed, *words])
        return self._draw(self._permutation(epoch), entry, rng)

    def batch(self, step: int, batch_size: int) -> np.ndarray:
        """Batch ``step``: float32 (batch_size, channels, sample_size), see :meth:`batch_item`."""
        if batch_size < 1:
            raise ValueError(f"batch: batch_size must be at least 1, got {batch_size}")
        return np.stack([self.batch_item(step, p, batch_size)[0] for p in range(batch_size)])

    def _permutation(self, epoch: int) -> np.ndarray:
        with self._lock:
            order = self._permutations.get(epoch)
            if order is None:
                words = [epoch] if epoch >= 0 else [-epoch, _ITEM_STREAM]
                order = np.random.default_rng([self.seed, *words]).permutation(len(self.files))
                if len(self._permutations) >= 4:
                    del self._permutations[min(self._permutations)]
                self._permutations[epoch] = order
            return order

    def _draw(self, order: Sequence[int], start: int, rng: np.random.Generator) -> Tuple[np.ndarray, dict]:
        n, silent = len(order), []
        for k in range(n):
            path = self.files[order[(start + k) % n]]
            if str(path) in self.skipped:
                continue
            try:
                audio = self._load(path)
            except _Unusable as e:
                self._skip(path, str(e))
                continue
            offset = random_offset(audio.shape[1], self.sample_size, rng) if self.random_crop else 0
            chunk, info = pad_crop(audio, self.sample_size, self.sample_rate, offset)
            if not (self.skip_silence and is_silent(chunk)):
                return self._finish(path, chunk, info, rng)
            silent.append((path, chunk, info))
            if len(silent) == SILENT_TRIES:
                break
        if silent:
            return self._finish(*silent[0], rng)
        examples = "; ".join(f"{p}: {r}" for p, r in list(self.skipped.items())[:3])
        raise ValueError(f"no usable audio files under {self.root}: all {n} were skipped (e.g. {examples})")

    def _load(self, path: Path) -> np.ndarray:
        try:
            audio, rate = read_audio(path)
            audio = resample(audio, rate, self.sample_rate)
        except (OSError, ValueError, RuntimeError) as e:
            message = str(e)
            raise _Unusable(message[len(f"{path}: "):] if message.startswith(f"{path}: ") else message) from None
        if audio.shape[1] == 0:
            raise _Unusable(f"no samples left after resampling to {self.sample_rate} Hz")
        if 1 < audio.shape[0] < self.channels:
            raise _Unusable(f"{audio.shape[0]} channels, too few for {self.channels}")
        if self.skip_silence and is_silent(audio):
            raise _Unusable(f"silent throughout (peak below {SILENCE_DB:.0f} dBFS)")
        return audio

    def _skip(self, path: Path, reason: str) -> None:
        with self._lock:
            if str(path) in self.skipped:
                return
            self.skipped[str(path)] = reason
        warnings.warn(SkippedAudioWarning(f"skipping {path}: {reason}"), stacklevel=4)

    def _finish(self, path: Path, chunk: np.ndarray, info: dict, rng: np.random.Generator):
        if self.augment_phase and rng.random() < 0.5:
            chunk = -chunk
        audio = force_channels(np.clip(chunk, -1.0, 1.0), self.channels)
        info = {"path": str(path), "relpath": path.relative_to(self.root).as_posix(), **info,
                "sample_rate": self.sample_rate}
        return np.ascontiguousarray(audio, dtype=np.float32), info
