"""DDSP synthesizer pieces: shapes, reference values, the Nyquist mask, float64 gradient checks."""
from __future__ import annotations

import numpy as np
import pytest

import audiograd as ag
from audiograd.dsp.synth import filtered_noise, harmonic_oscillator, noise_filter_ir, upsample_frames


def numeric_check(f, arrays, wrt=None, eps=1e-6, rtol=1e-6, atol=1e-8):
    """Analytic gradients of ``sum(f(*xs) * w)`` against float64 central differences (eps 1e-6)."""
    xs = [np.array(a, dtype=np.float64) for a in arrays]
    wrt = range(len(xs)) if wrt is None else wrt
    with ag.no_grad():
        out_shape = f(*[ag.tensor(x) for x in xs]).shape
    wt = np.random.default_rng(99).standard_normal(out_shape)

    def loss(*ts):
        return (f(*ts) * ag.tensor(wt)).sum()

    ts = [ag.tensor(x.copy(), requires_grad=i in wrt) for i, x in enumerate(xs)]
    loss(*ts).backward()

    def value(i, xi):
        return float(loss(*[ag.tensor(xi if j == i else y) for j, y in enumerate(xs)]).item())

    with ag.no_grad():
        for i in wrt:
            x = xs[i]
            num = np.zeros_like(x)
            for idx in np.ndindex(x.shape):
                hi, lo = x.copy(), x.copy()
                hi[idx] += eps
                lo[idx] -= eps
                num[idx] = (value(i, hi) - value(i, lo)) / (2 * eps)
            assert ts[i].grad is not None, f"input {i} got no gradient"
            np.testing.assert_allclose(ts[i].grad.numpy(), num, rtol=rtol, atol=atol, err_msg=f"input {i}")


# ---- upsample_frames -----------------------------------------------------------------------------
def _upsample_reference(x, factor):
    """np.interp at positions (n + 0.5)/factor - 0.5, clamped (align_corners=False)."""
    b, n, c = x.shape
    pos = np.clip((np.arange(n * factor) + 0.5) / factor - 0.5, 0, n - 1)
    return np.stack([np.stack([np.interp(pos, np.arange(n), x[i, :, j]) for j in range(c)], -1)
                     for i in range(b)])


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 7])
def test_upsample_linear_matches_reference(factor):
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    out = upsample_frames(ag.tensor(x), factor)
    assert out.shape == (2, 5 * factor, 3)
    np.testing.assert_allclose(out.numpy(), _upsample_reference(x, factor), rtol=1e-12, atol=1e-12)


def test_upsample_alignment_frame_centres_and_edges():
    x = np.array([[[0.0], [4.0], [8.0]]])
    out = upsample_frames(ag.tensor(x), 4).numpy()[0, :, 0]
    # frame i's value sits at sample i*4 + 1.5; ends are held
    np.testing.assert_allclose(out, [0, 0, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8, 8])


def test_upsample_nearest_and_2d():
    x = np.arange(6, dtype=np.float64).reshape(1, 3, 2)
    out = upsample_frames(ag.tensor(x), 3, mode="nearest")
    assert out.shape == (1, 9, 2)
    np.testing.assert_array_equal(out.numpy(), np.repeat(x, 3, axis=1))
    out2 = upsample_frames(ag.tensor(x[..., 0]), 2)
    assert out2.shape == (1, 6)
    np.testing.assert_allclose(out2.numpy(), _upsample_reference(x[..., :1], 2)[..., 0])


def test_upsample_errors():
    x = ag.zeros(1, 3, 2)
    with pytest.raises(ValueError):
        upsample_frames(x, 0)
    with pytest.raises(ValueError):
        upsample_frames(x, 2, mode="cubic")


@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_upsample_finite_differences(mode):
    x = np.random.default_rng(1).standard_normal((1, 4, 2))
    numeric_check(lambda t: upsample_frames(t, 3, mode=mode), [x])


# ---- harmonic_oscillator -------------------------------------------------------------------------
def test_harmonic_shapes_and_reference():
    rng = np.random.default_rng(2)
    sr, n = 8000, 64
    f0 = rng.uniform(100, 300, (2, n, 1))
    amps = rng.uniform(0, 1, (2, n, 4))
    out = harmonic_oscillator(ag.tensor(f0), ag.tensor(amps), sr)
    assert out.shape == (2, n)
    phase = 2 * np.pi * np.cumsum(f0 / sr, axis=1)
    k = np.arange(1, 5)
    ref = (amps * (k * f0 < sr / 2) * np.sin(phase * k)).sum(-1)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-9, atol=1e-9)


def test_harmonic_440hz_peak():
    sr = n = 8000  # one second: DFT bins are 1 Hz apart
    f0 = ag.full((1, n, 1), 440.0)
    out = harmonic_oscillator(f0, ag.ones(1, n, 1), sr).numpy()[0]
    spec = np.abs(np.fft.rfft(out))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    assert freqs[np.argmax(spec)] == 440.0
    assert np.max(np.abs(out)) == pytest.approx(1.0, abs=1e-3)


