"""Short-time Fourier transform and its inverse as tensor ops, matching ``torch.stft`` and
``torch.istft``.

The signal is padded (reflect by default), cut into frames with the ``unfold`` view and
windowed; the frames are transformed by the batched real FFT of ``dsp.fft`` (power-of-two
``n_fft``) or, for other lengths, multiplied by one precomputed matrix holding the windowed
DFT. ``istft`` inverts the frames, windows them again and overlap-adds them with ``fold``.
Gradients come from autograd through every step, so contributions of overlapping frames and
of all bins are summed exactly.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Tuple

import numpy as np

from .. import dtypes as dt
from ..tensor.movement import cat, fold, pad as _pad, stack
from ..tensor.tensor import Tensor
from .fft import fft_supported, irfft_frames, rfft_frames


def hann_window(window_length: int, periodic: bool = True, dtype=None, device=None) -> Tensor:
    """Hann window of ``window_length`` samples, like ``torch.hann_window``.

    ``periodic=True`` (the default) gives the window for spectral analysis (a length
    ``window_length + 1`` symmetric window with its last sample dropped).
    """
    return Tensor(_hann(int(window_length), bool(periodic)), dtype=dtype or dt.default_float, device=device)


def _hann(n: int, periodic: bool) -> np.ndarray:
    if n == 0:
        return np.zeros(0)
    if n == 1:
        return np.ones(1)
    denom = n if periodic else n - 1
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / denom)


def _window_array(window, win_length: int) -> np.ndarray:
    if window is None:
        return np.ones(win_length)
    w = window.numpy() if isinstance(window, Tensor) else np.asarray(window)
    if w.ndim != 1 or w.shape[0] != win_length:
        raise ValueError(f"stft: window must be 1-D of length win_length={win_length}, got shape {w.shape}")
    return w.astype(np.float64)


@lru_cache(maxsize=64)
def _dft_matrix(n_fft: int, onesided: bool, normalized: bool, window_bytes: Optional[bytes],
                dtype_name: str) -> np.ndarray:
    """(n_fft, 2 * n_freq): windowed cos columns, then windowed -sin columns."""
    n_freq = n_fft // 2 + 1 if onesided else n_fft
    n = np.arange(n_fft)
    k = np.arange(n_freq)
    # exact integer phase index keeps the angles accurate for large n_fft
    ang = 2.0 * np.pi * ((n[:, None] * k[None, :]) % n_fft) / n_fft
    m = np.concatenate([np.cos(ang), -np.sin(ang)], axis=1)
    if window_bytes is not None:
        w = np.frombuffer(window_bytes, dtype=np.float64)
        m = m * w[:, None]
    if normalized:
        m = m / np.sqrt(n_fft)
    return m.astype(dtype_name)


def stft(x: Tensor, n_fft: int, hop_length: Optional[int] = None, win_length: Optional[int] = None,
         window=None, center: bool = True, pad_mode: str = "reflect", normalized: bool = False,
         onesided: bool = True) -> Tuple[Tensor, Tensor]:
    """Short-time Fourier transform of ``x`` (..., time), like ``torch.stft(..., return_complex=True)``.

    Returns ``(real, imag)``, each shaped (..., n_freq, n_frames) with
    ``n_freq = n_fft // 2 + 1`` when ``onesided`` (else ``n_fft``).

    ``hop_length`` defaults to ``n_fft // 4`` and ``win_length`` to ``n_fft``. ``window`` is a
    1-D tensor or array of ``win_length`` samples (None means a rectangular window); a window
    shorter than ``n_fft`` is zero-padded on both sides to be centred in the frame. With
    ``center`` the signal is padded by ``n_fft // 2`` on both sides using ``pad_mode``
    ('reflect', 'constant', 'replicate' or 'circular'). ``normalized`` scales by ``n_fft ** -0.5``.
    A window that requires grad gets a gradient; otherwise it is folded into the DFT matrix.
    """
    if not isinstance(x, Tensor):
        x = Tensor(np.asarray(x))
    if not x.dtype.is_float:
        raise TypeError(f"stft: input must be a floating point tensor, got {x.dtype.name}")
    if x.ndim < 1:
        raise ValueError("stft: input must have at least one (time) dimension")
    n_fft = int(n_fft)
    hop_length = n_fft // 4 if hop_length is None else int(hop_length)
    win_length = n_fft if win_length is None else int(win_length)
    if n_fft < 1 or hop_length < 1:
        raise ValueError(f"stft: n_fft ({n_fft}) and hop_length ({hop_length}) must be positive")
    if not 0 < win_length <= n_fft:
        raise ValueError(f"stft: expected 0 < win_length <= n_fft, got win_length={win_length}, n_fft={n_fft}")

    if center:
        p = n_fft // 2
        x = _pad(x, [p, p], mode=pad_mode)
    if x.shape[-1] < n_fft:
        raise ValueError(f"stft: input of {x.shape[-1]} samples (after padding) is shorter than n_fft={n_fft}")
    frames = x.unfold(-1, n_fft, hop_length)  # (..., n_frames, n_fft)

    left = (n_fft - win_length) // 2
    grad_window = isinstance(window, Tensor) and window.requires_grad
    if grad_window:
        if tuple(window.shape) != (win_length,):
            raise ValueError(f"stft: window must be 1-D of length win_length={win_length}, got {tuple(window.shape)}")
        w = _pad(window.to(dtype=x.dtype), [left, n_fft - win_length - left])
        frames = frames * w
        w_np = None
    else:
        w_np = np.zeros(n_fft)
        w_np[left:left + win_length] = _window_array(window, win_length)
        if window is None and win_length == n_fft:
            w_np = None

    if fft_supported(n_fft):
        if w_np is not None:
            frames = frames * Tensor(w_np, dtype=x.dtype, device=x.device)
        spec = rfft_frames(frames.transpose(-1, -2))  # (..., 2, n_fft // 2 + 1, n_frames)
        if normalized:
            spec = spec * (n_fft ** -0.5)
        re, im = spec[..., 0, :, :], spec[..., 1, :, :]
        if not onesided:  # the rest of the spectrum of a real signal mirrors the first half
            half = n_fft // 2
            re = cat([re, re[..., 1:half, :].flip(-2)], -2)
            im = cat([im, -im[..., 1:half, :].flip(-2)], -2)
        return re, im

    m = _dft_matrix(n_fft, bool(onesided), bool(normalized), None if w_np is None else w_np.tobytes(), x.dtype.name)
    spec = frames.matmul(Tensor(m, dtype=x.dtype, device=x.device)).transpose(-1, -2)  # (..., 2 * n_freq, n_frames)
    n_freq = m.shape[1] // 2
    return spec[..., :n_freq, :], spec[..., n_freq:, :]


def istft(real: Tensor, imag: Tensor, n_fft: int, hop_length: Optional[int] = None,
          win_length: Optional[int] = None, window=None, center: bool = True, normalized: bool = False,
          onesided: bool = True, length: Optional[int] = None) -> Tensor:
    """Inverse of ``stft`` like ``torch.istft``: ``real`` and ``imag`` shaped (..., n_freq, n_frames)
    become a signal (..., samples).

    Each frame is inverted, windowed and overlap-added, and the sum is divided by the
    overlap-added squared window (an error if that is zero somewhere, as in PyTorch). With
    ``center`` the ``n_fft // 2`` padding samples are dropped from both ends; ``length`` trims
    or zero-pads the result. ``n_fft`` must be a power of two >= 4 and the spectrum onesided.
    """
    n_fft = int(n_fft)
    hop_length = n_fft // 4 if hop_length is None else int(hop_length)
    win_length = n_fft if win_length is None else int(win_length)
    if not onesided:
        raise ValueError("istft: only onesided spectra (n_fft // 2 + 1 bins) are supported")
    if not fft_supported(n_fft):
        raise ValueError(f"istft: n_fft must be a power of two >= 4, got {n_fft}")
    if not 0 < win_length <= n_fft or hop_length < 1:
        raise ValueError(f"istft: expected 0 < win_length <= n_fft and hop_length > 0, got "
                         f"win_length={win_length}, n_fft={n_fft}, hop_length={hop_length}")
    if not (real.dtype.is_float and imag.dtype.is_float):
        raise TypeError(f"istft: real and imag must be floating point, got {real.dtype.name} and {imag.dtype.name}")
    if tuple(real.shape) != tuple(imag.shape):
        raise ValueError(f"istft: real and imag shapes differ: {tuple(real.shape)} vs {tuple(imag.shape)}")
    if real.ndim < 2 or real.shape[-2] != n_fft // 2 + 1:
        raise ValueError(f"istft: expected (..., {n_fft // 2 + 1}, n_frames) for n_fft={n_fft}, "
                         f"got {tuple(real.shape)}")
    n_frames = real.shape[-1]
    left = (n_fft - win_length) // 2
    w_np = np.zeros(n_fft)
    w_np[left:left + win_length] = _window_array(window, win_length)

    frames = irfft_frames(stack([real, imag], -3), n_fft)  # (..., n_fft, n_frames)
    if normalized:
        frames = frames * (n_fft ** 0.5)
    total = n_fft + hop_length * (n_frames - 1)
    windows = frames.transpose(-1, -2) * Tensor(w_np, dtype=frames.dtype, device=frames.device)  # (..., n_frames, n_fft)
    y = fold(windows, windows.ndim - 2, total, hop_length)

    envelope = np.zeros(total)
    for j in range(n_frames):
        envelope[j * hop_length:j * hop_length + n_fft] += w_np * w_np
    start = n_fft // 2 if center else 0
    if length is not None:   # as torch: samples past the last frame come out as zeros
        end = min(start + int(length), total)
    else:
        end = total - n_fft // 2 if center else total
    if end > start and np.abs(envelope[start:end]).min() < 1e-11:
        raise ValueError("istft: the window's overlap-add is zero somewhere (window, hop_length and "
                         "win_length do not satisfy the NOLA condition)")
    y = y[..., start:end] / Tensor(envelope[start:end], dtype=y.dtype, device=y.device)
    if length is not None and y.shape[-1] < length:
        y = _pad(y, [0, int(length) - y.shape[-1]])
    return y
