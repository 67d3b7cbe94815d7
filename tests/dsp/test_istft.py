"""audiograd.dsp.istft against torch.istft (values and gradients with respect to the real and
imaginary parts), stft -> istft round trips, rectangular windows, errors (including the NOLA
check), plus stft cases test_stft.py does not cover (two-sided / normalized spectra for tiny
and large power-of-two sizes in float32 with two batch dims, and the DFT-matmul path used for
sizes that are not powers of two).

Tolerances: float64 (1e-10, 1e-10); float32 rtol 1e-4 with atol scaled for the length of the
transform (the inverse FFT and torch's differ in rounding).
"""
import os
import sys
import warnings

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tensor"))

import audiograd as ag  # noqa: E402
from audiograd.dsp import hann_window, istft, stft  # noqa: E402
from torch_compare import check, randn  # noqa: E402


def _window(kind, win, dtype, lib):
    """'hann', 'hann+' (hann + 0.1: nonzero at the edges, for center=False) or None (rectangular)."""
    if kind is None:
        return None
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    if kind == "hann+":
        w = w + 0.1
    if lib is torch:
        return torch.tensor(w, dtype=dtype)
    return ag.tensor(w).to(dtype=dtype)


def _istft_f(n_fft, hop, win, center, normalized, length, window):
    def f(lib, re, im):
        w = _window(window, win, re.dtype, lib)
        if lib is torch:  # torch.istft takes at most one batch dim
            batch = re.shape[:-2]
            spec = torch.complex(re, im).reshape(-1, *re.shape[-2:])
            y = torch.istft(spec, n_fft, hop, win, w, center=center, normalized=normalized, length=length)
            return y.reshape(*batch, y.shape[-1])
        return istft(re, im, n_fft, hop, win, w, center=center, normalized=normalized, length=length)
    return f


def _case(n_fft, hop, win, center, normalized, length, window, frames, dtypes=(np.float32, np.float64)):
    return [pytest.param(n_fft, hop, win, center, normalized, length, window, frames, dtype,
                         id=f"{np.dtype(dtype).name}-n{n_fft}-h{hop}-w{win}-{'c' if center else 'nc'}"
                            f"{'-norm' if normalized else ''}-L{length}-{window}-f{frames}")
            for dtype in dtypes]


F64 = (np.float64,)


ISTFT_CASES = sum([
    # n_fft, hop, win_length, center, normalized, length, window, frames
    _case(16, 1, 16, True, False, None, "hann", 12, dtypes=F64),
    _case(8, 1, 8, True, False, None, "hann", 12, dtypes=(np.float32,)),
    _case(8, 1, 6, True, True, 5, "hann", 12, dtypes=F64),   # shorter window, normalized, trimmed
    _case(8, 1, 8, False, False, None, None, 12, dtypes=F64),  # rectangular, not centred
    _case(8, 1, 8, False, True, 10, "hann+", 6, dtypes=F64),   # not centred, trimmed
    _case(8, 1, 8, False, False, 20, "hann+", 6, dtypes=F64),  # not centred, zero-padded past the 13 samples
    _case(64, 16, 64, True, False, None, "hann", 9),
    _case(64, 16, 48, True, True, None, "hann", 9),
    _case(128, 32, 100, True, False, 200, "hann", 9),    # length shorter than natural
    _case(32, 8, 32, False, False, None, "hann+", 7),
    _case(32, 8, 20, True, False, None, None, 7),       # rectangular window shorter than n_fft
    _case(8, 1, 8, True, False, 12, "hann", 9),        # natural length 8 < 12
    _case(64, 16, 64, True, False, 150, "hann", 9),
], [])


