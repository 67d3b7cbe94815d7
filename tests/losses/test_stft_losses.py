"""STFT losses (audiograd.losses.STFTLoss and friends) against auraloss 0.4.0: values and
input gradients on audio-like signals (sums of sines plus noise).

auraloss is an optional test dependency (``pip install --no-deps auraloss==0.4.0``; its
default STFT path needs only torch and numpy); without it the comparisons are skipped.
Float32 gradients are judged against auraloss in float64 (relative L2 error no worse than
4x torch's float32 error, floor 5e-3); float64 values and gradients elementwise: the log-magnitude
term divides by small magnitudes, which amplifies the rounding differences of the two FFTs.
"""
import copy

import numpy as np
import pytest
import torch

import audiograd as ag
from audiograd.losses import MultiResolutionSTFTLoss, STFTLoss, SumAndDifferenceSTFTLoss

try:
    import auraloss.freq as aura
    _AURA_ERR = None
except Exception as e:  # pragma: no cover - depends on the environment
    aura, _AURA_ERR = None, e

needs_auraloss = pytest.mark.skipif(aura is None, reason=f"auraloss 0.4.0 not importable ({_AURA_ERR!r}); "
                                    "pip install --no-deps auraloss==0.4.0")


def audio(B, C, T=8192, seed=0, dtype=np.float32):
    r = np.random.default_rng(seed)
    t = np.arange(T) / 16000.0
    f = r.uniform(50, 4000, (B, C, 1, 5))
    a = r.uniform(0.1, 1.0, (B, C, 1, 5))
    ph = r.uniform(0, 2 * np.pi, (B, C, 1, 5))
    x = (a * np.sin(2 * np.pi * f * t[:, None] + ph)).sum(-1) + 0.05 * r.standard_normal((B, C, T))
    return x.astype(dtype)


def _double_windows(m):
    m.double()  # the A-weighting prefilter's taps (float32-rounded values) as float64
    for mod in m.modules():
        if isinstance(mod, aura.STFTLoss):
            mod.window = getattr(torch, mod.window_name if hasattr(mod, "window_name") else "hann_window")(
                mod.win_length, dtype=torch.float64)


def compare(ours, theirs, x, y, dtype):
    if dtype == np.float64:
        _double_windows(theirs)
    xa = ag.tensor(x, requires_grad=True)
    ya = ag.tensor(y, requires_grad=True)
    la = ours(xa, ya)
    la.backward()
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.tensor(y, requires_grad=True)
    lt = theirs(xt, yt)
    lt.backward()
    assert tuple(la.shape) == tuple(lt.shape)
    if dtype == np.float64:
        np.testing.assert_allclose(la.numpy(), lt.detach().numpy(), rtol=1e-10)
        for a, t in ((xa, xt), (ya, yt)):
            g = t.grad.numpy()
            np.testing.assert_allclose(a.grad.numpy(), g, rtol=1e-7, atol=1e-9 * np.abs(g).max())
    else:
        np.testing.assert_allclose(la.numpy(), lt.detach().numpy(), rtol=1e-4)
        # float32 rounding is amplified by 1/magnitude in the log term: judge both float32
        # gradients against auraloss in float64 and require ours to be about as accurate as torch's
        theirs64 = copy.deepcopy(theirs)
        _double_windows(theirs64)
        x64 = torch.tensor(x.astype(np.float64), requires_grad=True)
        y64 = torch.tensor(y.astype(np.float64), requires_grad=True)
        theirs64(x64, y64).backward()
        for a, t, r in ((xa, xt, x64), (ya, yt, y64)):
            assert a.grad.dtype == ag.float32
            ref = r.grad.numpy()
            ours_err = np.linalg.norm(a.grad.numpy() - ref) / np.linalg.norm(ref)
            torch_err = np.linalg.norm(t.grad.numpy() - ref) / np.linalg.norm(ref)
            assert ours_err <= max(4 * torch_err, 5e-3), f"float32 gradient error {ours_err:.2e} vs torch's {torch_err:.2e}"


@needs_auraloss
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stft_loss_default(dtype):
    compare(STFTLoss(), aura.STFTLoss(), audio(4, 1, dtype=dtype), audio(4, 1, seed=1, dtype=dtype), dtype)


