"""Convolutions compared with torch.nn.functional: values and gradients for input, weight and bias.

Tolerances: float32 uses rtol 1e-5 and an atol of 1e-5 * sqrt(terms), where ``terms`` is the
largest number of products any compared value sums (forward: in_channels/groups * taps; input
grad: out_channels/groups * taps; weight and bias grads: batch * output positions). With
standard-normal data and weights such a sum has magnitude ~sqrt(terms), so this is 1e-5 relative
to the typical output magnitude. float64 cases use rtol 1e-10, atol 1e-12 * sqrt(terms).
The curated grids keep the number of distinct shapes (each compiles its own kernels) small.
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
from torch_compare import check, randn  # noqa: E402

import audiograd as ag  # noqa: E402
import audiograd.nn.functional as AF  # noqa: E402


def F(lib):
    return TF if lib is torch else AF


def tols(dtype, *terms):
    root = math.sqrt(max(1, *terms))
    if np.dtype(dtype) == np.float64:
        return dict(rtol=1e-10, atol=1e-12 * root)
    return dict(rtol=1e-5, atol=1e-5 * root)


def run(op, x, w, b, kw, terms, dtype=np.float32):
    """Compare ``op(x, w, b, **kw)``; ``b`` may be None (no bias); ``terms`` as in ``tols``."""
    t = tols(dtype, *terms)
    if b is None:
        check(lambda lib, x, w: getattr(F(lib), op)(x, w, None, **kw), x, w, **t)
    else:
        check(lambda lib, x, w, b: getattr(F(lib), op)(x, w, b, **kw), x, w, b, **t)


# ---- conv1d --------------------------------------------------------------------------------------
# (batch or None for unbatched, cin, cout, length, kernel, stride, padding, dilation, groups, bias)
CONV1D = [
    # kernel sizes 1..16, stride 1
    (2, 3, 4, 9, 1, 1, 0, 1, 1, True),
    (1, 3, 4, 9, 2, 1, 0, 1, 1, True),
    (2, 3, 5, 9, 3, 1, 1, 1, 1, True),
    (2, 2, 3, 12, 4, 1, 0, 1, 1, False),
    (1, 4, 2, 11, 5, 1, 2, 1, 1, True),
    (2, 3, 3, 10, 6, 1, 0, 1, 1, True),
    (2, 2, 4, 13, 7, 1, 3, 1, 1, True),
    (1, 3, 2, 16, 8, 1, 0, 1, 1, False),
    (2, 2, 2, 18, 9, 1, 4, 1, 1, True),
    (2, 3, 4, 20, 10, 1, 0, 1, 1, True),
    (1, 2, 3, 11, 11, 1, 0, 1, 1, True),   # output length 1
    (2, 4, 4, 25, 12, 1, 0, 1, 1, True),
    (1, 2, 2, 13, 13, 1, 6, 1, 1, True),
    (2, 3, 2, 30, 14, 1, 0, 1, 1, True),
    (1, 2, 3, 15, 15, 1, 0, 1, 1, False),  # output length 1
    (2, 8, 8, 40, 16, 1, 0, 1, 1, True),   # im2col + BLAS path
    # strides 2, 3, 4 (odd and even), with and without padding
    (2, 3, 4, 17, 3, 2, 1, 1, 1, True),
    (2, 3, 4, 16, 4, 2, 1, 1, 1, True),
    (1, 4, 3, 20, 5, 3, 2, 1, 1, True),
    (2, 2, 5, 21, 3, 3, 0, 1, 1, True),
    (2, 3, 3, 22, 8, 4, 2, 1, 1, True),
    (1, 2, 2, 9, 2, 4, 0, 1, 1, False),
    (2, 16, 8, 33, 7, 2, 3, 1, 1, True),   # BLAS path, strided
    (2, 3, 2, 7, 7, 4, 0, 1, 1, True),     # stride larger than the span of outputs: length 1
    # padding larger than half the kernel (torch allows any padding for conv)
    (2, 2, 3, 5, 3, 1, 4, 1, 1, True),
    (1, 3, 2, 4, 2, 2, 5, 1, 1, True),
    (2, 2, 2, 1, 3, 1, 3, 1, 1, True),     # length-1 input
    (1, 2, 3, 1, 1, 1, 0, 1, 1, True),     # length-1 input and kernel
    (2, 2, 2, 2, 5, 3, 2, 1, 1, False),
    # dilation 2, 3, 9
    (2, 3, 4, 15, 3, 1, 2, 2, 1, True),
    (2, 2, 3, 20, 4, 2, 3, 3, 1, True),
    (1, 3, 3, 30, 3, 1, 9, 9, 1, True),    # HiFi-GAN style residual dilation
    (2, 2, 2, 19, 3, 1, 0, 9, 1, True),    # output length 1
    (2, 4, 4, 40, 7, 3, 5, 3, 1, True),
    (2, 12, 8, 50, 5, 2, 4, 2, 1, True),   # BLAS path, dilated
    # groups 2 and depthwise
    (2, 4, 6, 12, 3, 1, 1, 1, 2, True),
    (2, 6, 4, 15, 5, 2, 2, 2, 2, True),
    (1, 8, 8, 16, 16, 1, 0, 1, 2, True),   # BLAS path per group, output length 1
    (2, 4, 4, 10, 3, 1, 1, 1, 4, True),    # depthwise
    (2, 5, 10, 18, 7, 3, 3, 1, 5, True),   # depthwise, channel multiplier 2
    (1, 6, 6, 25, 5, 2, 6, 3, 6, False),   # depthwise, dilated, strided
    (2, 3, 3, 1, 1, 1, 0, 1, 3, True),     # depthwise, length 1
    (2, 32, 32, 20, 7, 1, 3, 1, 32, True),  # depthwise, many channels
    (2, 64, 16, 9, 3, 1, 1, 1, 4, True),   # grouped BLAS
    # unbatched (C, L)
    (None, 3, 4, 11, 3, 1, 1, 1, 1, True),
    (None, 4, 4, 13, 5, 2, 2, 2, 2, False),
    (None, 16, 8, 20, 9, 3, 4, 1, 1, True),
    (None, 4, 4, 9, 7, 1, 3, 1, 4, True),
]


def conv1d_case(n, cin, cout, L, k, s, p, d, g, bias, dtype=np.float32):
    x = randn(*((cin, L) if n is None else (n, cin, L)), dtype=dtype, seed=L)
    w = randn(cout, cin // g, k, dtype=dtype, seed=k + 100)
    b = randn(cout, dtype=dtype, seed=7) if bias else None
    lout = (L + 2 * p - d * (k - 1) - 1) // s + 1 if isinstance(p, int) else L
    terms = (cin // g * k, max(cout // g * k, (n or 1) * lout))
    return x, w, b, terms


@pytest.mark.parametrize("n,cin,cout,L,k,s,p,d,g,bias", CONV1D)
def test_conv1d(n, cin, cout, L, k, s, p, d, g, bias):
    x, w, b, terms = conv1d_case(n, cin, cout, L, k, s, p, d, g, bias)
    run("conv1d", x, w, b, dict(stride=s, padding=p, dilation=d, groups=g), terms)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("n,cin,cout,L,k,p,d,g", [
    (2, 3, 4, 10, 3, "same", 1, 1),
    (1, 2, 3, 9, 4, "same", 1, 1),    # even kernel: torch pads 1 left, 2 right
    (2, 4, 4, 15, 5, "same", 3, 2),
    (2, 3, 3, 12, 6, "same", 2, 3),   # even span with dilation
    (2, 2, 2, 1, 7, "same", 1, 1),    # length 1
    (1, 8, 16, 20, 9, "same", 1, 1),  # BLAS path
    (2, 3, 4, 10, 3, "valid", 1, 1),
    (2, 4, 2, 10, 10, "valid", 1, 2),  # output length 1
    (None, 3, 2, 12, 5, "same", 2, 1),
])
def test_conv1d_string_padding(n, cin, cout, L, k, p, d, g):
    x, w, b, terms = conv1d_case(n, cin, cout, L, k, 1, p, d, g, True)
    if p == "valid":
        terms = (terms[0], max(terms[1], (n or 1) * (L - d * (k - 1))))
    run("conv1d", x, w, b, dict(padding=p, dilation=d, groups=g), terms)


@pytest.mark.parametrize("case", [CONV1D[2], CONV1D[17], CONV1D[30], CONV1D[36], CONV1D[38], CONV1D[15]])
def test_conv1d_float64(case):
    x, w, b, terms = conv1d_case(*case, dtype=np.float64)
    s, p, d, g = case[5:9]
    run("conv1d", x, w, b, dict(stride=s, padding=p, dilation=d, groups=g), terms, dtype=np.float64)


# ---- conv_transpose1d ----------------------------------------------------------------------------
# (batch or None, cin, cout, length, kernel, stride, padding, output_padding, dilation, groups, bias)
CONVT1D = [
    (2, 3, 4, 7, 3, 1, 0, 0, 1, 1, True),
    (1, 3, 2, 1, 1, 1, 0, 0, 1, 1, True),     # length 1, kernel 1
    (2, 2, 3, 1, 4, 2, 0, 0, 1, 1, True),     # length 1
    (2, 3, 3, 6, 3, 2, 1, 1, 1, 1, True),
    (2, 2, 4, 5, 5, 3, 2, 2, 1, 1, False),
    (1, 4, 2, 8, 2, 4, 0, 3, 1, 1, True),     # kernel < stride: gaps filled by output_padding only
    (2, 3, 2, 6, 3, 1, 1, 0, 2, 1, True),     # dilation
    (2, 2, 2, 5, 4, 2, 3, 1, 3, 1, True),     # dilation and stride, output_padding < dilation
    (2, 4, 6, 7, 3, 2, 1, 0, 1, 2, True),     # groups
    (2, 6, 6, 5, 4, 3, 1, 2, 2, 3, True),     # groups, dilation
    (2, 4, 4, 6, 3, 2, 1, 1, 1, 4, True),     # depthwise
    (None, 3, 4, 6, 4, 2, 1, 0, 1, 1, True),  # unbatched
    (2, 16, 8, 12, 7, 1, 3, 0, 1, 1, True),
    (2, 3, 2, 4, 9, 3, 5, 0, 1, 1, True),     # padding > kernel / 2
    # Oobleck / DAC upsampler family: kernel 2s, stride s, padding ceil(s / 2)
    (2, 4, 2, 9, 4, 2, 1, 0, 1, 1, True),
    (1, 6, 3, 7, 8, 4, 2, 0, 1, 1, True),
    (2, 4, 4, 5, 16, 8, 4, 0, 1, 1, True),
    (2, 8, 4, 6, 16, 8, 4, 0, 1, 1, False),
    (1, 3, 3, 5, 6, 3, 2, 0, 1, 1, True),     # odd s=3
    (2, 4, 2, 3, 10, 5, 3, 1, 1, 1, True),    # odd s=5 with output_padding
]


def convt1d_case(n, cin, cout, L, k, s, p, op, d, g, bias, dtype=np.float32):
    x = randn(*((cin, L) if n is None else (n, cin, L)), dtype=dtype, seed=L + 50)
    w = randn(cin, cout // g, k, dtype=dtype, seed=k + 200)
    b = randn(cout, dtype=dtype, seed=8) if bias else None
    lout = (L - 1) * s - 2 * p + d * (k - 1) + op + 1
    # each output sums <= cin/g * ceil(k / s) products; input grads sum cout/g * k; weight grads n*L
    terms = (cin // g * k, max(cout // g * k, (n or 1) * max(L, lout)))
    return x, w, b, terms


def convt1d_kw(s, p, op, d, g):
    return dict(stride=s, padding=p, output_padding=op, dilation=d, groups=g)


@pytest.mark.parametrize("n,cin,cout,L,k,s,p,op,d,g,bias", CONVT1D)
def test_conv_transpose1d(n, cin, cout, L, k, s, p, op, d, g, bias):
    x, w, b, terms = convt1d_case(n, cin, cout, L, k, s, p, op, d, g, bias)
    run("conv_transpose1d", x, w, b, convt1d_kw(s, p, op, d, g), terms)


@pytest.mark.parametrize("case", [CONVT1D[3], CONVT1D[7], CONVT1D[9], CONVT1D[16]])
def test_conv_transpose1d_float64(case):
    s, p, op, d, g = case[5:10]
    x, w, b, terms = convt1d_case(*case, dtype=np.float64)
    run("conv_transpose1d", x, w, b, convt1d_kw(s, p, op, d, g), terms, dtype=np.float64)


# ---- 2-D -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,cin,cout,hw,k,s,p,d,g,dtype", [
    (2, 3, 4, (7, 9), (3, 3), 1, 1, 1, 1, np.float32),
    (1, 2, 3, (8, 6), (3, 2), (2, 1), (1, 0), (1, 2), 1, np.float32),
    (2, 4, 4, (9, 10), (2, 4), (3, 2), (2, 3), (2, 1), 2, np.float32),
    (2, 4, 4, (6, 6), (3, 3), 2, 1, 1, 4, np.float32),       # depthwise
    (1, 8, 6, (10, 7), (5, 3), 1, "same", (1, 2), 1, np.float32),
    (None, 3, 2, (5, 5), (5, 5), 1, 0, 1, 1, np.float32),   # unbatched, output 1x1
    (2, 2, 3, (6, 7), (3, 2), (1, 2), (2, 1), (2, 1), 1, np.float64),
])
def test_conv2d(n, cin, cout, hw, k, s, p, d, g, dtype):
    x = randn(*(((cin,) if n is None else (n, cin)) + hw), dtype=dtype, seed=3)
    w = randn(cout, cin // g, *k, dtype=dtype, seed=4)
    b = randn(cout, dtype=dtype, seed=5)
    terms = (cin // g * math.prod(k), max(cout // g * math.prod(k), (n or 1) * math.prod(hw)))
    run("conv2d", x, w, b, dict(stride=s, padding=p, dilation=d, groups=g), terms, dtype=dtype)


@pytest.mark.parametrize("n,cin,cout,hw,k,s,p,op,d,g,dtype", [
    (2, 3, 4, (4, 5), (3, 3), 1, 0, 0, 1, 1, np.float32),
    (1, 2, 3, (3, 4), (4, 2), (2, 1), (1, 0), (1, 0), 1, 1, np.float32),
    (2, 4, 2, (3, 3), (3, 4), (3, 2), (1, 2), (2, 1), (1, 2), 2, np.float32),
    (None, 3, 3, (2, 3), (2, 3), 2, 0, 1, 1, 3, np.float32),  # unbatched depthwise
    (2, 2, 4, (3, 4), (4, 3), (2, 3), (1, 1), (0, 2), (2, 1), 2, np.float64),
])
def test_conv_transpose2d(n, cin, cout, hw, k, s, p, op, d, g, dtype):
    x = randn(*(((cin,) if n is None else (n, cin)) + hw), dtype=dtype, seed=6)
    w = randn(cin, cout // g, *k, dtype=dtype, seed=7)
    b = randn(cout, dtype=dtype, seed=8)
    terms = (cin // g * math.prod(k), max(cout // g * math.prod(k), (n or 1) * 4 * math.prod(hw)))
    run("conv_transpose2d", x, w, b, dict(stride=s, padding=p, output_padding=op, dilation=d, groups=g),
        terms, dtype=dtype)


# ---- float64 finite differences --------------------------------------------------------------------
def numeric_check(f, arrays, eps=1e-6, rtol=1e-6, atol=1e-8):
    """Analytic gradients of ``sum(f(*xs) * w)`` against central differences (float64)."""
    xs = [np.array(a, dtype=np.float64) for a in arrays]
    with ag.no_grad():
        out_shape = f(*[ag.tensor(x) for x in xs]).shape
    wt = randn(*out_shape, dtype=np.float64, seed=99)

    def loss(*ts):
        return (f(*ts) * ag.tensor(wt)).sum()

    ts = [ag.tensor(x.copy(), requires_grad=True) for x in xs]
    loss(*ts).backward()

    def value(i, xi):
        return float(loss(*[ag.tensor(xi if j == i else y) for j, y in enumerate(xs)]).item())

    with ag.no_grad():
        for i, x in enumerate(xs):
            num = np.zeros_like(x)
            for idx in np.ndindex(x.shape):
                hi, lo = x.copy(), x.copy()
                hi[idx] += eps
                lo[idx] -= eps
                num[idx] = (value(i, hi) - value(i, lo)) / (2 * eps)
            np.testing.assert_allclose(ts[i].grad.numpy(), num, rtol=rtol, atol=atol, err_msg=f"input {i}")


def test_conv1d_finite_differences():
    x, w, b = randn(1, 4, 9, dtype=np.float64, seed=1), randn(4, 2, 3, dtype=np.float64, seed=2), \
        randn(4, dtype=np.float64, seed=3)
    numeric_check(lambda x, w, b: AF.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2), [x, w, b])


def test_conv_transpose1d_finite_differences():
    x, w, b = randn(1, 2, 4, dtype=np.float64, seed=4), randn(2, 3, 4, dtype=np.float64, seed=5), \
        randn(3, dtype=np.float64, seed=6)
    numeric_check(lambda x, w, b: AF.conv_transpose1d(x, w, b, stride=3, padding=1, output_padding=1),
                  [x, w, b])


# ---- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("op,xs,ws,g", [
    ("conv1d", (1, 4, 10), (2, 3, 3), 1),             # in channels 4 vs weight 3
    ("conv1d", (1, 4, 10), (3, 2, 3), 2),             # out channels 3 not divisible by groups 2
    ("conv1d", (1, 6, 10), (4, 2, 3), 2),             # 2*2 != 6
    ("conv2d", (1, 3, 5, 5), (2, 2, 3, 3), 1),
    ("conv_transpose1d", (1, 4, 10), (3, 2, 3), 1),   # weight dim 0 must be in channels
    ("conv_transpose1d", (1, 3, 10), (3, 2, 3), 2),   # 3 not divisible by groups 2
    ("conv_transpose2d", (1, 4, 5, 5), (2, 2, 3, 3), 1),
])
def test_channel_mismatch_raises_shape_error(op, xs, ws, g):
    x, w = ag.tensor(randn(*xs)), ag.tensor(randn(*ws))
    with pytest.raises(ag.ShapeError) as e:
        getattr(AF, op)(x, w, groups=g)
    msg = str(e.value)
    assert op in msg and str(tuple(xs)) in msg and str(tuple(ws)) in msg, msg
    with pytest.raises(RuntimeError):  # torch rejects them too
        getattr(TF, op)(torch.tensor(randn(*xs)), torch.tensor(randn(*ws)), groups=g)


@pytest.mark.parametrize("op", ["conv1d", "conv2d"])
def test_same_padding_with_stride_raises(op):
    shape = (1, 2, 8) if op == "conv1d" else (1, 2, 8, 8)
    wshape = (2, 2, 3) if op == "conv1d" else (2, 2, 3, 3)
    x, w = ag.tensor(randn(*shape)), ag.tensor(randn(*wshape))
    with pytest.raises(ValueError, match="same"):
        getattr(AF, op)(x, w, stride=2, padding="same")
    with pytest.raises(RuntimeError, match="same"):  # torch's message, as a RuntimeError
        getattr(TF, op)(torch.tensor(randn(*shape)), torch.tensor(randn(*wshape)), stride=2, padding="same")


@pytest.mark.parametrize("nd", [1, 2])
def test_transposed_conv_with_an_empty_output_is_empty_as_in_torch(nd):
    x = np.random.default_rng(0).standard_normal((1, 4) + (1,) * nd).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((4, 2) + (1,) * nd).astype(np.float32)
    fn, tfn = (AF.conv_transpose1d, TF.conv_transpose1d) if nd == 1 else (AF.conv_transpose2d, TF.conv_transpose2d)
    want = tfn(torch.from_numpy(x), torch.from_numpy(w), None, 2, 1, 1, 2, 1)
    xt = ag.tensor(x, requires_grad=True)
    got = fn(xt, ag.tensor(w), None, 2, 1, 1, 2, 1)
    assert got.shape == tuple(want.shape) and 0 in got.shape
    got.sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), np.zeros_like(x))
