"""stable-audio-tools' Oobleck classes as the reference for parity tests (test-only helpers).

The import shim lives in ``audiograd.cli.sat_import`` (shared with ``audiograd parity``); here
``require_reference()`` skips the calling test module, with the reason, when the reference
cannot be imported, so a missing reference never passes silently.
"""
from __future__ import annotations

import copy
import functools

import numpy as np
import pytest

from audiograd.cli import parity
from audiograd.cli.sat_import import ReferenceUnavailable, load_reference
from audiograd.models.oobleck import SAO_CONFIG


def _oobleck(part_kw_enc: dict, part_kw_dec: dict) -> dict:
    return {"encoder": {"type": "oobleck", "config": part_kw_enc},
            "decoder": {"type": "oobleck", "config": part_kw_dec},
            "bottleneck": {"type": "vae"}, "latent_dim": part_kw_dec["latent_dim"],
            "io_channels": part_kw_enc.get("in_channels", 2)}


# small configurations: odd strides, few channels, ELU and snake, other latent sizes
CONFIGS = {
    "sao": SAO_CONFIG,
    "snake_odd": _oobleck(
        dict(in_channels=2, channels=4, c_mults=[1, 2], strides=[3, 5], latent_dim=6, use_snake=True),
        dict(out_channels=2, channels=4, c_mults=[1, 2], strides=[3, 5], latent_dim=3, use_snake=True)),
    "elu_mono": _oobleck(
        dict(in_channels=1, channels=8, c_mults=[1, 2, 2], strides=[2, 3, 4], latent_dim=10, use_snake=False),
        dict(out_channels=1, channels=8, c_mults=[1, 2, 2], strides=[2, 3, 4], latent_dim=5, use_snake=False,
             final_tanh=False)),
    "snake_wide": _oobleck(
        dict(in_channels=2, channels=6, c_mults=[1, 3], strides=[4, 8], latent_dim=16, use_snake=True),
        dict(out_channels=2, channels=6, c_mults=[1, 3], strides=[4, 8], latent_dim=8, use_snake=True,
             final_tanh=False)),
}
SMALL = [k for k in CONFIGS if k != "sao"]


def require_reference():
    """The reference classes, or a module-level skip naming what is missing."""
    try:
        return load_reference()
    except ReferenceUnavailable as exc:
        pytest.skip(f"stable-audio-tools reference unavailable: {exc}", allow_module_level=True)


def config(name: str) -> dict:
    return copy.deepcopy(CONFIGS[name])


@functools.lru_cache(maxsize=4)
def reference_module(name: str, part: str, seed: int = 0):
    """stable-audio-tools' encoder/decoder of config ``name`` in float64, seeded random weights."""
    return parity.build_reference(CONFIGS[name], part, seed=seed)


def reference_state(name: str, part: str, seed: int = 0) -> dict:
    """The reference module's state dict as numpy arrays (float64; keys as stable-audio-tools')."""
    return parity.reference_state(reference_module(name, part, seed))


def reference_forward(name: str, part: str, x: np.ndarray, seed: int = 0, dtype=None) -> np.ndarray:
    """Run the reference on ``x`` in float64 (or a copy cast to ``dtype``, for a rounding baseline)."""
    torch = load_reference().torch
    module = reference_module(name, part, seed)
    xt = torch.from_numpy(np.asarray(x, np.float64))
    if dtype is not None:
        module, xt = copy.deepcopy(module).to(dtype), xt.to(dtype)
    with torch.no_grad():
        return module(xt).double().numpy()


def reference_bottleneck():
    return load_reference().VAEBottleneck()


def make_input(name: str, part: str, length=None, seed: int = 0, batch: int = 1) -> np.ndarray:
    return parity.make_input(CONFIGS[name], part, length, seed, batch)


def rel_error(out, ref):
    """(max abs error, RMS of the reference, max abs / RMS)."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    assert out.shape == ref.shape, f"shape {out.shape} != reference {ref.shape}"
    d = float(np.max(np.abs(out - ref)))
    rms = float(np.sqrt(np.mean(ref ** 2)))
    return d, rms, d / rms
