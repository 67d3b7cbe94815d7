"""Loss functions (audiograd.losses) against torch.nn.functional: values and gradients.

Tolerances (rtol, atol): float32 (1e-5, 1e-5) forward and gradients, float64 (1e-10, 1e-12),
the defaults of ``torch_compare`` for float64 and a slightly wider atol for float32 sums.
"""
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tensor"))

import audiograd as ag  # noqa: E402
from audiograd import losses as L  # noqa: E402
from audiograd.tensor.errors import ShapeError  # noqa: E402
from torch_compare import check, is_torch, randint, randn, uniform  # noqa: E402

FLOATS = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def fn(lib):
    return lib.nn.functional if is_torch(lib) else L


# ---- mse / l1 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_pointwise(name, reduction, dtype):
    x, y = randn(3, 4, 5, dtype=dtype, seed=1), randn(3, 4, 5, dtype=dtype, seed=2)
    check(lambda lib, a, b: getattr(fn(lib), name)(a, b, reduction=reduction), x, y, **tol(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_pointwise_weighted(name, reduction, dtype):
    x, y = randn(3, 4, dtype=dtype, seed=41), randn(3, 4, dtype=dtype, seed=42)
    w = uniform(0.1, 2, 3, 4, dtype=dtype, seed=43)
    check(lambda lib, a, b: getattr(fn(lib), name)(a, b, reduction=reduction, weight=lib.tensor(w)), x, y,
          **tol(dtype))


@pytest.mark.parametrize("name,cls", [("mse_loss", "MSELoss"), ("l1_loss", "L1Loss")])
def test_pointwise_modules(name, cls):
    x, y = randn(6, 7, seed=3), randn(6, 7, seed=4)
    check(lambda lib, a, b: getattr(lib.nn if is_torch(lib) else L, cls)(reduction="sum")(a, b), x, y, **tol(np.float32))
    check(lambda lib, a, b: getattr(lib.nn if is_torch(lib) else L, cls)()(a, b), x, y, **tol(np.float32))


def test_pointwise_broadcast_warns():
    x, y = randn(4, 3, seed=5), randn(3, seed=6)
    with pytest.warns(UserWarning):
        check(lambda lib, a, b: fn(lib).mse_loss(a, b), x, y, **tol(np.float32))


# ---- binary cross entropy -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce(reduction, dtype, weighted):
    p, t = uniform(0.02, 0.98, 4, 6, dtype=dtype, seed=7), uniform(0, 1, 4, 6, dtype=dtype, seed=8)
    w = uniform(0.5, 2, 6, dtype=dtype, seed=9)

    def f(lib, a, b):
        return fn(lib).binary_cross_entropy(a, b, weight=lib.tensor(w) if weighted else None, reduction=reduction)
    check(f, p, t, **tol(dtype))


def test_bce_clamps_log():
    p = np.array([0.0, 1.0, 0.5, 1.0, 0.0], np.float32)
    t = np.array([1.0, 0.0, 1.0, 1.0, 0.0], np.float32)
    check(lambda lib, a, b: fn(lib).binary_cross_entropy(a, b, reduction="none"), p, t, grad=False)
    out = L.binary_cross_entropy(ag.tensor(p), ag.tensor(t), reduction="none").numpy()
    assert np.isfinite(out).all() and out[0] == 100.0


def test_bce_module():
    p, t = uniform(0.05, 0.95, 5, 3, seed=10), uniform(0, 1, 5, 3, seed=11)
    w = uniform(0.5, 2, 3, seed=12)
    check(lambda lib, a, b: (lib.nn.BCELoss if is_torch(lib) else L.BCELoss)(weight=lib.tensor(w))(a, b),
          p, t, **tol(np.float32))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos", [False, True])
def test_bce_with_logits(reduction, dtype, weighted, pos):
    x, t = randn(4, 6, dtype=dtype, seed=13) * 4, uniform(0, 1, 4, 6, dtype=dtype, seed=14)
    w, pw = uniform(0.5, 2, 4, 1, dtype=dtype, seed=15), uniform(0.2, 3, 6, dtype=dtype, seed=16)

    def f(lib, a, b):
        return fn(lib).binary_cross_entropy_with_logits(
            a, b, weight=lib.tensor(w) if weighted else None, reduction=reduction,
            pos_weight=lib.tensor(pw) if pos else None)
    check(f, x, t, **tol(dtype))


def test_bce_with_logits_large_logits_stable():
    x = np.array([-200.0, -50.0, 0.5, 50.0, 200.0], np.float32)
    t = np.array([1.0, 0.0, 1.0, 1.0, 0.0], np.float32)
    check(lambda lib, a, b: fn(lib).binary_cross_entropy_with_logits(a, b, reduction="none"), x, t,
          **tol(np.float32))


def test_bce_with_logits_module():
    x, t = randn(2, 3, 4, seed=17), uniform(0, 1, 2, 3, 4, seed=18)
    pw = uniform(0.2, 3, 4, seed=19)
    check(lambda lib, a, b: (lib.nn.BCEWithLogitsLoss if is_torch(lib) else L.BCEWithLogitsLoss)(
        pos_weight=lib.tensor(pw), reduction="sum")(a, b), x, t, **tol(np.float32))


# ---- cross entropy: class indices ---------------------------------------------------------------
SHAPES = [(6, 5), (3, 4, 2, 3)]


def _indices(shape, seed, ignore=False):
    n, c = shape[0], shape[1]
    t = randint(0, c, n, *shape[2:], seed=seed)
    if ignore:
        t.reshape(-1)[::3] = -100
    return t


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted,ignore,smoothing", [
    (False, False, 0.0), (True, False, 0.0), (False, True, 0.0), (True, True, 0.0),
    (False, False, 0.2), (True, True, 0.15)])