@needs_auraloss
@pytest.mark.parametrize("kw", [dict(w_lin_mag=1.0, mag_distance="L2"), dict(w_sc=0.0, w_lin_mag=0.5),
                                dict(reduction="sum"), dict(window="hamming_window")])
def test_stft_loss_options(kw):
    args = (512, 128, 400)
    x, y = audio(2, 2, 4096, seed=2), audio(2, 2, 4096, seed=3)
    compare(STFTLoss(*args, **kw), aura.STFTLoss(*args, **kw), x, y, np.float32)


@needs_auraloss
def test_stft_loss_full_output():
    x, y = audio(2, 1, 4096, seed=4), audio(2, 1, 4096, seed=5)
    ours = STFTLoss(256, 64, 256, output="full", w_lin_mag=1.0)(ag.tensor(x), ag.tensor(y))
    theirs = aura.STFTLoss(256, 64, 256, output="full", w_lin_mag=1.0)(torch.tensor(x), torch.tensor(y))
    assert len(ours) == len(theirs) == 5
    for a, t in zip(ours[:4], theirs[:4]):
        np.testing.assert_allclose(a.numpy(), t.numpy(), rtol=1e-4)
    assert ours[4] == theirs[4] == 0.0


@needs_auraloss
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multi_resolution_default(dtype):
    compare(MultiResolutionSTFTLoss(), aura.MultiResolutionSTFTLoss(),
            audio(4, 1, dtype=dtype, seed=6), audio(4, 1, dtype=dtype, seed=7), dtype)


@needs_auraloss
def test_sum_and_difference():
    f, h, w = [512, 256, 128], [128, 64, 32], [512, 256, 128]
    compare(SumAndDifferenceSTFTLoss(f, h, w), aura.SumAndDifferenceSTFTLoss(f, h, w),
            audio(2, 2, seed=8), audio(2, 2, seed=9), np.float32)


@needs_auraloss
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sample_rate", [44100, 16000])
def test_perceptual_weighting(sample_rate, dtype):
    """The A-weighting prefilter, in the stereo sum-and-difference setting of SAO's training."""
    f, h, w = [512, 128, 32], [128, 32, 8], [512, 128, 32]
    kw = dict(perceptual_weighting=True, sample_rate=sample_rate)
    compare(SumAndDifferenceSTFTLoss(f, h, w, **kw), aura.SumAndDifferenceSTFTLoss(f, h, w, **kw),
            audio(2, 2, 4096, seed=12, dtype=dtype), audio(2, 2, 4096, seed=13, dtype=dtype), dtype)


def test_perceptual_weighting_needs_sample_rate():
    with pytest.raises(ValueError, match="sample_rate"):
        STFTLoss(perceptual_weighting=True)


@needs_auraloss
@pytest.mark.parametrize("kw", [dict(w_phs=1.0), dict(w_sc=0.0, w_log_mag=0.0, w_phs=0.5, reduction="sum")])
def test_stft_loss_phase_term(kw):
    """The phase term (mean squared difference of the STFT angles) in float64.

    A centred frame over reflect padding is even-symmetric, so the first frame's spectrum is
    real and its angles (0 or +-pi) are decided by rounding noise, in any implementation. The
    signals start and end with silence, which makes those frames exactly zero (angle 0)."""
    args = (256, 64, 256)
    x, y = audio(2, 1, 2048, seed=10, dtype=np.float64), audio(2, 1, 2048, seed=11, dtype=np.float64)
    for s in (x, y):
        s[..., :args[0] // 2 + 1] = 0
        s[..., -(args[0] // 2 + 1):] = 0
    compare(STFTLoss(*args, **kw), aura.STFTLoss(*args, **kw), x, y, np.float64)


@pytest.mark.parametrize("kw", [dict(scale="mel", sample_rate=16000, n_bins=64),
                                dict(scale_invariance=True),
                                dict(window="kaiser_window")])
def test_unimplemented_options_raise(kw):
    with pytest.raises(NotImplementedError):
        STFTLoss(**kw)


def test_sum_and_difference_needs_stereo():
    loss = SumAndDifferenceSTFTLoss([64], [16], [64])
    x = ag.tensor(audio(1, 1, 512))
    with pytest.raises(ValueError):
        loss(x, x)
