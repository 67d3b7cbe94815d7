"""stable-audio-tools' generation classes and k-diffusion's samplers as test references.

Both packages import whole training stacks at package level (torchvision, CLAP, Lightning, the
hub client, ...) that the tested code never touches. The original files are loaded unchanged
under a private package name (``_sat_gen``, ``_kdiff``) whose package ``__init__`` is not run;
only modules that the tested code imports but never calls get empty stand-ins. A private name
keeps these copies apart from the Oobleck reference shim, which stands in for other modules.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from typing import NamedTuple

import pytest

from torchaudio_reference import import_torchaudio

_SAT, _KD = "_sat_gen", "_kdiff"


def _package(name: str, path: str) -> None:
    mod = types.ModuleType(name)
    mod.__path__ = [path]
    mod.__package__ = name
    sys.modules[name] = mod


def _standin(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__doc__ = "stand-in of a module the tested reference code imports but never uses"
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)  # others probe it with find_spec
    for key, value in attrs.items():
        setattr(mod, key, value)
    sys.modules[name] = mod
    return mod


def _unused(name):
    def fail(*args, **kwargs):
        raise RuntimeError(f"{name} is a test stand-in; the reference code under test does not call it")
    return fail


def _root(pkg: str) -> str:
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{pkg} is not installed")
    return list(spec.submodule_search_locations)[0]


def _ensure_torchaudio() -> None:
    if import_torchaudio() is None:
        ta = _standin("torchaudio")
        ta.__path__ = []
        ta.transforms = _standin("torchaudio.transforms", Resample=_unused("Resample"))


def _drop_torchvision() -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        sys.modules.pop(name)


def _ensure_torchvision() -> bool:
    """Make ``torchvision.transforms.functional`` importable; True if a stand-in was needed (it
    must be dropped again once k-diffusion is imported: other libraries probe torchvision)."""
    try:
        importlib.import_module("torchvision.transforms.functional")
        return False
    except Exception:
        _drop_torchvision()
        tv = _standin("torchvision")
        tv.__path__ = []
        tr = _standin("torchvision.transforms")
        tr.__path__ = []
        tv.transforms = tr
        tr.functional = _standin("torchvision.transforms.functional")
        return True


def _load_k_diffusion():
    if f"{_KD}.external" not in sys.modules:
        root = _root("k_diffusion")
        standin = _ensure_torchvision()
        _package(_KD, root)
        try:
            for sub in ("utils", "sampling", "external"):
                setattr(sys.modules[_KD], sub, importlib.import_module(f"{_KD}.{sub}"))
        finally:
            if standin:
                _drop_torchvision()
    return sys.modules[_KD]


class GenerationReference(NamedTuple):
    torch: types.ModuleType
    dit: types.ModuleType          # DiffusionTransformer
    transformer: types.ModuleType  # ContinuousTransformer, RotaryEmbedding, ...
    conditioners: types.ModuleType  # NumberConditioner, MultiConditioner
    diffusion: types.ModuleType    # ConditionedDiffusionModelWrapper, DiTWrapper
    sampling: types.ModuleType     # sample_k, sample_rf, ...
    k_diffusion: types.ModuleType  # .sampling, .external
    autoencoders: types.ModuleType  # OobleckEncoder, OobleckDecoder


def _load() -> GenerationReference:
    torch = importlib.import_module("torch")
    for dep in ("einops", "einops_exts", "scipy", "torchsde", "torchdiffeq", "PIL"):
        importlib.import_module(dep)
    kd = _load_k_diffusion()
    if f"{_SAT}.models.diffusion" not in sys.modules:
        root = _root("stable_audio_tools")
        _ensure_torchaudio()
        sys.modules.setdefault("k_diffusion", kd)
        for pkg in ("", ".models", ".inference", ".data"):
            _package(_SAT + pkg, root + pkg.replace(".", "/"))
        _standin(f"{_SAT}.inference.utils", prepare_audio=_unused("prepare_audio"),
                 set_audio_channels=_unused("set_audio_channels"))
    m = lambda name: importlib.import_module(f"{_SAT}.{name}")  # noqa: E731
    return GenerationReference(torch, m("models.dit"), m("models.transformer"), m("models.conditioners"),
                               m("models.diffusion"), m("inference.sampling"), kd, m("models.autoencoders"))


def require_generation_reference() -> GenerationReference:
    """The reference modules, or a module-level skip naming what is missing."""
    try:
        return _load()
    except Exception as exc:  # any import failure means the reference is unavailable here
        pytest.skip(f"stable-audio-tools / k-diffusion reference unavailable: {exc!r}", allow_module_level=True)
