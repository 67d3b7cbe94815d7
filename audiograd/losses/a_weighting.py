"""auraloss's perceptual A-weighting prefilter: a 101-tap FIR fitted to the A-weighting curve.

The analog A-weighting filter (IEC/CD 1672 pole frequencies, +1.9997 dB at 1 kHz) is mapped to
the sample rate by the bilinear transform; its magnitude response at 512 frequencies is fitted
by a linear-phase FIR in the least-squares sense. The design uses ``scipy.signal``, imported
here only; the taps are rounded to float32, as auraloss stores them.
"""
from __future__ import annotations

import functools

import numpy as np

from ..nn.conv import conv1d
from ..tensor.autograd import Function, no_grad
from ..tensor.tensor import Tensor

NTAPS = 101


@functools.lru_cache(maxsize=8)
def a_weighting_taps(sample_rate: float, ntaps: int = NTAPS) -> np.ndarray:
    """The FIR taps (float32) of the A-weighting prefilter at ``sample_rate``."""
    try:
        import scipy.signal
    except ImportError:
        raise ImportError("perceptual_weighting designs its A-weighting filter with scipy: "
                          "pip install scipy (or audiograd[train])") from None
    if ntaps % 2 == 0:
        raise ValueError(f"A-weighting: ntaps must be odd, got {ntaps}")
    f1, f2, f3, f4, a1000 = 20.598997, 107.65265, 737.86223, 12194.217, 1.9997
    num = [(2 * np.pi * f4) ** 2 * 10 ** (a1000 / 20), 0, 0, 0, 0]
    den = np.polymul([1, 4 * np.pi * f4, (2 * np.pi * f4) ** 2], [1, 4 * np.pi * f1, (2 * np.pi * f1) ** 2])
    den = np.polymul(np.polymul(den, [1, 2 * np.pi * f3]), [1, 2 * np.pi * f2])
    b, a = scipy.signal.bilinear(num, den, fs=sample_rate)
    freqs, response = scipy.signal.freqz(b, a, worN=512, fs=sample_rate)
    taps = scipy.signal.firls(ntaps, freqs, np.abs(response), fs=sample_rate)
    return taps.astype(np.float32)


def _filter(x: Tensor, taps: np.ndarray) -> Tensor:
    w = Tensor(taps.reshape(1, 1, -1), dtype=x.dtype, device=x.device)
    with no_grad():
        return conv1d(x, w, padding=len(taps) // 2)


class _FixedFIR(Function):
    """Filtering (batch, 1, time) by constant taps. Its gradient is the correlation with the
    same taps, computed as one more convolution: the generic gradient of a 101-tap convolution
    (the outer product of taps and output gradient, folded) would be inlined into whatever
    consumes it, 101 terms at every use."""

    def forward(self, x, taps):
        self.taps = taps
        return _filter(Tensor._from_node(x), taps).node

    def backward(self, grad):
        return (_filter(grad, self.taps[::-1].copy()),)


def a_weight(x: Tensor, sample_rate: float) -> Tensor:
    """``x`` (batch, channels, time) filtered channel by channel, same length (zero padded)."""
    taps = a_weighting_taps(float(sample_rate))
    b, c, t = x.shape
    return _FixedFIR.apply(x.reshape(b * c, 1, t), taps=taps).reshape(b, c, t)
