"""Samplers against the originals: stable-audio-tools' ``sample_k`` / ``sample_rf`` and
k-diffusion's samplers, given the same model, initial noise and per-step noise.

Tolerances: float64 within 1e-9 relative to the reference's float64 result; float32 no further
from the float64 reference than twice the reference's own float32 run (both computed here).
"""
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
        w = ag.tensor(self.w.astype(x.dtype.np), device=x.device)
        b = ag.tensor(self.b.astype(x.dtype.np), device=x.device)
        tt = t.reshape(-1, 1, 1)
        return ((w @ x) + b * tt).tanh() * (tt + 1) + x * 0.3


def _noises(steps, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(SHAPE), [rng.standard_normal(SHAPE) for _ in range(steps + 1)]


def _info(d):
    """A callback's dict as plain numbers: (i, sigma, x, denoised)."""
    return (int(d["i"]), float(d["sigma"]), np.asarray(_np(d["x"])), np.asarray(_np(d["denoised"])))


def _np(t):
    return t.double().numpy() if isinstance(t, torch.Tensor) else t.numpy().astype(np.float64)


def _run_pair(kind, sampler, steps, dtype, init=False, with_info=False, **kw):
    """(reference result, our result) as float64 arrays, and with ``with_info`` both callbacks'
    per-step records."""
    toy = Toy()
    noise, per_step = _noises(steps)
    init_data = np.random.default_rng(7).standard_normal(SHAPE) if init else None
    tdt = torch.float64 if dtype == ag.float64 else torch.float32
    calls = {"ref": 0, "ours": 0}
    infos = {"ref": [], "ours": []}

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
        ref_cb = lambda d: infos["ref"].append(_info(d))  # noqa: E731
        with torch.no_grad():
            run_ref = _ref_k if kind == "k" else _ref_rf
            ref = run_ref(toy, tn, ti, steps, sampler, ref_noise, ref_cb, **kw)
    finally:
        torch.set_default_dtype(prev)
    on, oi = ag.tensor(noise.astype(dtype.np)), None if init_data is None else ag.tensor(init_data.astype(dtype.np))
    fn = S.sample_k if kind == "k" else S.sample_rf
    ours = fn(toy.ours_fn, on, init_data=oi, steps=steps, sampler_type=sampler, noise_sampler=our_noise,
              callback=lambda d: infos["ours"].append(_info(d)), **kw)
    assert ours.dtype == dtype and ours.shape == SHAPE
    out = (ref.double().numpy(), ours.numpy().astype(np.float64))
    return out + ((infos["ref"], infos["ours"]),) if with_info else out


def _ref_k(toy, noise, init, steps, sampler, noise_sampler, callback, sigma_min=0.3, sigma_max=500.0):
    K = REF.k_diffusion
    if sampler != "euler":
        # stable-audio-tools' own entry point, with the injected noise for the SDE samplers
        mp = pytest.MonkeyPatch()
        if sampler != "dpmpp-2m":
            name = "sample_" + sampler.replace("-", "_")
            original = getattr(K.sampling, name)
            mp.setattr(K.sampling, name, lambda *a, **kw: original(*a, noise_sampler=noise_sampler, **kw))
        try:
            return REF.sampling.sample_k(toy.torch_fn, noise, init_data=init, steps=steps, sampler_type=sampler,
                                         sigma_min=sigma_min, sigma_max=sigma_max, rho=1.0, device="cpu",
                                         callback=callback)
        finally:
            mp.undo()
    # stable-audio-tools' sample_k has no plain Euler: k-diffusion's, on the same denoiser and schedule
    sigmas = K.sampling.get_sigmas_polyexponential(steps, sigma_min, sigma_max, 1.0)
    x = noise * sigmas[0] + (init if init is not None else 0)
    return K.sampling.sample_euler(K.external.VDenoiser(toy.torch_fn), x, sigmas, disable=True, callback=callback)


def _ref_rf(toy, noise, init, steps, sampler, noise_sampler, callback, sigma_max=1.0):
    mp = pytest.MonkeyPatch()
    mp.setattr(torch, "randn_like", lambda x, **kw: noise_sampler().to(x.dtype))
    try:
        return REF.sampling.sample_rf(toy.torch_fn, noise, init_data=init, steps=steps, sampler_type=sampler,
                                      sigma_max=sigma_max, device="cpu", callback=callback)
    finally:
        mp.undo()


CASES = [("k", "dpmpp-3m-sde", 12), ("k", "dpmpp-2m-sde", 9), ("k", "dpmpp-2m", 10), ("k", "euler", 8),
         ("rf", "pingpong", 8), ("rf", "euler", 6)]


def _kw(kind, init):
    """Variations start from a smaller noise level (SAO's sigma_max 500 otherwise, sample_rf's 1)."""
    return {"sigma_max": 2.0 if kind == "k" else 0.6} if init else {}


@pytest.mark.parametrize("kind,sampler,steps", CASES)
@pytest.mark.parametrize("init", [False, True])
def test_float64_matches_reference(kind, sampler, steps, init):
    ref, ours = _run_pair(kind, sampler, steps, ag.float64, init=init, **_kw(kind, init))
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("kind,sampler,steps", CASES)
@pytest.mark.parametrize("init", [False, True])
def test_float32_within_twice_reference_error(kind, sampler, steps, init):
    exact, _ = _run_pair(kind, sampler, steps, ag.float64, init=init, **_kw(kind, init))
    ref32, ours32 = _run_pair(kind, sampler, steps, ag.float32, init=init, **_kw(kind, init))
    ref_err, our_err = np.abs(ref32 - exact).max(), np.abs(ours32 - exact).max()
    assert 0 < ref_err < 1e-4
    assert our_err <= 2 * ref_err, (our_err, ref_err)


@pytest.mark.parametrize("kind,sampler,steps", CASES)
def test_callback_reports_each_step_like_reference(kind, sampler, steps):
    _, _, (ref, ours) = _run_pair(kind, sampler, 5, ag.float64, with_info=True)
    assert len(ours) == len(ref) == 5
    if (kind, sampler) == ("rf", "euler"):
        # stable-audio-tools' Euler reports the x after step i as step i + 1; ours, as every other
        # sampler, the x entering step i: the same states, one step apart
        assert [r[0] for r in ref] == [o[0] + 1 for o in ours]
        for r, o in zip(ref[:-1], ours[1:]):
            np.testing.assert_allclose(o[2], r[2], rtol=1e-9, atol=1e-12)
        ref = [(o[0], r[1], o[2], r[3]) for r, o in zip(ref, ours)]
    for r, o in zip(ref, ours):
        assert r[0] == o[0]
        np.testing.assert_allclose(o[1], r[1], rtol=1e-12)
        for a, b in zip(o[2:], r[2:]):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(b).max())


