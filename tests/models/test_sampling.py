"""Samplers against the originals: stable-audio-tools' ``sample_k`` / ``sample_rf`` and
k-diffusion's samplers, given the same model, initial noise and per-step noise."""
from __future__ import annotations

import numpy as np
import pytest

import audiograd as ag
from audiograd.models import sampling as S
from sat_generation_reference import require_generation_reference

REF = require_generation_reference()
torch = REF.torch
SHAPE = (2, 3, 10)


class Toy:
    """A nonlinear velocity model v(x, t) = tanh(W x + b t) * (1 + t) + 0.3 x, in both libraries."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.w = rng.standard_normal((SHAPE[1], SHAPE[1])) * 0.8
        self.b = rng.standard_normal((SHAPE[1], 1))

    def torch_fn(self, x, t, **_):
        w, b = torch.tensor(self.w, dtype=x.dtype), torch.tensor(self.b, dtype=x.dtype)
        tt = t[:, None, None]
        return torch.tanh(torch.einsum("oc,bcl->bol", w, x) + b * tt) * (1 + tt) + 0.3 * x

    def ours_fn(self, x, t, **_):
        w, b = ag.tensor(self.w.astype(x.dtype.np)), ag.tensor(self.b.astype(x.dtype.np))
        tt = t.reshape(-1, 1, 1)
        return ((w @ x) + b * tt).tanh() * (tt + 1) + x * 0.3


def _noises(steps, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(SHAPE), [rng.standard_normal(SHAPE) for _ in range(steps + 1)]


def _run_pair(kind, sampler, steps, dtype, init=False, **kw):
    """(reference result, our result) as float64 arrays."""
    toy = Toy()
    noise, per_step = _noises(steps)
    init_data = np.random.default_rng(7).standard_normal(SHAPE) if init else None
    tdt = torch.float64 if dtype == ag.float64 else torch.float32
    calls = {"ref": 0, "ours": 0}

    def ref_noise(*_):
        calls["ref"] += 1
        return torch.tensor(per_step[calls["ref"] - 1], dtype=tdt)

    def our_noise(*_):
        calls["ours"] += 1
        return ag.tensor(per_step[calls["ours"] - 1].astype(dtype.np))

    prev = torch.get_default_dtype()
    torch.set_default_dtype(tdt)  # the reference builds its schedules in the default dtype
    try:
        tn = torch.tensor(noise, dtype=tdt)
        ti = None if init_data is None else torch.tensor(init_data, dtype=tdt)
        with torch.no_grad():
            if kind == "k":
                ref = _ref_k(toy, tn, ti, steps, sampler, ref_noise, **kw)
            else:
                ref = _ref_rf(toy, tn, ti, steps, sampler, ref_noise, **kw)
    finally:
        torch.set_default_dtype(prev)
    on, oi = ag.tensor(noise.astype(dtype.np)), None if init_data is None else ag.tensor(init_data.astype(dtype.np))
    fn = S.sample_k if kind == "k" else S.sample_rf
    ours = fn(toy.ours_fn, on, init_data=oi, steps=steps, sampler_type=sampler, noise_sampler=our_noise, **kw)
    return ref.double().numpy(), ours.numpy().astype(np.float64)


def _ref_k(toy, noise, init, steps, sampler, noise_sampler, sigma_min=0.3, sigma_max=500.0):
    K = REF.k_diffusion
    if sampler in ("dpmpp-2m-sde", "dpmpp-3m-sde", "dpmpp-2m"):
        # stable-audio-tools' own entry point, with the injected noise for the SDE samplers
        if sampler != "dpmpp-2m":
            original = getattr(K.sampling, "sample_" + sampler.replace("-", "_"))

            def with_noise(*a, **kw):
                return original(*a, noise_sampler=noise_sampler, **kw)
            mp = pytest.MonkeyPatch()
            mp.setattr(K.sampling, "sample_" + sampler.replace("-", "_"), with_noise)
        else:
            mp = None
        try:
            return REF.sampling.sample_k(toy.torch_fn, noise, init_data=init, steps=steps, sampler_type=sampler,
                                         sigma_min=sigma_min, sigma_max=sigma_max, rho=1.0, device="cpu")
        finally:
            if mp is not None:
                mp.undo()
    # euler: k-diffusion's sampler on the same denoiser and schedule
    sigmas = K.sampling.get_sigmas_polyexponential(steps, sigma_min, sigma_max, 1.0)
    x = noise * sigmas[0] + (init if init is not None else 0)
    return K.sampling.sample_euler(K.external.VDenoiser(toy.torch_fn), x, sigmas, disable=True)


def _ref_rf(toy, noise, init, steps, sampler, noise_sampler, sigma_max=1.0):
    mp = pytest.MonkeyPatch()
    mp.setattr(torch, "randn_like", lambda x, **kw: noise_sampler().to(x.dtype))
    try:
        return REF.sampling.sample_rf(toy.torch_fn, noise, init_data=init, steps=steps, sampler_type=sampler,
                                      sigma_max=sigma_max, device="cpu")
    finally:
        mp.undo()


CASES = [("k", "dpmpp-3m-sde", 12, {}), ("k", "dpmpp-2m-sde", 9, {}), ("k", "dpmpp-2m", 10, {}),
         ("k", "euler", 8, {}), ("rf", "pingpong", 8, {}), ("rf", "euler", 6, {})]


@pytest.mark.parametrize("kind,sampler,steps,kw", CASES)
@pytest.mark.parametrize("init", [False, True])
def test_float64_matches_reference(kind, sampler, steps, kw, init):
    if init:
        kw = dict(kw, sigma_max=2.0 if kind == "k" else 0.6)
    ref, ours = _run_pair(kind, sampler, steps, ag.float64, init=init, **kw)
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("kind,sampler,steps,kw", CASES)
def test_float32_within_twice_reference_error(kind, sampler, steps, kw):
    exact, _ = _run_pair(kind, sampler, steps, ag.float64, **kw)
    ref32, ours32 = _run_pair(kind, sampler, steps, ag.float32, **kw)
    ref_err, our_err = np.abs(ref32 - exact).max(), np.abs(ours32 - exact).max()
    assert our_err <= 2 * max(ref_err, 1e-6), (our_err, ref_err)


def test_schedules_match_reference():
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        want = REF.k_diffusion.sampling.get_sigmas_polyexponential(100, 0.3, 500, 1.0).numpy()
    finally:
        torch.set_default_dtype(prev)
    np.testing.assert_allclose(S.polyexponential_sigmas(100, 0.3, 500), want, rtol=1e-13)


def test_unknown_sampler_is_named():
    x = ag.zeros(*SHAPE)
    with pytest.raises(ValueError, match="dpmpp-3m-sde"):
        S.sample_k(Toy().ours_fn, x, sampler_type="k-heun")
    with pytest.raises(ValueError, match="pingpong"):
        S.sample_rf(Toy().ours_fn, x, sampler_type="dpmpp-3m-sde")


def test_seeded_noise_is_reproducible():
    a = S.NoiseSource(5).normal(SHAPE, ag.float32, None).numpy()
    b = S.NoiseSource(5).normal(SHAPE, ag.float32, None).numpy()
    c = S.NoiseSource(6).normal(SHAPE, ag.float32, None).numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