@pytest.mark.parametrize("n_fft,hop,win,center,normalized,length,window,frames,dtype", ISTFT_CASES)
def test_istft_matches_torch(n_fft, hop, win, center, normalized, length, window, frames, dtype):
    shape = (2, n_fft // 2 + 1, frames)
    re = randn(*shape, dtype=dtype, seed=n_fft + hop + frames)
    im = randn(*shape, dtype=dtype, seed=n_fft + hop + frames + 1)
    if dtype == np.float64:
        tol = dict(rtol=1e-10, atol=1e-10)
    else:
        tol = dict(rtol=1e-4, atol=1e-5)
    with warnings.catch_warnings():  # torch warns about center=False
        warnings.simplefilter("ignore")
        check(_istft_f(n_fft, hop, win, center, normalized, length, window), re, im, **tol)


def test_istft_1d_spectrum_and_batch_dims():
    """A spectrum without batch dims, and one with two batch dims."""
    for shape in [(5, 12), (2, 3, 5, 12)]:
        re = randn(*shape, dtype=np.float64, seed=len(shape))
        im = randn(*shape, dtype=np.float64, seed=len(shape) + 1)
        check(_istft_f(8, 1, 8, True, False, None, "hann"), re, im, rtol=1e-10, atol=1e-10)


# ---- round trips ------------------------------------------------------------------------------

def _roundtrip(x, n_fft, hop, win, window, center=True, normalized=False, length=None):
    w = None if window is None else hann_window(win, dtype=ag.float64)
    re, im = stft(x, n_fft, hop, win, w, center=center, normalized=normalized)
    return istft(re, im, n_fft, hop, win, w, center=center, normalized=normalized, length=length)


@pytest.mark.parametrize("n_fft,hop,win,window,normalized,batch,samples,length", [
    pytest.param(8, 1, 6, "hann", True, (), 30, 30),
    pytest.param(8, 1, 8, None, False, (2, 2), 20, None),                           # rectangular
    pytest.param(64, 16, 64, "hann", False, (2,), 1008, None),
    pytest.param(256, 64, 200, "hann", True, (2, 3), 1024, 1024),
    pytest.param(64, 32, 64, None, False, (1,), 320, None),
    # the usual use: length = the original length, not a multiple of hop_length
    pytest.param(64, 16, 64, "hann", False, (2,), 1000, 1000),
])
def test_stft_istft_round_trip(n_fft, hop, win, window, normalized, batch, samples, length):
    x0 = np.random.default_rng(samples).standard_normal(batch + (samples,))
    x = ag.tensor(x0, requires_grad=True)
    y = _roundtrip(x, n_fft, hop, win, window, normalized=normalized, length=length)
    assert tuple(y.shape) == x0.shape
    np.testing.assert_allclose(y.numpy(), x0, rtol=0, atol=1e-12)
    # the round trip is the identity, so is its gradient
    w0 = np.random.default_rng(1).standard_normal(x0.shape)
    (y * ag.tensor(w0)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), w0, rtol=0, atol=1e-12)


def test_round_trip_length_not_multiple_of_hop_hop1_free():
    """With hop_length 1 (no polyphase fold): the samples of an
    stft frame that stick out on the right are only reachable through ``length``."""
    n_fft, hop = 16, 1
    x0 = np.random.default_rng(0).standard_normal((1, 30))
    w = hann_window(n_fft, dtype=ag.float64)
    re, im = stft(ag.tensor(x0), n_fft, hop, window=w)
    re, im = re[..., :-4], im[..., :-4]          # drop the last frames: natural length 26 < 30
    got = istft(re, im, n_fft, hop, window=w, length=30).numpy()
    s = torch.stft(torch.tensor(x0), n_fft, hop, window=torch.hann_window(n_fft, dtype=torch.float64),
                   return_complex=True)[..., :-4]
    want = torch.istft(s, n_fft, hop, window=torch.hann_window(n_fft, dtype=torch.float64), length=30).numpy()
    np.testing.assert_allclose(want[:, :26], x0[:, :26], atol=1e-12)  # torch: exact on the covered part
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# ---- errors -----------------------------------------------------------------------------------