def test_cross_entropy_indices(shape, reduction, dtype, weighted, ignore, smoothing):
    x = randn(*shape, dtype=dtype, seed=20) * 2
    t = _indices(shape, seed=21, ignore=ignore)
    w = uniform(0.3, 2.0, shape[1], dtype=dtype, seed=22)

    def f(lib, a, b):
        return fn(lib).cross_entropy(a, b, weight=lib.tensor(w) if weighted else None, reduction=reduction,
                                     label_smoothing=smoothing)
    check(f, x, t, **tol(dtype))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_ignore_index_in_range(reduction):
    # ignore_index may be a real class: those targets are skipped, including in label smoothing
    x, t = randn(8, 4, seed=23), randint(0, 4, 8, seed=24)
    w = uniform(0.3, 2.0, 4, seed=25)
    check(lambda lib, a, b: fn(lib).cross_entropy(a, b, weight=lib.tensor(w), ignore_index=2, reduction=reduction,
                                                  label_smoothing=0.1), x, t, **tol(np.float32))


def test_cross_entropy_unbatched():
    x = randn(5, seed=26)
    check(lambda lib, a, b: fn(lib).cross_entropy(a, b, label_smoothing=0.1), x, np.array(3, np.int64),
          **tol(np.float32))


def test_cross_entropy_all_ignored_is_nan():
    x, t = randn(3, 4, seed=27), np.full(3, -100, np.int64)
    out = L.cross_entropy(ag.tensor(x), ag.tensor(t)).item()
    assert np.isnan(out) and np.isnan(torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t)).item())
    assert L.cross_entropy(ag.tensor(x), ag.tensor(t), reduction="sum").item() == 0.0


def test_cross_entropy_module():
    x, t = randn(4, 3, 2, seed=28), _indices((4, 3, 2), seed=29, ignore=True)
    w = uniform(0.3, 2.0, 3, seed=30)
    check(lambda lib, a, b: (lib.nn.CrossEntropyLoss if is_torch(lib) else L.CrossEntropyLoss)(
        weight=lib.tensor(w), label_smoothing=0.05)(a, b), x, t, **tol(np.float32))
    m = L.CrossEntropyLoss(weight=ag.tensor(w), ignore_index=1)
    assert m.weight is not None and m.ignore_index == 1 and m.reduction == "mean"


