"""Stable Audio's samplers, with the semantics of stable-audio-tools' ``sample_k`` (k-diffusion's
DPM-Solver++ and Euler samplers over a "v" model) and ``sample_rf`` (rectified flow: ping-pong
and Euler), on audiograd tensors of any device.

Schedules and per-step coefficients are computed on the host in float64; tensor work runs where
``x`` lives, in ``x``'s dtype. Every sampler takes ``noise_sampler(sigma, sigma_next) -> Tensor``
for its fresh noise, so runs are reproducible and comparable with the reference. k-diffusion
draws the SDE samplers' noise from a Brownian tree; increments of Brownian motion over disjoint
intervals, divided by the square root of their length, are independent standard normals, so
plain seeded Gaussian noise per step has the same distribution.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from ..tensor.tensor import Tensor

Model = Callable[..., Tensor]

V_SAMPLERS = ("dpmpp-3m-sde", "dpmpp-2m-sde", "dpmpp-2m", "euler")
RF_SAMPLERS = ("pingpong", "euler")


class NoiseSource:
    """Seeded standard normal noise (numpy's PCG64): the same numbers for a seed on every device."""

    def __init__(self, seed: int):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.rng = np.random.default_rng(int(seed))

    def normal(self, shape, dtype, device=None) -> Tensor:
        """The next ``shape`` standard normals, drawn in float64 on the host, then cast to
        ``dtype`` and placed on ``device``: every device sees the same numbers."""
        return Tensor(self.rng.standard_normal(tuple(shape)).astype(dtype.np), device=device)

    def sampler(self, shape, dtype, device=None) -> Callable[[float, float], Tensor]:
        """A ``noise_sampler(sigma, sigma_next)`` drawing a fresh tensor per call."""
        return lambda sigma, sigma_next: self.normal(shape, dtype, device)


def polyexponential_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> np.ndarray:
    """k-diffusion's ``get_sigmas_polyexponential``: ``steps`` noise levels from sigma_max down to
    sigma_min, polynomial (degree ``rho``) in log sigma, then a final zero."""
    _check_steps(steps)
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"noise levels need 0 < sigma_min <= sigma_max, got {sigma_min!r} and {sigma_max!r}")
    ramp = np.linspace(1.0, 0.0, steps) ** rho
    sigmas = np.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min))
    return np.append(sigmas, 0.0)


def rf_schedule(steps: int, sigma_max: float = 1.0) -> np.ndarray:
    """stable-audio-tools' ``sample_rf`` times: logSNR evenly spaced from logsnr_max to 2,
    t = sigmoid(-logSNR), the ends pinned to sigma_max and 0."""
    _check_steps(steps)
    if not sigma_max > 0:
        raise ValueError(f"sigma_max must be positive, got {sigma_max!r}")
    sigma_max = min(sigma_max, 1.0)
    logsnr_max = math.log((1 - sigma_max) / sigma_max + 1e-6) if sigma_max < 1 else -6.0
    t = 1.0 / (1.0 + np.exp(np.linspace(logsnr_max, 2.0, steps + 1)))
    t[0], t[-1] = sigma_max, 0.0
    return t


def _check_steps(steps) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


def _times(x: Tensor, value: float) -> Tensor:
    return Tensor(np.full((x.shape[0],), value, dtype=x.dtype.np), device=x.device)


def v_denoiser(model: Model) -> Model:
    """k-diffusion's ``VDenoiser``: a "v" model as a denoiser of x at noise level sigma
    (sigma_data 1): ``model(x * c_in, atan(sigma) * 2 / pi) * c_out + x * c_skip``."""
    def denoise(x: Tensor, sigma: float, **extra) -> Tensor:
        c_skip = 1.0 / (sigma * sigma + 1.0)
        c_out = -sigma / math.sqrt(sigma * sigma + 1.0)
        c_in = 1.0 / math.sqrt(sigma * sigma + 1.0)
        return model(x * c_in, _times(x, math.atan(sigma) / math.pi * 2), **extra) * c_out + x * c_skip
    return denoise


