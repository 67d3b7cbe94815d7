"""Errors raised at the call, and autograd behaviour (accumulation, no_grad, detach) vs PyTorch."""
import re

import numpy as np
import pytest
import torch

import audiograd as ag
from torch_compare import check, randn


def T(*shape, dtype=np.float32, seed=0, requires_grad=False):
    return ag.tensor(randn(*shape, dtype=dtype, seed=seed), requires_grad=requires_grad)


# ---- shape errors: raised by the op itself, before anything is computed -----------------------------
BROADCAST_OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "maximum": lambda a, b: a.maximum(b),
    "minimum": lambda a, b: a.minimum(b), "eq": lambda a, b: a == b, "lt": lambda a, b: a < b,
    "where": lambda a, b: ag.where(a > 0, a, b),
}


@pytest.mark.parametrize("sa,sb", [((3, 4), (5,)), ((2, 3), (3, 2)), ((4, 1, 3), (2, 2))])
@pytest.mark.parametrize("name", list(BROADCAST_OPS))
def test_broadcast_mismatch_raises_shape_error_at_call(name, sa, sb):
    a, b = T(*sa, requires_grad=True), T(*sb)
    with pytest.raises(ag.ShapeError) as info:
        BROADCAST_OPS[name](a, b)  # no .numpy(): the error must come from building the op
    msg = str(info.value)
    assert re.match(rf"{name}\b", msg), msg
    assert str(sa) in msg and str(sb) in msg, msg


def test_shape_error_is_a_value_error_and_runtime_error():
    # code written for torch (RuntimeError) or numpy (ValueError) catches it too
    with pytest.raises(RuntimeError):
        T(3) + T(4)
    with pytest.raises(ValueError):
        T(3) + T(4)


@pytest.mark.parametrize("fn", [
    lambda: T(3, 4).reshape(5, -1), lambda: T(3, 4).view(7), lambda: T(3, 4).expand(3, 5),
    lambda: T(3, 4) @ T(5, 2), lambda: ag.cat([T(2, 3), T(2, 4)], 0), lambda: ag.stack([T(2), T(3)]),
    lambda: T(3, 4).permute(0, 0), lambda: T(3, 4) @ T(3),
], ids=["reshape", "view", "expand", "matmul", "cat", "stack", "permute", "matmul_1d"])
def test_other_shape_errors(fn):
    with pytest.raises(ag.ShapeError):
        fn()


# ---- index and dim errors ----------------------------------------------------------------------
@pytest.mark.parametrize("index", [5, -5, (0, 4), (0, -5), (1, 2, 0), (..., 9)], ids=str)
def test_int_index_out_of_range(index):
    x = T(4, 4)
    with pytest.raises(IndexError):
        x[index]
    with pytest.raises(IndexError):  # torch agrees
        torch.zeros(4, 4)[index]


@pytest.mark.parametrize("fn", [
    lambda x: x.sum(3), lambda x: x.sum((0, -4)), lambda x: x.mean(-4), lambda x: x.amax(3),
    lambda x: x.max(dim=3), lambda x: x.var(5), lambda x: x.softmax(3), lambda x: x.log_softmax(-4),
    lambda x: x.logsumexp(3), lambda x: x.cumsum(3), lambda x: x.unsqueeze(4), lambda x: x.squeeze(3),
    lambda x: x.transpose(0, 3), lambda x: x.permute(0, 1, 3), lambda x: x.flip(3),
    lambda x: ag.cat([x, x], 3), lambda x: ag.stack([x, x], 4), lambda x: x.flatten(0, 3),
], ids=["sum", "sum_tuple", "mean", "amax", "max", "var", "softmax", "log_softmax", "logsumexp",
        "cumsum", "unsqueeze", "squeeze", "transpose", "permute", "flip", "cat", "stack", "flatten"])
def test_bad_dim_raises_index_error(fn):
    with pytest.raises(IndexError):
        fn(T(2, 3, 4))


