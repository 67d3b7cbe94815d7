"""stable-audio-tools' dataset module (its audio-folder loader and its pre-encoded loader) as the
reference of the pre-encoding tests, and a small dataset of good and broken files.

The module imports torchaudio for decoding and for transforms that these loaders' paths do not
run (see ``torchaudio_reference``). Where it is not installed, a stand-in module whose
functions raise is put in its place, and files are decoded with soundfile (at the model's rate,
so no resampling is involved). ``sat_dataset()`` skips the calling test, with the reason, when
the module still cannot be imported.
"""
from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from torchaudio_reference import import_torchaudio

SAMPLE_RATE = 44100


def _torchaudio_stand_in() -> None:
    def unavailable(*args, **kwargs):
        raise RuntimeError("torchaudio is not installed (a test stand-in)")
    module = types.ModuleType("torchaudio")
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.Resample = transforms.Loudness = unavailable
    module.transforms, module.load = transforms, unavailable
    # a spec, as importlib.util.find_spec (which transformers calls on import) requires of a module
    module.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    transforms.__spec__ = importlib.machinery.ModuleSpec("torchaudio.transforms", None)
    sys.modules["torchaudio"], sys.modules["torchaudio.transforms"] = module, transforms


def sat_dataset():
    """stable_audio_tools.data.dataset, or skip the test with the reason."""
    if import_torchaudio() is None:
        _torchaudio_stand_in()
    try:
        from stable_audio_tools.data import dataset
    except ImportError as e:
        pytest.skip(f"stable-audio-tools' dataset module cannot be imported: {e}")
    return dataset


def sat_data_utils():
    """stable_audio_tools.data.utils (PadCrop_Normalized_T, Stereo, Mono), or skip the test."""
    sat_dataset()
    from stable_audio_tools.data import utils
    return utils


def sample_dataset(folder: Path, sample_size: int):
    """stable-audio-tools' SampleDataset over ``folder`` as pre_encode.py drives it with
    ``random_crop`` false, its random phase flip off, files decoded with soundfile."""
    import soundfile as sf
    import torch
    dataset = sat_dataset()

    class SoundfileSampleDataset(dataset.SampleDataset):
        def load_file(self, filename):
            audio, sr = sf.read(filename, dtype="float32", always_2d=True)
            assert sr == self.sr, f"{filename}: the reference runs without a resampler"
            return torch.from_numpy(np.ascontiguousarray(audio.T))

    ds = SoundfileSampleDataset([dataset.LocalDatasetConfig(id="test", path=str(folder))],
                                sample_size=sample_size, sample_rate=SAMPLE_RATE, random_crop=False)
    ds.augs = None
    return ds


def write_dataset(root: Path, broken: bool = True) -> dict:
    """Short files under ``root`` (0.03 to 0.38 s): good ones of several lengths, channel counts and formats
    (peaks below 1, so clamping changes nothing) and, with ``broken``, files no reader can use.
    Returns {"good": [relpath...], "broken": {relpath: what is wrong}}."""
    import soundfile as sf
    rng = np.random.default_rng(1)
    good = []
    for i in range(18):
        samples = 1304 + 904 * i   # multiples of 8: the chunked encoder's windows all have one length
        channels = 1 if i % 3 == 0 else 2
        audio = 0.2 * np.sin(np.arange(samples) * (0.01 + 0.003 * i))[:, None]
        audio = (audio + 0.05 * rng.standard_normal((len(audio), channels))).astype(np.float32)
        ext, subtype = [("wav", "FLOAT"), ("flac", "PCM_16"), ("wav", "PCM_16")][i % 3]
        rel = f"{'deep/er/' if i % 4 == 0 else ''}clip{i:02d}.{ext}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, audio, SAMPLE_RATE, subtype=subtype)
        good.append(rel)
    bad = {}
    if broken:
        (root / "garbage.wav").write_bytes(rng.bytes(3000))
        bad["garbage.wav"] = "not a readable audio file"
        (root / "empty.flac").write_bytes(b"")
        bad["empty.flac"] = "not a readable audio file"
        sf.write(root / "silent.wav", np.zeros((4000, 2), np.float32), SAMPLE_RATE)
        bad["silent.wav"] = "silent"
        nan = np.full((3000, 2), 0.1, np.float32)
        nan[1234, 1] = np.nan
        sf.write(root / "nan.wav", nan, SAMPLE_RATE, subtype="FLOAT")
        bad["nan.wav"] = "audio must be finite"
        header_only = root / "headeronly.wav"
        sf.write(header_only, np.zeros((0, 2), np.float32), SAMPLE_RATE)
        bad["headeronly.wav"] = "holds no audio samples"
    (root / ".hidden.wav").write_bytes(b"")   # hidden: never listed
    (root / "notes.txt").write_text("not audio")
    return {"good": sorted(good), "broken": bad}
