"""Differentiable building blocks of a DDSP synthesizer (Engel et al., 2020).

Everything here is built from audiograd tensor ops, so gradients with respect to the control
signals (amplitudes, fundamental frequency, noise filter magnitudes) come from autograd.

* :func:`upsample_frames` turns frame-rate controls into sample-rate controls.
* :func:`harmonic_oscillator` is an additive synthesizer: a bank of sinusoids at integer
  multiples of ``f0``, with harmonics above Nyquist silenced.
* :func:`filtered_noise` shapes white noise with one linear-phase FIR filter per frame,
  designed from per-band magnitudes, and overlap-adds the filtered frames.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import dtypes as dt
from ..tensor import Tensor, where
from ..tensor.creation import rand
from ..tensor.movement import fold, pad

__all__ = ["upsample_frames", "harmonic_oscillator", "filtered_noise", "noise_filter_ir"]


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def _float(x: Tensor) -> Tensor:
    return x if x.dtype.is_float else x.to(dt.default_float)


# ---- frame rate -> sample rate ------------------------------------------------------------------
def upsample_frames(x, factor: int, mode: str = "linear") -> Tensor:
    """Upsample frame-rate controls ``(batch, frames, channels)`` to ``(batch, frames * factor, channels)``.

    Alignment: frame ``i`` covers output samples ``[i * factor, (i + 1) * factor)`` and its value
    sits at the centre of that block, sample position ``i * factor + (factor - 1) / 2``.

    * ``mode='linear'``: output sample ``n`` reads the frame sequence at the fractional frame
      position ``u = (n + 0.5) / factor - 0.5``, clamped to ``[0, frames - 1]``, and interpolates
      linearly between the two neighbouring frames. The first and last half-blocks therefore hold
      the first and last frame values. This is exactly ``torch.nn.functional.interpolate(...,
      mode='linear', align_corners=False)`` along the frame axis.
    * ``mode='nearest'``: every sample of the block of frame ``i`` takes the value of frame ``i``
      (sample-and-hold; ``interpolate(mode='nearest')``).

    ``factor == 1`` returns ``x`` unchanged. A 2-D input ``(batch, frames)`` is treated as one channel
    and comes back 2-D.
    """
    x = _float(_as_tensor(x))
    if not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"upsample_frames: factor must be a positive int, got {factor!r}")
    if mode not in ("linear", "nearest"):
        raise ValueError(f"upsample_frames: unknown mode {mode!r} (linear, nearest)")
    squeeze = x.ndim == 2
    if squeeze:
        x = x.unsqueeze(-1)
    if x.ndim != 3:
        raise ValueError(f"upsample_frames: expected (batch, frames, channels), got shape {tuple(x.shape)}")
    factor = int(factor)
    b, n, c = x.shape
    if factor == 1:
        out = x
    elif mode == "nearest":
        out = x.unsqueeze(2).expand(b, n, factor, c).reshape(b, n * factor, c)
    else:
        # offset of sample r of a block from its frame's centre, in frames: (r + 0.5)/factor - 0.5,
        # which lies in (-0.5, 0.5): negative offsets mix with the previous frame, positive with the next
        off = (np.arange(factor) + 0.5) / factor - 0.5
        w_prev = np.where(off < 0, -off, 0.0)
        w_next = np.where(off > 0, off, 0.0)
        w_cur = 1.0 - w_prev - w_next

        def weights(w):
            return Tensor(w.reshape(1, 1, factor, 1).astype(x.dtype.np), dtype=x.dtype, device=x.device)

        xp = pad(x, (0, 0, 1, 1), mode="replicate")  # clamp at both ends
        prev, cur, nxt = (xp[:, k:k + n].unsqueeze(2) for k in range(3))
        out = prev * weights(w_prev) + cur * weights(w_cur) + nxt * weights(w_next)
        out = out.reshape(b, n * factor, c)
    return out.squeeze(-1) if squeeze else out


# ---- harmonic oscillator -------------------------------------------------------------------------
def harmonic_oscillator(f0, amplitudes, sample_rate: float) -> Tensor:
    """Additive synthesis: ``sum_k amplitudes[..., k-1] * sin(k * phase)`` for harmonics ``k = 1..K``.

    Args:
        f0: fundamental frequency in Hz, ``(batch, samples, 1)`` (or ``(batch, samples)``), at the
            sample rate (use :func:`upsample_frames` on frame-rate controls first).
        amplitudes: per-harmonic amplitudes ``(batch, samples, n_harmonics)``; column ``k-1`` drives
            harmonic ``k``, at frequency ``k * f0``.
        sample_rate: samples per second.

    Returns:
        audio ``(batch, samples)`` in the dtype of ``amplitudes`` / ``f0`` (promoted).

    The instantaneous phase is ``phase[n] = 2*pi * sum_{m <= n} f0[m] / sample_rate`` (an inclusive
    cumulative sum, so sample 0 already has phase ``2*pi*f0[0]/sample_rate``; DDSP's convention).
    The running sum is taken in float64 whatever the input dtype, and its whole number of cycles is
    removed (phase wrapped to less than one cycle) before casting back, so float32 signals of any
    length do not drift. Harmonic ``k`` is silenced at every sample where ``k * f0 >= sample_rate / 2``
    (anti-aliasing mask; the mask carries no gradient). Gradients flow to both ``amplitudes`` and
    ``f0`` (through the phase).
    """
    f0 = _float(_as_tensor(f0))
    amplitudes = _float(_as_tensor(amplitudes))
    if f0.ndim == 2:
        f0 = f0.unsqueeze(-1)
    if f0.ndim != 3 or f0.shape[-1] != 1:
        raise ValueError(f"harmonic_oscillator: f0 must be (batch, samples, 1), got shape {tuple(f0.shape)}")
    if amplitudes.ndim != 3 or amplitudes.shape[:2] != f0.shape[:2]:
        raise ValueError(f"harmonic_oscillator: amplitudes must be (batch, samples, n_harmonics) matching f0 "
                         f"{tuple(f0.shape)}, got {tuple(amplitudes.shape)}")
    if sample_rate <= 0:
        raise ValueError(f"harmonic_oscillator: sample_rate must be positive, got {sample_rate}")
    out_dtype = dt.promote(f0.dtype, amplitudes.dtype)
    k_max = amplitudes.shape[-1]

    # phase in cycles, accumulated in float64; the integer part is detached (no gradient) and removed
    cycles = (f0.to(dt.float64) * (1.0 / sample_rate)).cumsum(1)
    whole = cycles.detach().to(dt.int64).to(dt.float64)
    cycles = (cycles - whole).to(out_dtype)                                   # (B, N, 1), |.| < 1

    harmonics = Tensor(np.arange(1, k_max + 1, dtype=out_dtype.np).reshape(1, 1, k_max),
                       dtype=out_dtype, device=f0.device)
    sines = (cycles * (2.0 * math.pi) * harmonics).sin()                     # (B, N, K)
    f0d = f0.detach().to(out_dtype)
    audible = (f0d * harmonics) < (sample_rate / 2.0)                         # (B, N, K) bool
    amps = where(audible, amplitudes.to(out_dtype), 0.0)
    return (amps * sines).sum(-1)


# ---- filtered noise ------------------------------------------------------------------------------
def noise_filter_ir(magnitudes) -> Tensor:
    """Linear-phase FIR filters designed from band magnitudes, one per frame.

    ``magnitudes (..., n_bands)`` (``n_bands = M >= 2``) sample a real, zero-phase frequency response
    at the ``M`` frequencies ``m / (2 (M - 1))`` of the sample rate, ``m = 0..M-1`` (DC to Nyquist).
    The inverse real DFT of size ``N = 2 (M - 1)`` gives the zero-phase impulse response

        ``h[t] = (H_0 + (-1)^t H_{M-1} + 2 sum_{m=1}^{M-2} H_m cos(2 pi m t / N)) / N``

    which is taken for ``t = -(M-1) .. M-1`` (``L = 2M - 1`` taps centred on tap ``M - 1``),
    computed as one matmul with a precomputed cosine matrix, and multiplied by a Hann window of
    length ``L`` that is nonzero on every tap (``0.5 - 0.5 cos(2 pi (j + 1) / (L + 1))``).
    Returns ``(..., L)``; the filter is symmetric, so its delay is exactly ``M - 1`` samples.
    """
    mags = _float(_as_tensor(magnitudes))
    m_bands = mags.shape[-1]
    if m_bands < 2:
        raise ValueError(f"noise_filter_ir: need at least 2 bands, got {m_bands}")
    n_fft = 2 * (m_bands - 1)
    taps = 2 * m_bands - 1
    t = np.arange(taps) - (m_bands - 1)
    m = np.arange(m_bands)
    scale = np.full(m_bands, 2.0)
    scale[0] = scale[-1] = 1.0
    window = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(taps) + 1) / (taps + 1))
    basis = scale[:, None] * np.cos(2 * np.pi * m[:, None] * t[None, :] / n_fft) / n_fft * window[None, :]
    return mags @ Tensor(basis.astype(mags.dtype.np), dtype=mags.dtype, device=mags.device)      # (..., L)


def filtered_noise(magnitudes, hop: int, seed: Optional[int] = None, noise=None) -> Tensor:
    """Filtered-noise synthesizer: white noise shaped by per-frame filter magnitudes.

    Args:
        magnitudes: ``(batch, frames, n_bands)`` linear filter magnitudes per frame, ``n_bands >= 2``
            bands evenly spaced from DC to Nyquist (see :func:`noise_filter_ir`).
        hop: samples per frame; the output has ``frames * hop`` samples.
        seed: seeds the noise (same seed, same noise); ``None`` draws from audiograd's global
            generator (:func:`audiograd.manual_seed`).
        noise: optional ``(batch, frames * hop)`` excitation to use instead of generated noise.

    Returns:
        audio ``(batch, frames * hop)`` in the dtype of ``magnitudes``.

    Method (DDSP's): uniform noise in ``[-1, 1)`` is cut into non-overlapping blocks of ``hop``
    samples, block ``i`` belonging to frame ``i``. Each frame's magnitudes become a linear-phase FIR
    of ``L = 2 n_bands - 1`` taps (:func:`noise_filter_ir`); block ``i`` is fully convolved with it
    (``hop + L - 1`` samples, written as windows-of-the-block @ reversed filter) and the results are
    overlap-added at ``i * hop``. The filter delay of ``n_bands - 1`` samples is removed, so the
    filtering is zero-phase: a filter's response is centred on its frame's block, and its tails
    spill into the neighbouring blocks (and are cut at the ends of the signal).
    Gradients flow to ``magnitudes``; the noise is constant.
    """
    mags = _float(_as_tensor(magnitudes))
    if mags.ndim != 3:
        raise ValueError(f"filtered_noise: magnitudes must be (batch, frames, n_bands), got {tuple(mags.shape)}")
    if not isinstance(hop, (int, np.integer)) or hop < 1:
        raise ValueError(f"filtered_noise: hop must be a positive int, got {hop!r}")
    hop = int(hop)
    b, frames, m_bands = mags.shape
    length = frames * hop
    if noise is None:
        gen = np.random.default_rng(seed) if seed is not None else None
        noise = rand(b, length, dtype=mags.dtype, generator=gen) * 2.0 - 1.0
    else:
        noise = _as_tensor(noise).to(mags.dtype)
        if tuple(noise.shape) != (b, length):
            raise ValueError(f"filtered_noise: noise must be {(b, length)}, got {tuple(noise.shape)}")

    ir = noise_filter_ir(mags)                                               # (B, F, L)
    taps = ir.shape[-1]
    delay = m_bands - 1
    blocks = noise.reshape(b, frames, hop)
    # full convolution y[t] = sum_j h[j] x[t - j], t = 0 .. hop+L-2, as windows @ flipped h
    padded = pad(blocks, (taps - 1, taps - 1))                                # (B, F, hop + 2(L-1))
    windows = padded.unfold(2, taps, 1)                                       # (B, F, hop+L-1, L)
    conv = (windows @ ir.flip(-1).unsqueeze(-1)).squeeze(-1)                  # (B, F, hop+L-1)
    total = (frames - 1) * hop + conv.shape[-1]
    signal = fold(conv, 1, total, hop)                                        # (B, total)
    return signal[:, delay:delay + length]
