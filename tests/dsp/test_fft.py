"""audiograd.dsp.rfft_frames / irfft_frames (the batched radix-2 real FFT template of
codegen.fft_template and its adjoint) against numpy.fft and torch.fft: values, gradients,
the adjoint identity, second-order gradients, float64 finite differences and errors.

Layout: rfft_frames maps (..., n_fft, frames) to (..., 2, n_fft // 2 + 1, frames), real plane
then imaginary plane, so the reference is ``stack([X.real, X.imag], -3)`` with
``X = rfft(x, axis=-2)``.

Tolerances are absolute, scaled like the rounding error of an FFT: ``C * eps * log2(n)`` times
the size of the values (about sqrt(n) for the forward transform of unit-variance samples,
about 1 / sqrt(n) for the inverse of unit-variance bins). Measured errors are below C = 1.5.
"""
import os
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tensor"))

import audiograd as ag  # noqa: E402
from audiograd.dsp import irfft_frames, rfft_frames  # noqa: E402
from test_gradcheck import check_grad  # noqa: E402
from torch_compare import check, randn  # noqa: E402

DTYPES = [np.float32, np.float64]


def _eps(dtype):
    return float(np.finfo(dtype).eps)


def fwd_atol(n, dtype, c=4.0):
    return c * _eps(dtype) * np.log2(n) * np.sqrt(n)


def inv_atol(n, dtype, c=8.0):
    return c * _eps(dtype) * np.log2(n) / np.sqrt(n)


def np_rfft(x):
    """numpy reference in our layout, computed in float64."""
    s = np.fft.rfft(np.asarray(x, np.float64), axis=-2)
    return np.stack([s.real, s.imag], -3)


def np_irfft(spec, n):
    spec = np.asarray(spec, np.float64)
    return np.fft.irfft(spec[..., 0, :, :] + 1j * spec[..., 1, :, :], n, axis=-2)


def torch_rfft(x):
    s = torch.fft.rfft(x, dim=-2)
    return torch.stack([s.real, s.imag], -3)


def torch_irfft(spec, n):
    return torch.fft.irfft(torch.complex(spec[..., 0, :, :], spec[..., 1, :, :]), n, dim=-2)


# n_fft, frames, batch shape. Frames cover multiples of 16 (a full AVX-512 float block), of 8 but
# not 16 (a full double block / AVX2 float block), and ragged tails, including a single frame.
FWD_CASES = [
    (4, 1, ()),
    (4, 9, (3,)),
    (8, 16, (2, 3)),
    (64, 17, (2,)),
    (64, 32, ()),
    (512, 8, (1,)),
    (512, 5, (2, 1)),
    (2048, 24, (2,)),
]


def _id(case):
    n, frames, batch = case
    return f"n{n}-f{frames}-b{'x'.join(map(str, batch)) or 'none'}"


