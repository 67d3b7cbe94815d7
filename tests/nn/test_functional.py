"""audiograd.nn.functional against torch.nn.functional: values and gradients of every input.

float32 uses rtol 1e-5 with atol 1e-6 (elementwise ops, outputs of order 1) or 1e-5 * sqrt(terms)
where an output sums ``terms`` products of standard-normal values (linear). float64 cases use
rtol 1e-10, atol 1e-12. Snake and SnakeBeta have no torch function: the reference formulas
(DAC's Snake1d, stable-audio-tools' SnakeBeta) are written out in torch below.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tensor"))
from torch_compare import check, is_torch, randn, uniform  # noqa: E402

import audiograd as ag  # noqa: E402
import audiograd.nn.functional as AF  # noqa: E402

F32, F64 = np.float32, np.float64


def F(lib):
    return TF if is_torch(lib) else AF


# ---- linear --------------------------------------------------------------------------------------
@pytest.mark.parametrize("xshape,out,bias,dtype", [
    ((5, 8), 3, True, F32),
    ((2, 7, 16), 4, True, F32),
    ((4, 6), 1, False, F32),
    ((6,), 5, True, F32),          # 1-D input
    ((3, 2, 4, 32), 8, True, F32),
    ((5, 9), 4, True, F64),
])
def test_linear(xshape, out, bias, dtype):
    x, w = randn(*xshape, dtype=dtype, seed=1), randn(out, xshape[-1], dtype=dtype, seed=2)
    terms = max(xshape[-1], out, math.prod(xshape[:-1]))
    tol = dict(rtol=1e-10, atol=1e-12 * math.sqrt(terms)) if dtype == F64 else \
        dict(rtol=1e-5, atol=1e-5 * math.sqrt(terms))
    if bias:
        check(lambda lib, x, w, b: F(lib).linear(x, w, b), x, w, randn(out, dtype=dtype, seed=3), **tol)
    else:
        check(lambda lib, x, w: F(lib).linear(x, w), x, w, **tol)


# ---- pooling -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,k,s,p,d,ceil", [
    ((2, 3, 10), 2, None, 0, 1, False),
    ((2, 3, 11), 3, 2, 1, 1, False),
    ((1, 2, 11), 3, 2, 1, 1, True),
    ((2, 2, 10), 4, 3, 2, 1, True),
    ((2, 3, 13), 3, 1, 1, 2, False),   # dilation
    ((1, 2, 14), 3, 3, 1, 3, True),    # dilation + ceil_mode
    ((3, 9), 5, 4, 2, 1, True),        # unbatched (C, L)
    ((2, 2, 1), 1, 1, 0, 1, False),    # length 1
])
def test_max_pool1d(shape, k, s, p, d, ceil):
    check(lambda lib, x: F(lib).max_pool1d(x, k, s, p, d, ceil_mode=ceil), randn(*shape, seed=4))


@pytest.mark.parametrize("shape,k,s,p,d,ceil", [
    ((2, 2, 6, 7), 2, None, 0, 1, False),
    ((1, 3, 7, 8), (3, 2), (2, 1), (1, 1), (1, 2), False),
    ((2, 2, 9, 7), 3, 2, 1, 1, True),
    ((2, 8, 8), (2, 3), (2, 3), (1, 0), 1, True),   # unbatched
])
def test_max_pool2d(shape, k, s, p, d, ceil):
    check(lambda lib, x: F(lib).max_pool2d(x, k, s, p, d, ceil_mode=ceil), randn(*shape, seed=5))


@pytest.mark.parametrize("shape,k,s,p,ceil,cip", [
    ((2, 3, 10), 2, None, 0, False, True),
    ((2, 3, 11), 3, 2, 1, False, True),
    ((2, 3, 11), 3, 2, 1, False, False),
    ((1, 2, 10), 4, 3, 2, True, True),
    ((1, 2, 10), 4, 3, 2, True, False),
    ((2, 2, 12), 5, 2, 2, True, True),
    ((3, 9), 3, 3, 1, True, False),    # unbatched
])
def test_avg_pool1d(shape, k, s, p, ceil, cip):
    check(lambda lib, x: F(lib).avg_pool1d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip),
          randn(*shape, seed=6))


@pytest.mark.parametrize("shape,k,s,p,ceil,cip", [
    ((2, 2, 6, 7), 2, None, 0, False, True),
    ((1, 3, 7, 8), (3, 2), (2, 1), (1, 1), False, False),
    ((2, 2, 9, 7), 3, 2, 1, True, True),
    ((2, 2, 9, 7), (3, 4), (2, 3), (1, 2), True, False),
])
def test_avg_pool2d(shape, k, s, p, ceil, cip):
    check(lambda lib, x: F(lib).avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip),
          randn(*shape, seed=7))


# ---- pad -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,pads,mode,value", [
    ((2, 3, 5), (2, 1), "constant", 0.0),
    ((2, 3, 5), (1, 3, 0, 2), "constant", 1.5),
    ((2, 3, 6), (-1, 2), "constant", 0.0),    # negative crops
    ((2, 3, 6), (3, 2), "reflect", 0.0),
    ((2, 3, 6), (4, 1), "replicate", 0.0),
    ((2, 3, 6), (2, 3), "circular", 0.0),
    ((1, 2, 4, 5), (1, 2, 2, 1), "reflect", 0.0),
])
def test_pad(shape, pads, mode, value):
    if mode == "constant":
        check(lambda lib, x: F(lib).pad(x, pads, mode, value), randn(*shape, seed=8))
    else:
        check(lambda lib, x: F(lib).pad(x, pads, mode), randn(*shape, seed=8))


# ---- dropout -------------------------------------------------------------------------------------
def test_dropout_eval_and_p0_are_identity():
    x = randn(4, 5)
    check(lambda lib, x: F(lib).dropout(x, 0.5, training=False), x)
    check(lambda lib, x: F(lib).dropout(x, 0.0, training=True), x)


def test_dropout_p1_zeroes_everything():
    check(lambda lib, x: F(lib).dropout(x, 1.0, training=True), randn(4, 5))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_training_statistics(p):
    ag.manual_seed(int(p * 10))
    n = 200_000
    xs = uniform(0.5, 1.5, n)
    x = ag.tensor(xs, requires_grad=True)
    y = AF.dropout(x, p, training=True)
    y.sum().backward()
    out, g = y.numpy(), x.grad.numpy()
    zero = out == 0
    # binomial std of the zero fraction is sqrt(p(1-p)/n) <= 1.2e-3; allow 5 sigma
    assert abs(zero.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(out[~zero], xs[~zero] / (1 - p), rtol=1e-6)
    np.testing.assert_allclose(g, np.where(zero, 0.0, 1 / (1 - p)).astype(F32), rtol=1e-6)


def test_dropout_rejects_bad_p():
    with pytest.raises(ValueError):
        AF.dropout(ag.tensor(randn(3)), 1.5)


# ---- activations ---------------------------------------------------------------------------------
ACTIVATIONS = {
    "relu": lambda lib, x: F(lib).relu(x),
    "leaky_relu": lambda lib, x: F(lib).leaky_relu(x),
    "leaky_relu_0.2": lambda lib, x: F(lib).leaky_relu(x, 0.2),
    "elu": lambda lib, x: F(lib).elu(x),
    "elu_0.5": lambda lib, x: F(lib).elu(x, 0.5),
    "gelu": lambda lib, x: F(lib).gelu(x),
    "gelu_tanh": lambda lib, x: F(lib).gelu(x, approximate="tanh"),
    "silu": lambda lib, x: F(lib).silu(x),
    "sigmoid": lambda lib, x: F(lib).sigmoid(x),
    "tanh": lambda lib, x: F(lib).tanh(x),
    "softplus": lambda lib, x: F(lib).softplus(x),
    "softplus_beta": lambda lib, x: F(lib).softplus(x, beta=2.0, threshold=5.0),
}


def _away_from_zero(a, margin=0.05):
    """Keep values off the kinks at 0 (relu, leaky_relu, elu) so gradients are well defined."""
    return np.where(np.abs(a) < margin, a + np.sign(a + 1e-12) * margin, a).astype(a.dtype)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation(name, dtype):
    x = _away_from_zero(uniform(-6, 6, 3, 40, dtype=dtype, seed=9))
    # softplus_beta: keep beta*x off the threshold 5 (torch switches to x there)
    if name == "softplus_beta":
        x = np.where(np.abs(2 * x - 5) < 0.1, x + 0.1, x).astype(dtype)
    tol = {}
    if name == "gelu_tanh" and dtype == F32:
        # torch's own float32 backward of the tanh form loses up to ~2.2e-6 absolute near x = -5
        # (1 - tanh^2 cancels); measured against float64, audiograd is within 1.1e-6 there
        tol = dict(grad_atol=4e-6)
    check(ACTIVATIONS[name], x, **tol)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("shape,dim", [((4, 7), -1), ((4, 7), 0), ((2, 3, 5), 1), ((6,), 0)])
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax(fn, shape, dim, dtype):
    check(lambda lib, x: getattr(F(lib), fn)(x, dim), randn(*shape, dtype=dtype, seed=10) * 3)


# ---- normalization -------------------------------------------------------------------------------
def norm_tol(groups: np.ndarray, dtype) -> dict:
    """Tolerance for a normalization over the rows of ``groups``. Outputs are O(1); the input
    gradient is (1/std) * (g - mean(g) - y * mean(g * y)), sums of n terms that largely cancel, so
    its float32 rounding error scales with sqrt(n) / std (torch's own error is of that size)."""
    if dtype == F64:
        return {}
    n, std = groups.shape[1], float(groups.astype(F64).std(-1).min())
    return dict(rtol=1e-5, atol=1e-6 * math.sqrt(n) * max(1.0, 1.0 / std))


@pytest.mark.parametrize("shape,norm,affine,dtype", [
    ((4, 8), (8,), "both", F32),
    ((2, 5, 16), 16, "weight", F32),
    ((2, 5, 16), (16,), "bias", F32),
    ((2, 5, 16), (16,), "none", F32),
    ((2, 3, 4, 6), (4, 6), "both", F32),     # multi-dim normalized_shape
    ((3, 2, 4, 5), (2, 4, 5), "both", F32),
    ((2, 3, 4, 6), (4, 6), "both", F64),
])
def test_layer_norm(shape, norm, affine, dtype):
    nshape = (norm,) if isinstance(norm, int) else norm
    x = randn(*shape, dtype=dtype, seed=11) * 2 + 0.5
    w, b = randn(*nshape, dtype=dtype, seed=12), randn(*nshape, dtype=dtype, seed=13)
    tol = norm_tol(x.reshape(-1, math.prod(nshape)), dtype)

    def ns(lib):  # torch wants a tuple; audiograd also takes a bare int like nn.LayerNorm
        return nshape if is_torch(lib) else norm

    if affine == "both":
        check(lambda lib, x, w, b: F(lib).layer_norm(x, ns(lib), w, b), x, w, b, **tol)
    elif affine == "weight":
        check(lambda lib, x, w: F(lib).layer_norm(x, ns(lib), w), x, w, **tol)
    elif affine == "bias":
        check(lambda lib, x, b: F(lib).layer_norm(x, ns(lib), None, b), x, b, **tol)
    else:
        check(lambda lib, x: F(lib).layer_norm(x, ns(lib)), x, **tol)


@pytest.mark.parametrize("shape,groups,affine,dtype", [
    ((2, 6, 10), 3, True, F32),
    ((2, 6, 10), 1, True, F32),
    ((2, 6, 10), 6, False, F32),
    ((2, 4, 3, 5), 2, True, F32),
    ((3, 8), 4, True, F32),
    ((2, 6, 10), 2, True, F64),
])
def test_group_norm(shape, groups, affine, dtype):
    x = randn(*shape, dtype=dtype, seed=14) * 2 - 0.5
    c = shape[1]
    tol = norm_tol(x.reshape(shape[0] * groups, -1), dtype)
    if affine:
        w, b = randn(c, dtype=dtype, seed=15), randn(c, dtype=dtype, seed=16)
        check(lambda lib, x, w, b: F(lib).group_norm(x, groups, w, b), x, w, b, **tol)
    else:
        check(lambda lib, x: F(lib).group_norm(x, groups), x, **tol)


# ---- Snake / SnakeBeta -----------------------------------------------------------------------------
def snake_ref(lib, x, alpha):
    """DAC Snake1d, with alpha of shape (1, C, 1)."""
    if not is_torch(lib):
        return AF.snake(x, alpha)
    return x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)