# ---- cross entropy: class probabilities ---------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted,smoothing", [(False, 0.0), (True, 0.0), (True, 0.25)])
def test_cross_entropy_probs(shape, reduction, dtype, weighted, smoothing):
    x = randn(*shape, dtype=dtype, seed=31) * 2
    p = uniform(0.01, 1, *shape, dtype=dtype, seed=32)
    p = (p / p.sum(1, keepdims=True)).astype(dtype)
    w = uniform(0.3, 2.0, shape[1], dtype=dtype, seed=33)

    def f(lib, a, b):
        return fn(lib).cross_entropy(a, b, weight=lib.tensor(w) if weighted else None, reduction=reduction,
                                     label_smoothing=smoothing)
    check(f, x, p, **tol(dtype))  # gradients w.r.t. input and target


# ---- errors -------------------------------------------------------------------------------------
def _t(a):
    return ag.tensor(np.asarray(a))


@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_bce_shape_mismatch(name):
    with pytest.raises(ShapeError, match=rf"{name}.*\(3, 4\).*\(3, 1\)"):
        getattr(L, name)(_t(uniform(0.1, 0.9, 3, 1)), _t(uniform(0.1, 0.9, 3, 4)))


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_pointwise_shape_mismatch(name):
    with pytest.raises(ShapeError, match=rf"{name}.*\(3, 4\).*\(5,\)"):
        getattr(L, name)(_t(randn(3, 4)), _t(randn(5)))


def test_pointwise_weight_shape_mismatch():
    with pytest.raises(ShapeError, match=r"mse_loss.*\(4,\).*\(3, 4\)"):
        L.mse_loss(_t(randn(3, 4)), _t(randn(3, 4)), weight=_t(randn(4)))


def test_cross_entropy_shape_errors():
    x = _t(randn(4, 3, 2))
    with pytest.raises(ShapeError, match=r"cross_entropy.*\(4, 3, 2\).*\(4, 2\).*\(4, 3\)"):
        L.cross_entropy(x, _t(randint(0, 3, 4, 3)))
    with pytest.raises(ShapeError, match=r"cross_entropy.*\(4, 3, 2\).*\(4, 2, 3\)"):
        L.cross_entropy(x, _t(randn(4, 2, 3)))
    with pytest.raises(ShapeError, match=r"cross_entropy.*weight.*\(3,\).*\(4,\)"):
        L.cross_entropy(x, _t(randint(0, 3, 4, 2)), weight=_t(np.ones(4, np.float32)))


def test_cross_entropy_index_out_of_range():
    x = _t(randn(4, 3))
    with pytest.raises(IndexError, match=r"cross_entropy.*3.*out of bounds"):
        L.cross_entropy(x, _t(np.array([0, 1, 3, 2])))
    with pytest.raises(IndexError, match=r"-1"):
        L.cross_entropy(x, _t(np.array([0, -1, 1, 2])))
    L.cross_entropy(x, _t(np.array([0, -100, 1, 2])))  # ignore_index is allowed


def test_bad_arguments():
    x, t = _t(randn(4, 3)), _t(randint(0, 3, 4))
    with pytest.raises(ValueError, match="reduction"):
        L.cross_entropy(x, t, reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        L.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        L.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match="ignore_index"):
        L.cross_entropy(x, _t(randn(4, 3)), ignore_index=1)
    with pytest.raises(ShapeError, match=r"cross_entropy.*\(4, 3\).*\(4,\)"):
        L.cross_entropy(x, _t(np.zeros(4, np.float32)))  # float target = probabilities: needs input's shape
    with pytest.raises(TypeError, match="cross_entropy.*bool"):
        L.cross_entropy(x, _t(np.zeros(4, np.bool_)))
