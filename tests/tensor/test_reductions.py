"""Reductions, normalizations and cumsum: values and gradients against PyTorch."""
import numpy as np
import pytest
import torch

import audiograd as ag
from torch_compare import check, check_forward, is_torch, randint, randn

FLOATS = [np.float32, np.float64]
DIMS = [None, 0, -1, 1, (0, 2), (-1, 0), (0, 1, 2)]


def _ties(*shape, dtype=np.float32, seed=0):
    return np.round(randn(*shape, seed=seed) * 1.5).astype(dtype)  # small ints: many ties


def _kw(dim, keepdim):
    kw = {} if dim is None and not keepdim else {"dim": dim}
    if keepdim:
        kw["keepdim"] = True
    return kw


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_sum_mean(name, dim, keepdim, dtype):
    check(lambda lib, x: getattr(x, name)(**_kw(dim, keepdim)), randn(3, 4, 5, dtype=dtype))


@pytest.mark.parametrize("name", ["sum", "mean"])
def test_axis_alias(name):
    check(lambda lib, x: getattr(x, name)(axis=1), randn(3, 4, 5))
    check(lambda lib, x: getattr(x, name)(axis=(0, -1), keepdim=True), randn(3, 4, 5))


@pytest.mark.parametrize("shape", [(), (1,), (6,), (1, 4, 1)])
def test_sum_small_shapes(shape):
    check(lambda lib, x: x.sum(), randn(*shape))
    check(lambda lib, x: x.mean(), randn(*shape))


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_int_sum_is_int64(dtype):
    x = randint(-50, 50, 3, 4, dtype=dtype)
    check_forward(lambda lib, x: x.sum(), x)
    check_forward(lambda lib, x: x.sum(1), x)
    check_forward(lambda lib, x: (x > 0).sum(0), x)  # bool sum counts, as int64


def test_sum_dtype_argument():
    x = randn(3, 4)
    check(lambda lib, x: x.sum(0, dtype=lib.float64), x, rtol=1e-10, atol=1e-12)


def test_mean_of_int_raises():
    with pytest.raises(TypeError):
        ag.tensor(np.arange(6)).mean()


# ---- max / min / amax / amin --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_no_dim(name, dtype):
    check(lambda lib, x: getattr(x, name)(), randn(3, 4, dtype=dtype))


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_no_dim_ties_share_gradient(name):
    # torch spreads the gradient evenly over tied extremes of a full reduction
    x = np.array([[1.0, 3.0, 3.0], [-2.0, 3.0, -2.0]], np.float32)
    check(lambda lib, x: getattr(x, name)(), x)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1, -3])
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_dim_values_indices(name, dim, keepdim, dtype):
    check(lambda lib, x: getattr(x, name)(dim, keepdim=keepdim), randn(3, 4, 5, dtype=dtype))


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_dim_ties_take_first_index(name):
    x = _ties(4, 6, seed=3)
    check(lambda lib, x: getattr(x, name)(dim=1), x)
    check(lambda lib, x: getattr(x, name)(0, True), x)


def test_max_dim_namedtuple_fields():
    x = ag.tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]], np.float32))
    out = x.max(dim=1)
    values, indices = out
    assert out.values is values and out.indices is indices
    np.testing.assert_array_equal(values.numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    assert indices.dtype is ag.int64


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [None, 0, -1, (0, 2), (-1, 1)])
@pytest.mark.parametrize("name", ["amax", "amin"])
def test_amax_amin(name, dim, keepdim, dtype):
    kw = {"keepdim": keepdim} if dim is None else {"dim": dim, "keepdim": keepdim}
    check(lambda lib, x: getattr(x, name)(**kw), randn(3, 4, 5, dtype=dtype))


@pytest.mark.parametrize("dim", [0, 1, (0, 1)])
@pytest.mark.parametrize("name", ["amax", "amin"])
def test_amax_amin_ties_share_gradient(name, dim):
    check(lambda lib, x: getattr(x, name)(dim), _ties(5, 4, seed=2))


def test_amax_axis_alias_and_int():
    check(lambda lib, x: x.amax(axis=1), randn(3, 4))
    check_forward(lambda lib, x: x.amax(0), randint(-9, 9, 3, 4))
    check_forward(lambda lib, x: x.amin(1), randint(-9, 9, 3, 4))