def _reference_rf_times(steps, sigma_max):
    """The times stable-audio-tools' ``sample_rf`` hands its sampler."""
    seen = {}
    mp = pytest.MonkeyPatch()
    mp.setattr(REF.sampling, "sample_discrete_euler", lambda model, x, sigmas, **kw: seen.setdefault("t", sigmas))
    try:
        REF.sampling.sample_rf(None, torch.zeros(1), steps=steps, sampler_type="euler", sigma_max=sigma_max)
    finally:
        mp.undo()
    return seen["t"].numpy()


@pytest.mark.parametrize("steps,sigma_min,sigma_max,rho", [(100, 0.3, 500.0, 1.0), (7, 0.01, 100.0, 1.0),
                                                           (12, 0.3, 2.0, 1.7), (1, 0.3, 500.0, 1.0)])
def test_polyexponential_sigmas_match_reference(steps, sigma_min, sigma_max, rho):
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        want = REF.k_diffusion.sampling.get_sigmas_polyexponential(steps, sigma_min, sigma_max, rho).numpy()
    finally:
        torch.set_default_dtype(prev)
    got = S.polyexponential_sigmas(steps, sigma_min, sigma_max, rho)
    assert got.dtype == np.float64 and got.shape == (steps + 1,) and got[-1] == 0
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("steps,sigma_max", [(8, 1.0), (100, 1.0), (6, 0.6), (5, 3.0), (4, 0.05)])
def test_rf_schedule_matches_reference(steps, sigma_max):
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        want = _reference_rf_times(steps, sigma_max)
    finally:
        torch.set_default_dtype(prev)
    np.testing.assert_allclose(S.rf_schedule(steps, sigma_max), want, rtol=1e-13, atol=1e-300)