def _report(callback, x, i, sigma, denoised, sigma_hat=None):
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma if sigma_hat is None else sigma_hat,
                  "denoised": denoised})


def sample_euler(denoiser: Model, x: Tensor, sigmas, callback=None, **extra) -> Tensor:
    """k-diffusion's ``sample_euler`` with its defaults (no churn): x += (x - D(x)) / sigma * dt."""
    for i in range(len(sigmas) - 1):
        sigma, nxt = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoiser(x, sigma, **extra)
        _report(callback, x, i, sigma, denoised)
        x = x + (x - denoised) * ((nxt - sigma) / sigma)
    return x


def sample_dpmpp_2m(denoiser: Model, x: Tensor, sigmas, callback=None, **extra) -> Tensor:
    """k-diffusion's DPM-Solver++(2M)."""
    old = None
    for i in range(len(sigmas) - 1):
        sigma, nxt = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoiser(x, sigma, **extra)
        _report(callback, x, i, sigma, denoised)
        if nxt == 0:
            x = denoised
        else:
            t, t_next = -math.log(sigma), -math.log(nxt)
            h = t_next - t
            target = denoised
            if old is not None:
                r = (t + math.log(float(sigmas[i - 1]))) / h
                target = denoised * (1 + 1 / (2 * r)) - old * (1 / (2 * r))
            x = x * (nxt / sigma) - target * math.expm1(-h)
        old = denoised
    return x


def sample_dpmpp_2m_sde(denoiser: Model, x: Tensor, sigmas, noise_sampler, callback=None, eta: float = 1.0,
                        s_noise: float = 1.0, **extra) -> Tensor:
    """k-diffusion's DPM-Solver++(2M) SDE, midpoint solver."""
    old, h_last = None, None
    for i in range(len(sigmas) - 1):
        sigma, nxt = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoiser(x, sigma, **extra)
        _report(callback, x, i, sigma, denoised)
        h = None
        if nxt == 0:
            x = denoised
        else:
            h = math.log(sigma) - math.log(nxt)
            eta_h = eta * h
            decay = -math.expm1(-h - eta_h)
            x = x * (nxt / sigma * math.exp(-eta_h)) + denoised * decay
            if old is not None:
                x = x + (denoised - old) * (0.5 * decay * h / h_last)
            if eta:
                x = x + noise_sampler(sigma, nxt) * (nxt * math.sqrt(-math.expm1(-2 * eta_h)) * s_noise)
        old, h_last = denoised, h
    return x


def sample_dpmpp_3m_sde(denoiser: Model, x: Tensor, sigmas, noise_sampler, callback=None, eta: float = 1.0,
                        s_noise: float = 1.0, **extra) -> Tensor:
    """k-diffusion's DPM-Solver++(3M) SDE."""
    d_1 = d_2 = None
    h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        sigma, nxt = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoiser(x, sigma, **extra)
        _report(callback, x, i, sigma, denoised)
        h = None
        if nxt == 0:
            x = denoised
        else:
            h = math.log(sigma) - math.log(nxt)
            h_eta = h * (eta + 1)
            x = x * math.exp(-h_eta) + denoised * (-math.expm1(-h_eta))
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - d_1) * (1 / r0)
                d1_1 = (d_1 - d_2) * (1 / r1)
                d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1))
                d2 = (d1_0 - d1_1) * (1 / (r0 + r1))
                phi_3 = phi_2 / h_eta - 0.5
                x = x + d1 * phi_2 - d2 * phi_3
            elif h_1 is not None:
                x = x + (denoised - d_1) * (phi_2 * h / h_1)
            if eta:
                x = x + noise_sampler(sigma, nxt) * (nxt * math.sqrt(-math.expm1(-2 * h * eta)) * s_noise)
        d_1, d_2 = denoised, d_1
        h_1, h_2 = h, h_1
    return x