def test_istft_errors():
    z = ag.tensor(np.zeros((2, 33, 5)))
    with pytest.raises(ValueError, match="onesided"):
        istft(ag.tensor(np.zeros((2, 64, 5))), ag.tensor(np.zeros((2, 64, 5))), 64, 16, onesided=False)
    with pytest.raises(ValueError, match="power of two"):
        istft(ag.tensor(np.zeros((2, 25, 5))), ag.tensor(np.zeros((2, 25, 5))), 48, 12)
    with pytest.raises(ValueError, match="power of two"):
        istft(ag.tensor(np.zeros((2, 2, 5))), ag.tensor(np.zeros((2, 2, 5))), 2, 1)
    with pytest.raises(ValueError, match="differ"):
        istft(z, ag.tensor(np.zeros((2, 33, 6))), 64, 16)
    with pytest.raises(ValueError, match="differ"):
        istft(z, ag.tensor(np.zeros((1, 33, 5))), 64, 16)
    with pytest.raises(ValueError, match="expected"):  # wrong bin count
        istft(ag.tensor(np.zeros((2, 32, 5))), ag.tensor(np.zeros((2, 32, 5))), 64, 16)
    with pytest.raises(ValueError, match="expected"):  # no frame axis
        istft(ag.tensor(np.zeros(33)), ag.tensor(np.zeros(33)), 64, 16)
    with pytest.raises(ValueError, match="win_length"):
        istft(z, z, 64, 16, win_length=65)
    with pytest.raises(ValueError, match="hop_length"):
        istft(z, z, 64, 0)


def test_istft_nola_violation_hop1():
    """A window shorter than n_fft leaves zeros at the frame edges: with center=False the first
    output sample has a zero envelope (torch raises too)."""
    re = ag.tensor(np.ones((9, 6)))
    with pytest.raises(ValueError, match="NOLA"):
        istft(re, re, 16, 1, 10, hann_window(10, dtype=ag.float64), center=False)
    with pytest.raises(RuntimeError):
        torch.istft(torch.ones(9, 6, dtype=torch.complex128), 16, 1, 10, torch.hann_window(10, dtype=torch.float64),
                    center=False)


def test_istft_nola_violation_hann_hop_n_fft():
    """hann window, hop == n_fft, center=False: the envelope is hann**2, zero at every frame start."""
    re = ag.tensor(np.ones((33, 4)))
    with pytest.raises(RuntimeError):
        torch.istft(torch.ones(33, 4, dtype=torch.complex128), 64, 64,
                    window=torch.hann_window(64, dtype=torch.float64), center=False)
    with pytest.raises(ValueError, match="NOLA"):
        istft(re, re, 64, 64, window=hann_window(64, dtype=ag.float64), center=False)


# ---- stft cases not in test_stft.py -----------------------------------------------------------

def _stft_f(n_fft, hop, win, center, normalized, onesided):
    def f(lib, x):
        if lib is torch:  # torch.stft takes at most one batch dim
            w = torch.hann_window(win, dtype=x.dtype)
            s = torch.stft(x.reshape(-1, x.shape[-1]), n_fft, hop, win, w, center=center, normalized=normalized,
                           onesided=onesided, return_complex=True)
            s = s.reshape(*x.shape[:-1], *s.shape[-2:])
            return s.real, s.imag
        return stft(x, n_fft, hop, win, hann_window(win, dtype=x.dtype), center=center, normalized=normalized,
                    onesided=onesided)
    return f


@pytest.mark.parametrize("n_fft,hop,win,center,normalized,onesided,shape,dtype", [
    (4, 1, 4, True, False, False, (2, 12), np.float64),       # smallest FFT, two-sided (one mirrored bin)
    (8, 3, 6, False, True, False, (30,), np.float64),
    (512, 128, 400, True, True, False, (2, 2, 900), np.float32),
    # not a power of two: the DFT-matmul path
    (6, 2, 6, True, True, False, (2, 40), np.float64),
    (100, 25, 100, False, False, True, (400,), np.float32),
])
def test_stft_twosided_normalized_more_sizes(n_fft, hop, win, center, normalized, onesided, shape, dtype):
    x = randn(*shape, dtype=dtype, seed=n_fft + hop)
    if dtype == np.float64:
        tol = dict(rtol=1e-10, atol=1e-10 * n_fft)
    else:
        tol = dict(rtol=1e-4, atol=2e-6 * n_fft)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(_stft_f(n_fft, hop, win, center, normalized, onesided), x, **tol)