# ---- forward ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", FWD_CASES, ids=_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rfft_matches_numpy(case, dtype):
    n, frames, batch = case
    x = randn(*batch, n, frames, dtype=dtype, seed=n + frames)
    y = rfft_frames(ag.tensor(x))
    assert tuple(y.shape) == batch + (2, n // 2 + 1, frames)
    assert y.dtype.name == np.dtype(dtype).name
    got = y.numpy()
    np.testing.assert_allclose(got, np_rfft(x), rtol=0, atol=fwd_atol(n, dtype))
    # the imaginary parts of the DC and Nyquist bins of a real signal are zero
    assert np.abs(got[..., 1, 0, :]).max() <= fwd_atol(n, dtype)
    assert np.abs(got[..., 1, -1, :]).max() <= fwd_atol(n, dtype)


def test_rfft_impulses_and_constants_exact_structure():
    """Delta at t gives exp(-2 pi i k t / n); a constant frame puts everything into bin 0."""
    n = 16
    x = np.zeros((n, n + 1))
    x[np.arange(n), np.arange(n)] = 1.0  # column t: impulse at sample t
    x[:, n] = 2.0                        # last column: constant
    y = rfft_frames(ag.tensor(x)).numpy()
    k = np.arange(n // 2 + 1)[:, None]
    t = np.arange(n)[None, :]
    np.testing.assert_allclose(y[0, :, :n], np.cos(2 * np.pi * k * t / n), atol=1e-14)
    np.testing.assert_allclose(y[1, :, :n], -np.sin(2 * np.pi * k * t / n), atol=1e-14)
    want = np.zeros((2, n // 2 + 1))
    want[0, 0] = 2.0 * n
    np.testing.assert_allclose(y[:, :, n], want, atol=1e-13)


def test_rfft_of_views_and_fused_inputs():
    """The template reads a contiguous buffer: transposed, sliced, expanded and computed inputs
    must be materialised first."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 16, 10))
    want = np_rfft(x)
    tol = fwd_atol(16, np.float64)
    xt = ag.tensor(np.ascontiguousarray(x.transpose(0, 2, 1))).transpose(-1, -2)
    np.testing.assert_allclose(rfft_frames(xt).numpy(), want, atol=tol)
    wide = np.concatenate([x, x], -1)
    np.testing.assert_allclose(rfft_frames(ag.tensor(wide)[..., 3:8]).numpy(), np_rfft(wide[..., 3:8]), atol=tol)
    np.testing.assert_allclose(rfft_frames(ag.tensor(x) * 2 + 1).numpy(), np_rfft(2 * x + 1), atol=tol)
    ex = ag.tensor(x[0])[None].expand(3, 16, 10)
    np.testing.assert_allclose(rfft_frames(ex).numpy(), np.broadcast_to(want[:1], want.shape), atol=tol)


def test_rfft_empty():
    assert tuple(rfft_frames(ag.tensor(np.zeros((8, 0), np.float32))).numpy().shape) == (2, 5, 0)
    assert tuple(rfft_frames(ag.tensor(np.zeros((0, 8, 3), np.float32))).numpy().shape) == (0, 2, 5, 3)


# ---- forward and gradient vs torch ------------------------------------------------------------

GRAD_CASES = [(4, 1, ()), (8, 16, (2, 3)), (64, 17, (2,)), (2048, 3, ())]


@pytest.mark.parametrize("case", GRAD_CASES, ids=_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rfft_matches_torch_with_grad(case, dtype):
    n, frames, batch = case
    x = randn(*batch, n, frames, dtype=dtype, seed=7 * n + frames)
    tol = fwd_atol(n, dtype, c=8.0)
    check(lambda lib, x: torch_rfft(x) if lib is torch else rfft_frames(x), x, rtol=0, atol=tol)


@pytest.mark.parametrize("case", [(4, 9, (3,)), (64, 32, ()), (512, 5, (2, 1))], ids=_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_irfft_matches_torch_with_grad(case, dtype):
    n, frames, batch = case
    spec = randn(*batch, 2, n // 2 + 1, frames, dtype=dtype, seed=11 * n + frames)
    # the forward value is of order 1 / sqrt(n), the gradient (2 / n) * rfft(w) of order 2 / sqrt(n)
    check(lambda lib, s: torch_irfft(s, n) if lib is torch else irfft_frames(s, n), spec,
          rtol=0, atol=inv_atol(n, dtype), grad_atol=2 * inv_atol(n, dtype))


# ---- inverse ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [(4, 1, ()), (2048, 24, ()), (512, 8, (2, 1))], ids=_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_irfft_matches_numpy(case, dtype):
    n, frames, batch = case
    # nonzero imaginary parts in the DC and Nyquist bins: irfft ignores them, like numpy
    spec = randn(*batch, 2, n // 2 + 1, frames, dtype=dtype, seed=n + 3 * frames)
    y = irfft_frames(ag.tensor(spec), n)
    assert tuple(y.shape) == batch + (n, frames)
    assert y.dtype.name == np.dtype(dtype).name
    np.testing.assert_allclose(y.numpy(), np_irfft(spec, n), rtol=0, atol=inv_atol(n, dtype))


@pytest.mark.parametrize("n", [4, 256])
def test_irfft_inverts_rfft(n):
    x = randn(2, n, 13, dtype=np.float64, seed=n)
    back = irfft_frames(rfft_frames(ag.tensor(x)), n).numpy()
    np.testing.assert_allclose(back, x, rtol=0, atol=fwd_atol(n, np.float64) / np.sqrt(n))


# ---- the adjoint ------------------------------------------------------------------------------

def _dft_matrix(n):
    """Real (2 * (n // 2 + 1), n) matrix of rfft in our layout."""
    k = np.arange(n // 2 + 1)[:, None]
    t = np.arange(n)[None, :]
    ang = 2 * np.pi * ((k * t) % n) / n
    return np.concatenate([np.cos(ang), -np.sin(ang)], 0)


@pytest.mark.parametrize("n,frames,batch", [(4, 3, ()), (16, 9, (2,)), (128, 17, (2, 2))])
def test_adjoint_identity(n, frames, batch):
    """<rfft(x), g> == <x, rfft^T g>, with rfft^T g taken from autograd (the adjoint kernel), for a
    g whose imaginary DC / Nyquist entries are nonzero (the adjoint must ignore them)."""
    rng = np.random.default_rng(n)
    x0 = rng.standard_normal(batch + (n, frames))
    g0 = rng.standard_normal(batch + (2, n // 2 + 1, frames))
    x = ag.tensor(x0, requires_grad=True)
    y = rfft_frames(x)
    lhs = float((y * ag.tensor(g0)).sum().item())
    (y * ag.tensor(g0)).sum().backward()
    adj = x.grad.numpy()
    rhs = float((x0 * adj).sum())
    assert abs(lhs - rhs) <= 1e-12 * n * np.sqrt(x0.size * g0.size)
    # and entry by entry, against the dense transposed DFT matrix
    d = _dft_matrix(n)
    want = np.einsum("ct,...cf->...tf", d, g0.reshape(batch + (n + 2, frames)))
    np.testing.assert_allclose(adj, want, rtol=0, atol=fwd_atol(n, np.float64, c=8.0))


def test_adjoint_identity_float32():
    dtype = np.float32
    rng = np.random.default_rng(5)
    n, frames = 32, 23
    x0 = rng.standard_normal((n, frames)).astype(dtype)
    g0 = rng.standard_normal((2, n // 2 + 1, frames)).astype(dtype)
    x = ag.tensor(x0, requires_grad=True)
    y = rfft_frames(x)
    (y * ag.tensor(g0)).sum().backward()
    assert x.grad.dtype.name == np.dtype(dtype).name
    lhs = float((y.numpy().astype(np.float64) * g0).sum())
    rhs = float((x0.astype(np.float64) * x.grad.numpy()).sum())
    assert abs(lhs - rhs) <= 50 * _eps(dtype) * np.log2(n) * np.sqrt(n) * np.sqrt(x0.size * g0.size)


# ---- second-order gradients -------------------------------------------------------------------
# audiograd has no create_graph: a recorded Function's backward builds its gradient with ordinary
# (differentiable) ops, so calling it with grad mode on gives a differentiable gradient, the
# analogue of torch.autograd.grad(..., create_graph=True).

@pytest.mark.parametrize("n,frames", [(8, 5), (64, 17)])
def test_rfft_double_backward(n, frames):
    rng = np.random.default_rng(n)
    x0 = rng.standard_normal((2, n, frames))
    gy0 = rng.standard_normal((2, 2, n // 2 + 1, frames))
    w0 = rng.standard_normal((2, n, frames))

    xt = torch.tensor(x0, requires_grad=True)
    gyt = torch.tensor(gy0, requires_grad=True)
    (gxt,) = torch.autograd.grad(torch_rfft(xt), xt, gyt, create_graph=True)
    (gxt * torch.tensor(w0)).sum().backward()

    x = ag.tensor(x0, requires_grad=True)
    gy = ag.tensor(gy0, requires_grad=True)
    y = rfft_frames(x)
    (gx,) = y._ctx.backward(gy)
    assert gx.requires_grad and tuple(gx.shape) == x0.shape
    np.testing.assert_allclose(gx.numpy(), gxt.detach().numpy(), atol=1e-12 * n)
    # the adjoint's own backward is the forward transform again (what gives gy its gradient)
    (ggy,) = gx._ctx.backward(ag.tensor(w0))
    np.testing.assert_allclose(ggy.numpy(), np_rfft(w0), atol=1e-12 * n)
    (gx * ag.tensor(w0)).sum().backward()
    np.testing.assert_allclose(gy.grad.numpy(), gyt.grad.numpy(), atol=1e-12 * n)


def test_irfft_double_backward():
    n, frames = 16, 6
    rng = np.random.default_rng(9)
    s0 = rng.standard_normal((2, n // 2 + 1, frames))
    gy0 = rng.standard_normal((n, frames))
    w0 = rng.standard_normal((2, n // 2 + 1, frames))

    st_ = torch.tensor(s0, requires_grad=True)
    gyt = torch.tensor(gy0, requires_grad=True)
    (gst,) = torch.autograd.grad(torch_irfft(st_, n), st_, gyt, create_graph=True)
    (gst * torch.tensor(w0)).sum().backward()

    s = ag.tensor(s0, requires_grad=True)
    gy = ag.tensor(gy0, requires_grad=True)
    y = irfft_frames(s, n)
    # y = adjoint(s * weights): walk back through the adjoint, then the weighting
    (g_mid,) = y._ctx.backward(gy)
    assert g_mid.requires_grad
    gs = g_mid * ag.tensor(np.r_[1.0, np.full(n // 2 - 1, 2.0), 1.0][:, None] / n)
    np.testing.assert_allclose(gs.numpy(), gst.detach().numpy(), atol=1e-13)
    (gs * ag.tensor(w0)).sum().backward()
    np.testing.assert_allclose(gy.grad.numpy(), gyt.grad.numpy(), atol=1e-13)


def test_rfft_output_used_twice():
    """Gradients of two losses that share one rfft accumulate like torch's."""
    x0 = randn(2, 8, 5, dtype=np.float64, seed=2)

    def f(lib, x):
        y = torch_rfft(x) if lib is torch else rfft_frames(x)
        z = y * y
        return y, z
    check(f, x0, rtol=0, atol=1e-12)


# ---- float64 finite differences ---------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 3), (2, 8, 1)])
def test_rfft_finite_difference(shape):
    x = np.random.default_rng(1).standard_normal(shape)
    check_grad(rfft_frames, x)


@pytest.mark.parametrize("n,shape", [(4, (2, 3, 2)), (8, (1, 2, 5, 1))])
def test_irfft_finite_difference(n, shape):
    s = np.random.default_rng(2).standard_normal(shape)
    check_grad(lambda t: irfft_frames(t, n), s)


def test_composite_finite_difference():
    """A nonlinear loss through rfft then irfft: |X|^2 filtered and inverted."""
    x = np.random.default_rng(4).standard_normal((8, 2))

    def f(t):
        y = rfft_frames(t)
        return irfft_frames(y * y, 8)
    check_grad(f, x)


# ---- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("array,error,match", [
    (np.zeros((6, 3), np.float32), ValueError, "power of two"),
    (np.zeros((2, 3), np.float32), ValueError, "power of two"),
    (np.zeros((1, 3), np.float32), ValueError, "power of two"),
    (np.zeros((2, 12, 3), np.float64), ValueError, "power of two"),
    (np.zeros(8, np.float32), ValueError, "n_fft, frames"),
    (np.float32(1.0), ValueError, "n_fft, frames"),
    (np.zeros((8, 3), np.int64), TypeError, "floating point"),
    (np.zeros((8, 3), np.int32), TypeError, "floating point"),
    (np.zeros((8, 3), np.bool_), TypeError, "floating point"),
])
def test_rfft_errors(array, error, match):
    with pytest.raises(error, match=match):
        rfft_frames(ag.tensor(array))


def test_irfft_errors():
    with pytest.raises(ValueError, match="power of two"):
        irfft_frames(ag.tensor(np.zeros((2, 4, 3))), 6)
    with pytest.raises(ValueError, match="power of two"):
        irfft_frames(ag.tensor(np.zeros((2, 3, 3))), 5)
    with pytest.raises(ValueError, match="power of two"):
        irfft_frames(ag.tensor(np.zeros((2, 2, 3))), 2)
    with pytest.raises(ValueError, match="expected"):  # wrong bin count
        irfft_frames(ag.tensor(np.zeros((2, 4, 3))), 8)
    with pytest.raises(ValueError, match="expected"):  # not two planes
        irfft_frames(ag.tensor(np.zeros((3, 5, 3))), 8)
    with pytest.raises(ValueError, match="expected"):  # too few dims
        irfft_frames(ag.tensor(np.zeros((5, 3))), 8)


def test_irfft_rejects_integer_input():
    spec = np.zeros((2, 5, 1), np.int64)
    spec[0, 0, 0] = 8  # irfft gives ones(8)
    with pytest.raises(TypeError, match="floating point"):
        irfft_frames(ag.tensor(spec), 8)


# ---- property test ----------------------------------------------------------------------------

@settings(deadline=None, max_examples=25)
@given(log_n=st.integers(2, 8), frames=st.integers(1, 40),
       batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
       double=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_rfft_property_matches_numpy(log_n, frames, batch, double, seed):
    n = 2 ** log_n
    dtype = np.float64 if double else np.float32
    x = np.random.default_rng(seed).standard_normal(tuple(batch) + (n, frames)).astype(dtype)
    y = rfft_frames(ag.tensor(x))
    assert tuple(y.shape) == tuple(batch) + (2, n // 2 + 1, frames)
    np.testing.assert_allclose(y.numpy(), np_rfft(x), rtol=0, atol=fwd_atol(n, dtype))
