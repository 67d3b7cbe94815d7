"""Import stable-audio-tools' Oobleck classes without its unrelated heavy dependencies.

stable-audio-tools imports diffusion, transformer, inference and hub modules (and torchaudio,
huggingface_hub, ...) at package level although ``OobleckEncoder``, ``OobleckDecoder`` and
``VAEBottleneck`` only need torch, einops and alias-free-torch. ``load_reference`` puts empty
stand-ins for those unrelated modules into ``sys.modules`` and then imports the original
``models/autoencoders.py``, ``models/blocks.py`` and ``models/bottleneck.py`` unchanged, so the
reference is the original code. Only for parity checks and tests: the stand-ins stay registered.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import NamedTuple

INSTALL_HINT = ("pip install torch && pip install --no-deps stable-audio-tools einops alias-free-torch "
                "(the parity check needs PyTorch and stable-audio-tools' model code)")

# module -> names it must provide; every one of these is imported by autoencoders.py but unused
# by the Oobleck classes
_STUBS = {
    "inference": (),
    "inference.sampling": ("sample",),
    "inference.utils": ("prepare_audio",),
    "models.diffusion": ("ConditionedDiffusionModel", "DAU1DCondWrapper", "UNet1DCondWrapper", "DiTWrapper"),
    "models.factory": ("create_pretransform_from_config", "create_bottleneck_from_config"),
    "models.pretransforms": ("Pretransform", "AutoencoderPretransform"),
    "models.transformer": ("ContinuousTransformer", "TransformerBlock", "RotaryEmbedding"),
}
_PACKAGES = ("", "models", "inference")


class ReferenceUnavailable(ImportError):
    """stable-audio-tools' reference classes cannot be imported here (``reason`` says why)."""


class Reference(NamedTuple):
    torch: types.ModuleType
    OobleckEncoder: type
    OobleckDecoder: type
    VAEBottleneck: type
    version: str


def _unused(name: str):
    def fail(*args, **kwargs):
        raise RuntimeError(f"{name} is a stand-in from audiograd's parity import shim; "
                           "the Oobleck reference does not use it")
    if name[:1].isupper():
        return type(name, (), {"__init__": fail})
    return fail


def _stub(fullname: str, names=(), path=None) -> types.ModuleType:
    mod = types.ModuleType(fullname)
    mod.__doc__ = "stand-in registered by audiograd.cli.sat_import"
    if path is not None:
        mod.__path__ = list(path)
        mod.__package__ = fullname
    else:
        mod.__package__ = fullname.rpartition(".")[0]
    for n in names:
        setattr(mod, n, _unused(n))
    sys.modules[fullname] = mod
    return mod


def _require(module: str) -> types.ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ReferenceUnavailable(f"{module} is not importable ({exc}); install with: {INSTALL_HINT}") from exc


def _ensure_torchaudio() -> None:
    """autoencoders.py imports ``torchaudio.transforms`` (for resampling we never call)."""
    if "torchaudio" in sys.modules:
        return
    try:
        importlib.import_module("torchaudio")
    except Exception:  # absent, or built for another torch: a stand-in is enough
        sys.modules.pop("torchaudio", None)
        ta = _stub("torchaudio", path=[])
        ta.transforms = _stub("torchaudio.transforms", ("Resample",))


def load_reference() -> Reference:
    """Return stable-audio-tools' Oobleck classes, importing them through the shim once."""
    torch = _require("torch")
    _require("einops")
    _require("alias_free_torch")
    root = "stable_audio_tools"
    done = sys.modules.get(f"{root}.models.autoencoders")
    if done is None:
        spec = importlib.util.find_spec(root)
        if spec is None or not spec.submodule_search_locations:
            raise ReferenceUnavailable(f"stable-audio-tools is not installed; install with: {INSTALL_HINT}")
        base = list(spec.submodule_search_locations)[0]
        if root not in sys.modules:  # keep a fully imported real package if someone has one
            for pkg in _PACKAGES:
                name = f"{root}.{pkg}" if pkg else root
                _stub(name, path=[base + ("/" + pkg.replace(".", "/") if pkg else "")])
            for sub, names in _STUBS.items():
                if sub not in _PACKAGES:
                    _stub(f"{root}.{sub}", names)
        _ensure_torchaudio()
        try:
            done = importlib.import_module(f"{root}.models.autoencoders")
        except ImportError as exc:
            raise ReferenceUnavailable(f"stable-audio-tools' autoencoders failed to import ({exc}); "
                                       f"install with: {INSTALL_HINT}") from exc
    bottleneck = importlib.import_module(f"{root}.models.bottleneck")
    try:
        from importlib.metadata import version
        ver = version("stable-audio-tools")
    except Exception:
        ver = "unknown"
    return Reference(torch, done.OobleckEncoder, done.OobleckDecoder, bottleneck.VAEBottleneck, ver)
