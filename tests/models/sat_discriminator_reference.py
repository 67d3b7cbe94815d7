"""stable-audio-tools' discriminators (and the EnCodec STFT discriminator they wrap) as test
references: the original modules, imported unchanged, with the real torchaudio (see
``torchaudio_reference``) for the spectrogram."""
from __future__ import annotations

import importlib

import pytest

from models.sat_reference import require_reference
from torchaudio_reference import import_torchaudio


def discriminators():
    """stable-audio-tools' ``models/discriminators.py``, or a module-level skip naming what is missing."""
    require_reference()
    if import_torchaudio() is None:
        pytest.skip("torchaudio is not installed (pip install --no-deps torchaudio): stable-audio-tools' "
                    "STFT discriminator computes its spectrogram with it", allow_module_level=True)
    return importlib.import_module("stable_audio_tools.models.discriminators")
