"""torchaudio for the tests that import stable-audio-tools modules.

torchaudio has no build for the pinned PyTorch. Its newest wheel installs with ``--no-deps`` and
its Python code runs unchanged (the spectrogram of stable-audio-tools' STFT discriminator is
``torch.stft`` plus a window normalization), but its native extension is built against another
PyTorch and does not load. ``import_torchaudio()`` imports the real package with only the
extension loader replaced by a stand-in that reports the extension absent (torchaudio's own
fallback when the library file is missing).
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types


def _drop_torchaudio() -> None:
    for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
        del sys.modules[name]


def _extension_standin() -> None:
    ext = types.ModuleType("torchaudio._extension")
    ext.__doc__ = "stand-in: torchaudio's native extension is built for another PyTorch; it is reported absent"
    ext.__spec__ = importlib.machinery.ModuleSpec("torchaudio._extension", None)
    ext._IS_TORCHAUDIO_EXT_AVAILABLE = False
    ext._IS_ALIGN_AVAILABLE = False

    def fail_if_no_align(fn):
        def fail(*args, **kwargs):
            raise RuntimeError("torchaudio's alignment extension is not available")
        return fail
    ext.fail_if_no_align = fail_if_no_align
    ext._load_lib = lambda lib: False
    sys.modules["torchaudio._extension"] = ext


def import_torchaudio():
    """The real torchaudio package (its Python code), or None when it is not installed."""
    current = sys.modules.get("torchaudio")
    if current is not None and hasattr(getattr(current, "transforms", None), "Spectrogram"):
        return current
    _drop_torchaudio()  # a stand-in of another test helper, or nothing
    if importlib.util.find_spec("torchaudio") is None:
        return None
    try:
        return importlib.import_module("torchaudio")
    except (ImportError, OSError):  # the native extension does not load with this PyTorch
        _drop_torchaudio()
    _extension_standin()
    return importlib.import_module("torchaudio")
