"""Real FFTs on the GPU (cuFFT, ``codegen.cuda_fft``) against the CPU template: rfft_frames,
irfft_frames, stft and istft, their values and their gradients (which run the other direction:
the gradient of "rfft" is "rfft_adjoint" and back), and the calls replayed in a CUDA graph.

Tolerances are relative to the largest value compared, scaled like an FFT's rounding error
(``C * eps * log2(n_fft)``). Tests marked ``gpu`` need CuPy and an NVIDIA GPU and run with
``pytest --gpu``; the source test runs anywhere and compiles with NVRTC where it can.
"""
import numpy as np
import pytest

import audiograd as ag
from audiograd.devices.cuda.fft import fft_source
from audiograd.dsp import hann_window, irfft_frames, istft, rfft_frames, stft
from nvrtc_check import compile_sm90

gpu = pytest.mark.gpu


def _randn(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _close(got, ref, n_fft, dtype, what):
    assert got.shape == ref.shape and got.dtype == ref.dtype, what
    tol = 8 * np.finfo(dtype).eps * np.log2(n_fft) * max(np.abs(ref).max(), 1e-30)
    err = np.abs(got.astype(np.float64) - ref).max() if got.size else 0.0
    assert err <= tol, f"{what}: max error {err:.3g} > {tol:.3g}"


def _compare(fn, arrays, n_fft):
    """``fn`` over CPU tensors and over CUDA tensors made from ``arrays`` (all requiring grad):
    compare every output and, after backpropagating ``sum(out_k * w_k)``, every gradient."""
    dtype = arrays[0].dtype
    results = []
    for device in ("cpu", "cuda"):
        ins = [ag.tensor(a, device=device, requires_grad=True) for a in arrays]
        outs = fn(*ins)
        outs = outs if isinstance(outs, tuple) else (outs,)
        loss = None
        for k, o in enumerate(outs):
            assert o.device == device
            w = ag.tensor(_randn(*o.shape, dtype=dtype, seed=100 + k), device=device)
            term = (o * w).sum()
            loss = term if loss is None else loss + term
        loss.backward()
        assert all(t.grad.device == device for t in ins)
        results.append(([o.numpy() for o in outs], [t.grad.numpy() for t in ins]))
    (ref_out, ref_grad), (out, grad) = results
    for k, (g, r) in enumerate(zip(out, ref_out)):
        _close(g, r, n_fft, dtype, f"output {k}")
    for k, (g, r) in enumerate(zip(grad, ref_grad)):
        _close(g, r, n_fft, dtype, f"gradient of input {k}")


def test_fft_kernels_source_compiles():
    for n_fft, frames, double in [(4, 1, False), (1024, 431, False), (2048, 7, True)]:
        src = fft_source("ag_fft_test", n_fft, frames, double)
        assert src.count("__global__") == 4
        compile_sm90(src, "fft.cu")


# n_fft, frames, batch shape, dtype
RFFT_CASES = [
    (256, 37, (3,), np.float32),
    (1024, 1, (), np.float32),
    (1024, 64, (2, 2), np.float32),
    (2048, 200, (2,), np.float32),
    (4, 5, (2,), np.float32),
    (256, 33, (2,), np.float64),
    (2048, 5, (), np.float64),
]


def _id(case):
    n, frames, batch, dtype = case
    return f"{np.dtype(dtype).name}-n{n}-f{frames}-b{'x'.join(map(str, batch)) or 'none'}"


@gpu
@pytest.mark.parametrize("case", RFFT_CASES, ids=_id)
def test_rfft_frames_and_its_gradient(case):
    n, frames, batch, dtype = case
    x = _randn(*batch, n, frames, dtype=dtype, seed=n + frames)
    _compare(rfft_frames, [x], n)


@gpu
@pytest.mark.parametrize("case", RFFT_CASES, ids=_id)
def test_irfft_frames_and_its_gradient(case):
    n, frames, batch, dtype = case
    # nonzero imaginary parts in the DC and Nyquist bins: the inverse ignores them
    spec = _randn(*batch, 2, n // 2 + 1, frames, dtype=dtype, seed=3 * n + frames)
    _compare(lambda s: irfft_frames(s, n), [spec], n)


@gpu
@pytest.mark.parametrize("n", [16, 1024])
def test_adjoint_identity_on_the_gpu(n):
    """<rfft(x), g> == <x, rfft^T g> with rfft^T g from autograd, g's imaginary DC / Nyquist nonzero."""
    x0, g0 = _randn(2, n, 9, dtype=np.float64, seed=n), _randn(2, 2, n // 2 + 1, 9, dtype=np.float64, seed=n + 1)
    x = ag.tensor(x0, device="cuda", requires_grad=True)
    lhs = float((rfft_frames(x) * ag.tensor(g0, device="cuda")).sum().item())
    (rfft_frames(x) * ag.tensor(g0, device="cuda")).sum().backward()
    rhs = float((x0 * x.grad.numpy()).sum())
    assert abs(lhs - rhs) <= 1e-10 * (abs(lhs) + np.abs(x0).sum())


@gpu
def test_rfft_empty_on_the_gpu():
    assert rfft_frames(ag.tensor(np.zeros((8, 0), np.float32), device="cuda")).numpy().shape == (2, 5, 0)
    assert irfft_frames(ag.tensor(np.zeros((0, 2, 5, 3), np.float32), device="cuda"), 8).numpy().shape == (0, 8, 3)


# n_fft, hop, batch shape, samples, center, dtype
STFT_CASES = [
    (256, 64, (2,), 4000, True, np.float32),
    (1024, 256, (), 16000, True, np.float32),
    (1024, 300, (2,), 9000, True, np.float32),
    (2048, 512, (3,), 12000, False, np.float32),
    (2048, 1024, (2, 1), 20000, True, np.float32),
    (256, 100, (), 3000, True, np.float64),
]


def _stft_id(case):
    n, hop, batch, samples, center, dtype = case
    return f"{np.dtype(dtype).name}-n{n}-h{hop}-b{'x'.join(map(str, batch)) or 'none'}-{'c' if center else 'nc'}"


@gpu
@pytest.mark.parametrize("case", STFT_CASES, ids=_stft_id)
def test_stft_and_its_gradient(case):
    n, hop, batch, samples, center, dtype = case
    x = _randn(*batch, samples, dtype=dtype, seed=n + hop)
    _compare(lambda t: stft(t, n, hop, window=hann_window(n, dtype=t.dtype), center=center), [x], n)


@gpu
@pytest.mark.parametrize("case", [c for c in STFT_CASES if c[4]], ids=_stft_id)  # hann with center=False is not NOLA
def test_istft_and_its_gradient(case):
    n, hop, batch, samples, center, dtype = case
    frames = 1 + (samples - (0 if center else n)) // hop
    re = _randn(*batch, n // 2 + 1, frames, dtype=dtype, seed=n + hop + 1)
    im = _randn(*batch, n // 2 + 1, frames, dtype=dtype, seed=n + hop + 2)
    _compare(lambda r, i: istft(r, i, n, hop, window=hann_window(n, dtype=r.dtype), center=center), [re, im], n)


@gpu
def test_stft_istft_round_trip_on_the_gpu():
    x = _randn(2, 10000, seed=5)
    w = hann_window(1024)
    xg = ag.tensor(x, device="cuda")
    re, im = stft(xg, 1024, 256, window=w)
    y = istft(re, im, 1024, 256, window=w, length=10000)
    assert y.device == "cuda"
    np.testing.assert_allclose(y.numpy(), x, rtol=0, atol=5e-5)


@gpu
@pytest.mark.parametrize("adjoint", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fft_call_replays_in_a_cuda_graph(adjoint, dtype):
    """The call allocates nothing when it runs: captured once, it replays on new input values."""
    from audiograd.devices.cuda.fft import FFTCall
    from audiograd.devices.cuda.device import get_device
    cp = get_device().cp
    n, batch, frames = 512, 3, 45
    m = n // 2 + 1
    in_shape, out_shape = ((batch, 2, m, frames), (batch, n, frames)) if adjoint else \
        ((batch, n, frames), (batch, 2, m, frames))
    call = FFTCall(adjoint, n, batch, frames, dtype == np.float64)
    a = _randn(*in_shape, dtype=dtype, seed=11)
    src, out = cp.asarray(a), cp.zeros(out_shape, dtype)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        call([out, src])
        first = cp.asnumpy(out)
        stream.begin_capture()
        call([out, src])
        graph = stream.end_capture()
        src *= 3
        out.fill(0)
        graph.launch(stream)
        stream.synchronize()
        again = cp.asnumpy(out)
    if adjoint:  # the transpose of rfft: each bin once, imaginary DC and Nyquist ignored
        spec = a[:, 0].astype(np.float64) + 1j * a[:, 1]
        w = np.full((m, 1), 0.5)
        w[0] = w[-1] = 1.0
        ref = np.fft.irfft(spec * w, n, axis=1) * n
    else:
        s = np.fft.rfft(a.astype(np.float64), axis=1)
        ref = np.stack([s.real, s.imag], 1)
    _close(first, ref.astype(dtype), n, dtype, "first run")
    _close(again, 3 * ref.astype(dtype), n, dtype, "graph replay")


@gpu
@pytest.mark.parametrize("adjoint", [False, True])
def test_calls_of_one_size_with_other_batch_counts(adjoint):
    """Kernels are cached with their launch: a call for fewer batches of the same transform must
    not launch over the batches of an earlier, larger one (nor write past its output)."""
    from audiograd.devices.cuda.fft import FFTCall
    from audiograd.devices.cuda.device import get_device
    cp = get_device().cp
    n, frames = 256, 20
    m = n // 2 + 1
    for batch in (3, 1, 2):
        in_shape, out_shape = ((batch, 2, m, frames), (batch, n, frames)) if adjoint else \
            ((batch, n, frames), (batch, 2, m, frames))
        a = _randn(*in_shape, seed=batch)
        size = int(np.prod(out_shape))
        guarded = cp.full(size + 4096, 7.0, np.float32)
        out = guarded[:size].reshape(out_shape)
        FFTCall(adjoint, n, batch, frames, False)([out, cp.asarray(a)])
        assert (cp.asnumpy(guarded[size:]) == 7.0).all(), "the call wrote past its output"
        if adjoint:
            w = np.full((m, 1), 0.5)
            w[0] = w[-1] = 1.0
            ref = np.fft.irfft((a[:, 0].astype(np.float64) + 1j * a[:, 1]) * w, n, axis=1) * n
        else:
            s = np.fft.rfft(a.astype(np.float64), axis=1)
            ref = np.stack([s.real, s.imag], 1)
        _close(cp.asnumpy(out), ref.astype(np.float32), n, np.float32, f"batch {batch}")