@pytest.mark.parametrize("dim", [None, 0, -1])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin(name, dim):
    kw = {} if dim is None else {"dim": dim}
    check_forward(lambda lib, x: getattr(x, name)(**kw), _ties(4, 5, seed=6))


# ---- var / std -----------------------------------------------------------------------------------
VAR_KW = [{}, {"dim": 1}, {"dim": -1, "keepdim": True}, {"dim": (0, 2)}, {"correction": 0},
          {"dim": 0, "correction": 0}, {"dim": 2, "unbiased": False}, {"dim": 1, "unbiased": True},
          {"dim": (0, 1), "correction": 2, "keepdim": True}]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kw", VAR_KW, ids=str)
@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std(name, kw, dtype):
    kw = dict(kw)
    if "dim" not in kw and "unbiased" in kw:
        kw["dim"] = None
    check(lambda lib, x: getattr(x, name)(**kw), randn(3, 4, 5, dtype=dtype))


def test_var_unbiased_positional():
    # torch's old positional form var(dim, unbiased, keepdim)
    check(lambda lib, x: x.var(1, False, True), randn(3, 4))


# ---- logsumexp / softmax / log_softmax ------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, -1, 1, (0, 2), (-1, -2)])
def test_logsumexp(dim, keepdim, dtype):
    x = randn(3, 4, 5, dtype=dtype) * 3
    check(lambda lib, x: x.logsumexp(dim, keepdim=keepdim), x)


def test_logsumexp_large_and_infinite_values():
    x = np.array([[1000.0, 1000.0, -5.0], [-np.inf, -np.inf, -np.inf], [-np.inf, 0.0, 1.0]], np.float32)
    check_forward(lambda lib, x: x.logsumexp(1), x)
    # torch's backward is exp(x - result) with result ~1000.69 rounded to float32 (spacing 6e-5),
    # so torch itself is off by up to ~3e-5 relative here; audiograd's value is the exact 0.5*w
    check(lambda lib, x: x.logsumexp(1), x[[0, 2]], grad_rtol=1e-4)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(name, dim, dtype):
    x = randn(3, 4, 5, dtype=dtype) * 3
    check(lambda lib, x: getattr(x, name)(dim), x)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_large_values_and_functional(name):
    x = (randn(4, 6, seed=2) * 50 + 500).astype(np.float32)

    def f(lib, x):
        if is_torch(lib):
            return getattr(torch.nn.functional, name)(x, dim=-1)
        return getattr(x, name)(-1)
    check(f, x, atol=1e-5)  # the values reach ~|x|*eps before cancelling: 500 * 6e-8 * a few


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_ties_gradient(name):
    # the detached max shift must not route gradient through the max
    check(lambda lib, x: getattr(x, name)(1), _ties(3, 5, seed=4))


# ---- cumsum --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((7,), -1), ((3, 4, 5), 0), ((3, 4, 5), 1),
                                       ((3, 4, 5), 2), ((3, 4, 5), -2), ((3, 1, 5), 1), ((), 0)])
def test_cumsum(shape, dim, dtype):
    check(lambda lib, x: x.cumsum(dim), randn(*shape, dtype=dtype))


def test_cumsum_of_view_and_int():
    check(lambda lib, x: x.T.cumsum(0) * 2, randn(4, 6))
    check_forward(lambda lib, x: x.cumsum(1), randint(-5, 5, 3, 4))
    check_forward(lambda lib, x: x.cumsum(1), randint(-5, 5, 3, 4, dtype=np.int32))


def test_cumsum_long_is_accurate():
    check(lambda lib, x: x.cumsum(0), randn(1000, dtype=np.float64))


# ---- composite -----------------------------------------------------------------------------------
def test_reduction_feeding_elementwise():
    def f(lib, x, w):
        h = (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True, unbiased=False) + 1e-5).sqrt()
        return (h * w).sum(0), h.amax(1)
    check(f, randn(6, 8, seed=1), randn(8, seed=2), rtol=1e-4, atol=1e-5)
    # normalization divides by a small std: float32 rounding of mean/var is amplified ~10x