def test_harmonic_nyquist_mask():
    sr, n = 8000, 256
    f0 = np.full((1, n, 1), 1500.0)
    f0[:, n // 2:] = 900.0  # second half: harmonics 1..4 all below 4000 Hz
    amps = np.ones((1, n, 4))
    out = harmonic_oscillator(ag.tensor(f0), ag.tensor(amps), sr).numpy()[0]
    phase = 2 * np.pi * np.cumsum(f0[0, :, 0] / sr)
    first = np.sin(phase) + np.sin(2 * phase)                      # 4500 and 6000 Hz are silenced
    full = sum(np.sin(k * phase) for k in range(1, 5))
    np.testing.assert_allclose(out[:n // 2], first[:n // 2], atol=1e-9)
    np.testing.assert_allclose(out[n // 2:], full[n // 2:], atol=1e-9)
    # a harmonic only above Nyquist gives silence
    silent = harmonic_oscillator(ag.full((1, n, 1), 3000.0), ag.tensor(np.eye(3)[None, [1] * n]), sr)
    assert np.all(silent.numpy() == 0)


def test_harmonic_float32_no_phase_drift():
    sr, n, f = 16000, 200000, 441.3
    out = harmonic_oscillator(ag.full((1, n, 1), f), ag.ones(1, n, 1), sr)
    assert out.dtype == ag.float32
    f32 = float(np.float32(f))  # the f0 the float32 tensor holds
    ref = np.sin(2 * np.pi * (f32 / sr * np.arange(1, n + 1) % 1.0))
    assert np.max(np.abs(out.numpy()[0] - ref)) < 1e-5  # a float32 cumsum is off by ~2 here


def test_harmonic_finite_differences():
    rng = np.random.default_rng(3)
    sr, n = 1000, 12
    f0 = rng.uniform(40, 150, (2, n, 1))      # 3 * 150 < 500: far from the Nyquist mask's edge
    amps = rng.uniform(-1, 1, (2, n, 3))
    numeric_check(lambda f, a: harmonic_oscillator(f, a, sr), [f0, amps], rtol=1e-5, atol=1e-7)


def test_harmonic_finite_differences_with_masked_harmonic():
    sr, n = 1000, 8
    f0 = np.random.default_rng(4).uniform(180, 220, (1, n, 1))   # harmonic 3 (540-660 Hz) is masked
    amps = np.random.default_rng(5).uniform(-1, 1, (1, n, 3))
    numeric_check(lambda f, a: harmonic_oscillator(f, a, sr), [f0, amps], rtol=1e-5, atol=1e-7)


# ---- filtered_noise ------------------------------------------------------------------------------
def test_noise_filter_ir_is_windowed_irfft():
    mags = np.random.default_rng(6).uniform(0, 1, (2, 3, 9))
    ir = noise_filter_ir(ag.tensor(mags)).numpy()
    m = 9
    taps = 2 * m - 1
    assert ir.shape == (2, 3, taps)
    zero_phase = np.fft.irfft(mags, n=2 * (m - 1), axis=-1)
    t = np.arange(taps) - (m - 1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(taps) + 1) / (taps + 1))
    np.testing.assert_allclose(ir, zero_phase[..., t % (2 * (m - 1))] * window, atol=1e-12)
    np.testing.assert_allclose(ir, ir[..., ::-1], atol=1e-12)  # symmetric: linear phase


def _filtered_noise_reference(mags, hop, noise):
    b, frames, m = mags.shape
    ir = noise_filter_ir(ag.tensor(mags)).numpy()
    delay = m - 1
    out = np.zeros((b, frames * hop + 2 * ir.shape[-1]))
    for i in range(b):
        for k in range(frames):
            y = np.convolve(noise[i, k * hop:(k + 1) * hop], ir[i, k])
            out[i, k * hop:k * hop + len(y)] += y
    return out[:, delay:delay + frames * hop]


def test_filtered_noise_shape_and_reference():
    rng = np.random.default_rng(7)
    mags = rng.uniform(0, 1, (2, 6, 9))
    noise = rng.uniform(-1, 1, (2, 6 * 16))
    out = filtered_noise(ag.tensor(mags), 16, noise=ag.tensor(noise))
    assert out.shape == (2, 96)
    np.testing.assert_allclose(out.numpy(), _filtered_noise_reference(mags, 16, noise), atol=1e-12)


def test_filtered_noise_flat_response_passes_noise():
    # all-ones magnitudes: the zero-phase IR is a unit impulse (the window is 1 at the centre)
    noise = np.random.default_rng(8).uniform(-1, 1, (1, 40))
    out = filtered_noise(ag.ones(1, 5, 7, dtype=ag.float64), 8, noise=ag.tensor(noise))
    np.testing.assert_allclose(out.numpy(), noise, atol=1e-12)


def test_filtered_noise_seed_reproducible():
    mags = ag.tensor(np.random.default_rng(9).uniform(0, 1, (2, 4, 5)))
    a = filtered_noise(mags, 8, seed=123).numpy()
    b = filtered_noise(mags, 8, seed=123).numpy()
    c = filtered_noise(mags, 8, seed=124).numpy()
    assert a.shape == (2, 32)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    ag.manual_seed(5)
    d = filtered_noise(mags, 8).numpy()
    ag.manual_seed(5)
    np.testing.assert_array_equal(d, filtered_noise(mags, 8).numpy())


def test_filtered_noise_lowpass_spectrum():
    # a low-pass response keeps noise energy below a quarter of the sample rate
    m, frames, hop = 33, 64, 64
    mags = np.zeros((1, frames, m))
    mags[..., : m // 4] = 1.0
    out = filtered_noise(ag.tensor(mags), hop, seed=0).numpy()[0]
    spec = np.abs(np.fft.rfft(out)) ** 2
    cut = len(spec) // 4
    assert spec[: cut - 20].sum() > 50 * spec[cut + 20:].sum()


def test_filtered_noise_finite_differences():
    mags = np.random.default_rng(10).uniform(0.1, 1, (1, 3, 5))
    numeric_check(lambda m: filtered_noise(m, 4, seed=11), [mags])


def test_filtered_noise_errors():
    with pytest.raises(ValueError):
        filtered_noise(ag.ones(1, 3, 1), 4)
    with pytest.raises(ValueError):
        filtered_noise(ag.ones(3, 5), 4)
    with pytest.raises(ValueError):
        filtered_noise(ag.ones(1, 3, 4), 0)
