"""audiograd.dsp.stft against torch.stft: values and gradients, plus a float64
finite-difference gradient check.

Tolerances: float64 (1e-10, 1e-10 * n_fft); float32 rtol 1e-4 with atol scaled by n_fft
(the DFT here is a length-n_fft dot product, torch's an FFT: rounding differs).
"""
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tensor"))

import audiograd as ag  # noqa: E402
from audiograd.dsp import hann_window, stft  # noqa: E402
from torch_compare import check, randn  # noqa: E402

CASES = [  # n_fft, hop, win_length, center
    (64, 16, 64, True),
    (64, 7, 33, True),
    (64, 64, 40, False),
    (256, 64, 256, True),
    (256, 100, 200, False),
    (256, 50, 255, True),
]


def _f(n_fft, hop, win, center, normalized=False, onesided=True):
    def f(lib, x):
        if lib is torch:
            w = torch.hann_window(win, dtype=x.dtype)
            s = torch.stft(x, n_fft, hop, win, w, center=center, pad_mode="reflect", normalized=normalized,
                           onesided=onesided, return_complex=True)
            return s.real, s.imag
        w = hann_window(win, dtype=x.dtype)
        return stft(x, n_fft, hop, win, w, center=center, normalized=normalized, onesided=onesided)
    return f


@pytest.mark.parametrize("n_fft,hop,win,center", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stft_matches_torch(n_fft, hop, win, center, dtype):
    x = randn(3, 1000, dtype=dtype, seed=n_fft + hop)
    if dtype == np.float64:
        tol = dict(rtol=1e-10, atol=1e-10 * n_fft)
    else:
        tol = dict(rtol=1e-4, atol=2e-6 * n_fft)
    check(_f(n_fft, hop, win, center), x, **tol)


@pytest.mark.parametrize("normalized,onesided", [(True, True), (False, False), (True, False)])
def test_stft_normalized_twosided(normalized, onesided):
    x = randn(2, 300, dtype=np.float64, seed=3)
    check(_f(64, 16, 48, True, normalized, onesided), x, rtol=1e-10, atol=1e-10)


def test_stft_1d_and_no_window():
    x = randn(500, dtype=np.float64, seed=4)

    def f(lib, x):
        if lib is torch:
            s = torch.stft(x, 128, 32, window=torch.ones(128, dtype=x.dtype), return_complex=True)
            return s.real, s.imag
        return stft(x, 128, 32)
    check(f, x, rtol=1e-10, atol=1e-10)


def test_window_gradient():
    x = randn(2, 400, dtype=np.float64, seed=5)
    w = np.hanning(50).astype(np.float64) + 0.1

    def f(lib, x, w):
        if lib is torch:
            s = torch.stft(x, 64, 16, 50, w, return_complex=True)
            return s.real, s.imag
        return stft(x, 64, 16, 50, w)
    check(f, x, w, rtol=1e-10, atol=1e-10)


def test_stft_finite_difference_gradient():
    rng = np.random.default_rng(7)
    x0 = rng.standard_normal((1, 80))
    wr = rng.standard_normal((17, 9))
    wi = rng.standard_normal((17, 9))

    def loss_np(xv):
        re, im = stft(ag.tensor(xv), 32, 10, 24, hann_window(24, dtype=ag.float64))
        return float((re.numpy() * wr).sum() + (im.numpy() ** 2 * wi).sum())

    x = ag.tensor(x0, requires_grad=True)
    re, im = stft(x, 32, 10, 24, hann_window(24, dtype=ag.float64))
    assert tuple(re.shape) == (1, 17, 9)
    ((re * ag.tensor(wr)).sum() + (im * im * ag.tensor(wi)).sum()).backward()
    g = x.grad.numpy()
    h = 1e-6
    fd = np.zeros_like(x0)
    for i in range(x0.shape[1]):
        e = np.zeros_like(x0)
        e[0, i] = h
        fd[0, i] = (loss_np(x0 + e) - loss_np(x0 - e)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)


def test_hann_window_matches_torch():
    for n in (1, 2, 7, 64, 1024):
        for periodic in (True, False):
            np.testing.assert_allclose(hann_window(n, periodic, dtype=ag.float64).numpy(),
                                       torch.hann_window(n, periodic, dtype=torch.float64).numpy(), atol=1e-15)


def test_stft_errors():
    x = ag.tensor(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError):
        stft(x, 64, 16, win_length=80)
    with pytest.raises(ValueError):
        stft(x, 256, 16, center=False)
    with pytest.raises(TypeError):
        stft(ag.tensor(np.zeros(100, np.int64)), 32)