# ---- type errors ---------------------------------------------------------------------------------
def test_matmul_int_and_float_raises_type_error():
    i = ag.tensor(np.ones((2, 2), np.int64))
    with pytest.raises(TypeError):
        i @ T(2, 2)
    with pytest.raises(TypeError):
        T(2, 2) @ i
    with pytest.raises(TypeError):
        i @ i


def test_requires_grad_on_int_tensor_raises_type_error():
    with pytest.raises(TypeError):
        ag.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError):
        ag.tensor(np.arange(3, dtype=np.int32)).requires_grad_()
    with pytest.raises(TypeError):
        ag.tensor([True, False], requires_grad=True)


@pytest.mark.parametrize("data", [np.zeros(3, np.float16), np.float16(1.0), np.zeros(2, np.complex64),
                                  ["a", "b"]], ids=["f16_array", "f16_scalar", "complex", "str"])
def test_unsupported_data_raises_type_error(data):
    with pytest.raises(TypeError):
        ag.tensor(data)


# ---- autograd ----------------------------------------------------------------------------------------
def _both(x_np, **kw):
    return ag.tensor(x_np, requires_grad=True, **kw), torch.tensor(x_np, requires_grad=True)


def test_backward_twice_accumulates():
    a, t = _both(randn(3, 4))
    for x in (a, t):
        y = (x.exp() * x).sum()
        y.backward(retain_graph=True)
        y.backward()
        (x * 3).sum().backward()  # a second graph adds on top
    np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_second_backward_without_retain_graph_raises():
    x = T(3, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError):
        y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy(), rtol=1e-6)  # left untouched
    assert not y.is_leaf


def test_no_grad_disables_graph_recording():
    x = T(3, 4, requires_grad=True)
    with ag.no_grad():
        assert not ag.is_grad_enabled()
        y = (x * 2).exp().sum()
        with ag.enable_grad():
            z = (x * 2).sum()
    assert ag.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError):
        y.backward()
    assert z.requires_grad
    z.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 4), 2, np.float32))


def test_no_grad_as_decorator():
    @ag.no_grad()
    def f(x):
        return x * 2

    x = T(3, requires_grad=True)
    assert not f(x).requires_grad
    assert ag.is_grad_enabled() and (x * 2).requires_grad


def test_detach_stops_gradient():
    check(lambda lib, x: x * x.detach() + x.detach().exp(), randn(3, 4))


def test_gradient_through_shared_subexpressions():
    def f(lib, x, y):
        h = (x @ y).tanh()
        return h * h.sum(0) + h.T.sum(1, keepdim=True).T - (h * x[:, :1]).mean()
    check(f, randn(3, 4, seed=1), randn(4, 5, seed=2))


def test_backward_with_explicit_gradient():
    x_np, g = randn(3, 4), randn(3, 4, seed=5)
    a, t = _both(x_np)
    a.sin().backward(ag.tensor(g))
    t.sin().backward(torch.tensor(g))
    np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_backward_of_non_scalar_needs_gradient():
    with pytest.raises(RuntimeError):
        (T(3, requires_grad=True) * 2).backward()


def test_leaf_only_gets_grad_and_unused_input_has_none():
    x, y = T(3, requires_grad=True), T(3, seed=1, requires_grad=True)
    h = x * 2
    (h * 3).sum().backward()
    assert y.grad is None and h.grad is None
    assert x.is_leaf and not h.is_leaf
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 6, np.float32))


def test_requires_grad_propagates_only_from_float_leaves():
    x, c = T(3, requires_grad=True), T(3)
    assert (x + c).requires_grad and not (c * 2).requires_grad
    assert not (x > 0).requires_grad
    assert not x.detach().requires_grad


def test_float64_gradients():
    check(lambda lib, x, y: (x / y).log1p().sum() * y.softmax(0),
          np.abs(randn(5, dtype=np.float64)) + 0.1, randn(5, dtype=np.float64, seed=3))