def sample_k(model_fn: Model, noise: Tensor, init_data: Optional[Tensor] = None, steps: int = 100,
             sampler_type: str = "dpmpp-3m-sde", sigma_min: float = 0.3, sigma_max: float = 500.0, rho: float = 1.0,
             callback=None, noise_sampler=None, **extra_args) -> Tensor:
    """stable-audio-tools' ``sample_k`` for "v" models: polyexponential sigmas, initial noise
    scaled by the first sigma (added to ``init_data`` for variations), then the sampler.

    ``extra_args`` go to every model call; ``callback(info)`` is called once per step with
    k-diffusion's keys. Without a ``noise_sampler`` the SDE samplers draw from ``NoiseSource(0)``."""
    if sampler_type not in V_SAMPLERS:
        raise ValueError(f"unknown sampler {sampler_type!r} for a 'v' model: choose one of {', '.join(V_SAMPLERS)}")
    sigmas = polyexponential_sigmas(steps, sigma_min, sigma_max, rho)
    x = noise * float(sigmas[0])
    if init_data is not None:
        x = init_data + x
    if noise_sampler is None:
        noise_sampler = NoiseSource(0).sampler(noise.shape, noise.dtype, noise.device)
    denoiser = v_denoiser(model_fn)
    if sampler_type == "euler":
        return sample_euler(denoiser, x, sigmas, callback=callback, **extra_args)
    if sampler_type == "dpmpp-2m":
        return sample_dpmpp_2m(denoiser, x, sigmas, callback=callback, **extra_args)
    solver = sample_dpmpp_2m_sde if sampler_type == "dpmpp-2m-sde" else sample_dpmpp_3m_sde
    return solver(denoiser, x, sigmas, noise_sampler, callback=callback, **extra_args)


def sample_rf(model_fn: Model, noise: Tensor, init_data: Optional[Tensor] = None, steps: int = 8,
              sampler_type: str = "pingpong", sigma_max: float = 1.0, callback=None, noise_sampler=None,
              **extra_args) -> Tensor:
    """stable-audio-tools' ``sample_rf`` for rectified-flow models (the model predicts the
    velocity noise - data): ping-pong (denoise fully, then re-noise to the next level with fresh
    noise) or Euler steps along the velocity.

    Without a ``noise_sampler`` ping-pong draws from ``NoiseSource(0)``. The callback sees, as
    k-diffusion's do, the x entering step i (counted from 0) and its denoised estimate x - t * v;
    stable-audio-tools' Euler reports the x after the step and counts from 1."""
    if sampler_type not in RF_SAMPLERS:
        raise ValueError(f"unknown sampler {sampler_type!r} for a rectified-flow model: choose one of "
                         f"{', '.join(RF_SAMPLERS)}")
    sigma_max = min(sigma_max, 1.0)
    x = noise if init_data is None else init_data * (1 - sigma_max) + noise * sigma_max
    t = rf_schedule(steps, sigma_max)
    if noise_sampler is None:
        noise_sampler = NoiseSource(0).sampler(noise.shape, noise.dtype, noise.device)
    for i in range(len(t) - 1):
        now, nxt = float(t[i]), float(t[i + 1])
        v = model_fn(x, _times(x, now), **extra_args)
        denoised = x - v * now
        _report(callback, x, i, now, denoised)
        if sampler_type == "euler":
            x = x + v * (nxt - now)
        else:
            x = denoised * (1 - nxt) + noise_sampler(now, nxt) * nxt
    return x


__all__ = ["NoiseSource", "polyexponential_sigmas", "rf_schedule", "v_denoiser", "sample_k", "sample_rf",
           "sample_euler", "sample_dpmpp_2m", "sample_dpmpp_2m_sde", "sample_dpmpp_3m_sde", "V_SAMPLERS",
           "RF_SAMPLERS"]
