"""Real FFTs over the frames of a spectrogram, with gradients.

``rfft_frames`` transforms every column of a (..., n_fft, frames) tensor and returns the
real and imaginary planes stacked as (..., 2, n_fft // 2 + 1, frames), the layout of
``torch.stft``'s output. It runs the batched FFT kernel of ``devices.cpu.fft_template`` for
power-of-two lengths; its gradient is that kernel's adjoint, so the contributions of every
bin to every sample are summed exactly.
"""
from __future__ import annotations

from ..graph import lazy
from ..graph.library_ops import RFFT, RFFT_ADJOINT
from ..tensor.autograd import Function
from ..tensor.tensor import Tensor


def fft_supported(n_fft: int) -> bool:
    """Whether ``rfft_frames`` handles frames of ``n_fft`` samples (powers of two from 4)."""
    return n_fft >= 4 and n_fft & (n_fft - 1) == 0


class _RFFT(Function):
    def forward(self, x):
        self.n = n = x.shape[-2]
        return lazy.library(RFFT, (lazy.contiguous(x),), x.dtype, n)

    def backward(self, g):
        return (_RFFTAdjoint.apply(g, n=self.n),)


class _RFFTAdjoint(Function):
    def forward(self, g, n):
        self.n = n
        return lazy.library(RFFT_ADJOINT, (lazy.contiguous(g),), g.dtype, n)

    def backward(self, grad):
        return (_RFFT.apply(grad),)


def rfft_frames(x: Tensor) -> Tensor:
    """Discrete Fourier transform of each column of ``x`` (..., n_fft, frames), ``n_fft`` a
    power of two >= 4: returns (..., 2, n_fft // 2 + 1, frames), real part then imaginary part."""
    if x.ndim < 2:
        raise ValueError(f"rfft_frames: expected (..., n_fft, frames), got shape {tuple(x.shape)}")
    if not x.dtype.is_float:
        raise TypeError(f"rfft_frames: input must be a floating point tensor, got {x.dtype.name}")
    if not fft_supported(x.shape[-2]):
        raise ValueError(f"rfft_frames: n_fft must be a power of two >= 4, got {x.shape[-2]}")
    return _RFFT.apply(x)


def irfft_frames(spec: Tensor, n_fft: int) -> Tensor:
    """Inverse of ``rfft_frames``: (..., 2, n_fft // 2 + 1, frames) to real (..., n_fft, frames),
    like ``numpy.fft.irfft`` along the bins (the imaginary parts of the first and last bin are
    ignored)."""
    import numpy as np
    if not spec.dtype.is_float:
        raise TypeError(f"irfft_frames: input must be a floating point tensor, got {spec.dtype.name}")
    if spec.ndim < 3 or spec.shape[-3] != 2 or spec.shape[-2] != n_fft // 2 + 1:
        raise ValueError(f"irfft_frames: expected (..., 2, {n_fft // 2 + 1}, frames) for n_fft={n_fft}, "
                         f"got {tuple(spec.shape)}")
    if not fft_supported(n_fft):
        raise ValueError(f"irfft_frames: n_fft must be a power of two >= 4, got {n_fft}")
    # the transposed transform sums every bin once; a real signal's spectrum counts the
    # inner bins twice (once for their mirror image), and the inverse divides by n_fft
    weights = np.full((n_fft // 2 + 1, 1), 2.0 / n_fft)
    weights[0] = weights[-1] = 1.0 / n_fft
    return _RFFTAdjoint.apply(spec * Tensor(weights, dtype=spec.dtype, device=spec.device), n=n_fft)