def test_v_denoiser_matches_reference():
    """c_skip, c_out, c_in and the sigma -> t map over SAO's range of noise levels."""
    toy = Toy(3)
    x = np.random.default_rng(4).standard_normal(SHAPE) * 5
    den = REF.k_diffusion.external.VDenoiser(toy.torch_fn)
    ours = S.v_denoiser(toy.ours_fn)
    for sigma in (0.3, 1.0, 7.5, 500.0):
        want = den(torch.tensor(x), torch.full((SHAPE[0],), sigma, dtype=torch.float64)).numpy()
        got = ours(ag.tensor(x), sigma).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_pingpong_matches_unpatched_reference_under_torch_seed():
    """The reference's own ``torch.randn_like`` per step, drawn in advance under the same seed."""
    toy, steps = Toy(), 6
    noise = np.random.default_rng(2).standard_normal(SHAPE)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(11)
        draws = [torch.randn(SHAPE, dtype=torch.float64).numpy() for _ in range(steps)]
        torch.manual_seed(11)
        ref = REF.sampling.sample_rf(toy.torch_fn, torch.tensor(noise), steps=steps, sampler_type="pingpong",
                                     device="cpu").numpy()
    finally:
        torch.set_default_dtype(prev)
    feed = iter(draws)
    ours = S.sample_rf(toy.ours_fn, ag.tensor(noise), steps=steps, sampler_type="pingpong",
                       noise_sampler=lambda *_: ag.tensor(next(feed))).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def test_unknown_sampler_and_bad_arguments_are_named():
    x = ag.zeros(*SHAPE)
    with pytest.raises(ValueError, match="'k-heun'.*dpmpp-3m-sde, dpmpp-2m-sde, dpmpp-2m, euler"):
        S.sample_k(Toy().ours_fn, x, sampler_type="k-heun")
    with pytest.raises(ValueError, match="'dpmpp-3m-sde'.*pingpong, euler"):
        S.sample_rf(Toy().ours_fn, x, sampler_type="dpmpp-3m-sde")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        S.sample_k(Toy().ours_fn, x, steps=0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        S.sample_rf(Toy().ours_fn, x, steps=2.5)
    with pytest.raises(ValueError, match="sigma_min <= sigma_max"):
        S.polyexponential_sigmas(10, 0.0, 1.0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        S.NoiseSource(-1)


def test_seeded_noise_is_reproducible_across_devices_and_dtypes():
    a = S.NoiseSource(5).normal(SHAPE, ag.float32).numpy()
    b = S.NoiseSource(5).normal(SHAPE, ag.float32, "interp")
    c = S.NoiseSource(6).normal(SHAPE, ag.float32).numpy()
    d = S.NoiseSource(5).normal(SHAPE, ag.float64).numpy()
    assert b.device == "interp" and b.dtype == ag.float32
    assert np.array_equal(a, b.numpy()) and not np.array_equal(a, c)
    assert np.array_equal(a, d.astype(np.float32)) and np.abs(d).max() > 1
    draws = S.NoiseSource(5).sampler(SHAPE, ag.float64)
    first, second = draws(1.0, 0.5).numpy(), draws(0.5, 0.1).numpy()
    assert np.array_equal(first, d) and not np.array_equal(first, second)


def test_sampler_runs_where_its_input_lives():
    """The same seeded run on the numpy interpreter and on the default device."""
    def run(device):
        src = S.NoiseSource(9)
        return S.sample_k(Toy().ours_fn, src.normal(SHAPE, ag.float64, device), steps=5,
                          noise_sampler=src.sampler(SHAPE, ag.float64, device))

    there, here = run("interp"), run(None)
    assert there.device == "interp"
    np.testing.assert_allclose(there.numpy(), here.numpy(), rtol=1e-12, atol=1e-12)