def snake_beta_ref(logscale):
    def f(lib, x, alpha, beta):
        if not is_torch(lib):
            return AF.snake_beta(x, alpha, beta, alpha_logscale=logscale)
        a, b = alpha.unsqueeze(0).unsqueeze(-1), beta.unsqueeze(0).unsqueeze(-1)
        if logscale:
            a, b = torch.exp(a), torch.exp(b)
        return x + 1.0 / (b + 1e-9) * torch.pow(torch.sin(x * a), 2)
    return f


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("shape", [(2, 3, 17), (1, 8, 64)])
def test_snake(shape, dtype):
    c = shape[1]
    x = randn(*shape, dtype=dtype, seed=17) * 3
    alpha = uniform(0.3, 2.0, 1, c, 1, dtype=dtype, seed=18)
    # gradients of 1/alpha * sin(alpha x)^2 reach ~|x|^2: atol 1e-5 for outputs up to ~10
    tol = {} if dtype == F64 else dict(rtol=1e-5, atol=1e-5)
    check(snake_ref, x, alpha, **tol)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("logscale", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 17), (1, 8, 64)])
def test_snake_beta(shape, logscale, dtype):
    c = shape[1]
    x = randn(*shape, dtype=dtype, seed=19)  # audio-range activations
    if logscale:
        alpha, beta = uniform(-1, 1, c, dtype=dtype, seed=20), uniform(-1, 1, c, dtype=dtype, seed=21)
    else:
        alpha, beta = uniform(0.3, 2, c, dtype=dtype, seed=20), uniform(0.3, 2, c, dtype=dtype, seed=21)
    tol = {} if dtype == F64 else dict(rtol=1e-5, atol=1e-5)
    check(snake_beta_ref(logscale), x, alpha, beta, **tol)


def test_snake_beta_loud_input_float32():
    """Inputs up to |x| ~ 9 in float32. Forward and x-gradient at the usual tolerance; the
    parameter gradients get rtol 1e-4: d/dalpha sums N*L terms x*a/b*sin(2xa), whose derivative in
    a is ~|x|^2 * L times larger, so a 1-ulp difference in exp(alpha) (audiograd's vectorized expf
    is within 2.4 ulp, torch's within 0.6) moves it by ~2e-5 relative (measured against float64:
    audiograd 3.4e-4, torch 4e-5 absolute on a gradient of 18)."""
    x = randn(1, 8, 64, seed=19) * 3
    alpha, beta = uniform(-1, 1, 8, seed=20), uniform(-1, 1, 8, seed=21)
    check(snake_beta_ref(True), x, alpha, beta, rtol=1e-5, atol=1e-5, grad_inputs=[True, False, False])
    check(snake_beta_ref(True), x, alpha, beta, rtol=1e-5, atol=1e-5, grad_rtol=1e-4, grad_atol=1e-5)


def test_snake_beta_finite_differences():
    x = randn(1, 3, 7, dtype=F64, seed=22)
    alpha, beta = uniform(-0.5, 0.5, 3, dtype=F64, seed=23), uniform(-0.5, 0.5, 3, dtype=F64, seed=24)
    wt = randn(1, 3, 7, dtype=F64, seed=25)
    eps = 1e-6

    def loss(x, a, b):
        return (AF.snake_beta(x, a, b) * ag.tensor(wt)).sum()

    ts = [ag.tensor(v.copy(), requires_grad=True) for v in (x, alpha, beta)]
    loss(*ts).backward()
    arrays = [x, alpha, beta]
    with ag.no_grad():
        for i, v in enumerate(arrays):
            num = np.zeros_like(v)
            for idx in np.ndindex(v.shape):
                vals = []
                for sign in (1, -1):
                    moved = v.copy()
                    moved[idx] += sign * eps
                    args = [ag.tensor(moved if j == i else a) for j, a in enumerate(arrays)]
                    vals.append(float(loss(*args).item()))
                num[idx] = (vals[0] - vals[1]) / (2 * eps)
            np.testing.assert_allclose(ts[i].grad.numpy(), num, rtol=1e-6, atol=1e-8, err_msg=f"input {i}")
