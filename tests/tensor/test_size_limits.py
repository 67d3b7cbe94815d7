"""Shapes whose element count overflows, or exceeds the 2**48 limit, are refused when the op is
recorded (a ShapeError naming the op), never reaching a kernel or summing to 0.0 silently."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import audiograd as ag
import audiograd.nn.functional as F
from audiograd.tensor.checks import MAX_NUMEL

BIG = 2 ** 40

HUGE = {
    "zeros": ("zeros", lambda: ag.zeros(BIG, BIG)),
    "ones_then_sum": ("ones", lambda: ag.ones(2 ** 31, 2 ** 31, 4).sum()),
    "full": ("full", lambda: ag.full((2 ** 32, 2 ** 32), 1.0)),
    "randn": ("randn", lambda: ag.randn(2 ** 62)),
    "arange": ("arange", lambda: ag.arange(0, 2 ** 60)),
    "expand": ("expand", lambda: ag.zeros(1, 1).expand(BIG, BIG)),
    "broadcast_add": ("add", lambda: ag.zeros(2 ** 30, 1) + ag.zeros(1, 2 ** 30)),
    "broadcast_to": ("broadcast_to", lambda: ag.zeros(1).broadcast_to((BIG, BIG))),
    "repeat": ("expand", lambda: ag.zeros(2, 2).repeat(BIG, BIG)),
    "pad_2_62": ("pad", lambda: F.pad(ag.zeros(2), (2 ** 62, 0))),
    "pad_2_63": ("pad", lambda: F.pad(ag.zeros(2), (0, 2 ** 63))),
    "conv_padding": ("conv1d", lambda: F.conv1d(ag.zeros(1, 1, 4), ag.zeros(1, 1, 3), padding=2 ** 62)),
    "conv_transpose_stride": ("conv_transpose1d",
                              lambda: F.conv_transpose1d(ag.zeros(1, 1, 4), ag.zeros(1, 1, 3), stride=2 ** 62)),
    "unfold": ("unfold", lambda: ag.zeros(2 ** 26).unfold(0, 2 ** 25, 1)),
    "matmul_empty_inner": ("matmul", lambda: ag.zeros(BIG, 0) @ ag.zeros(0, BIG)),
    "eye": ("eye", lambda: ag.eye(BIG)),
}


@pytest.mark.parametrize("case", sorted(HUGE))
def test_huge_shapes_are_refused_when_recorded(case):
    op, build = HUGE[case]
    with pytest.raises(ag.ShapeError, match=op) as info:
        build()
    assert "2**48" in str(info.value)


def test_views_refuse_huge_shapes_behind_every_op():
    """Internal movement ops, which skip the public checks, are stopped by the View itself."""
    x = ag.zeros(2)
    with pytest.raises(ag.ShapeError, match="2\\*\\*48"):
        x._pad(((2 ** 62, 0),))


@pytest.mark.parametrize("build, kind", [
    (lambda: ag.zeros(-1), ValueError), (lambda: ag.zeros(3, -2), ValueError), (lambda: ag.zeros(2.5), TypeError),
    (lambda: ag.ones((2, "3")), TypeError), (lambda: ag.zeros(1, 1).expand(-2, 3), ValueError),
    (lambda: ag.zeros(3).expand(-1, 3), ValueError), (lambda: ag.zeros(4).reshape(2.0, 2), TypeError),
    (lambda: ag.zeros(4).reshape(-2, -2), ValueError), (lambda: ag.zeros(2).repeat(-1), ValueError),
    (lambda: ag.zeros(2).repeat(1.5), TypeError), (lambda: ag.linspace(0, 1, -3), ValueError)])
def test_negative_or_non_int_sizes_are_refused(build, kind):
    with pytest.raises(kind):
        build()


def test_torch_refuses_the_same_overflowing_shapes():
    """The reference: PyTorch refuses these counts too (on the meta device, allocating nothing)."""
    for shape in [(BIG, BIG), (2 ** 31, 2 ** 31, 4)]:
        with pytest.raises(RuntimeError):
            torch.empty(*shape, device="meta")
        with pytest.raises(ag.ShapeError):
            ag.zeros(*shape)


@given(st.lists(st.integers(0, 2 ** 20), min_size=1, max_size=4))
@settings(max_examples=200, deadline=None)
def test_limit_is_exactly_the_element_count(shape):
    """Shapes are refused exactly when their element count passes the limit (nothing runs)."""
    shape = [s * 2 ** 12 for s in shape]
    over = math.prod(shape) > MAX_NUMEL
    result = None
    try:
        result = ag.zeros(*shape)
    except ag.ShapeError:
        assert over
    else:
        assert not over and result.shape == tuple(shape)


def test_numpy_integer_sizes_are_accepted():
    x = ag.zeros(np.int64(2), np.int32(3))
    assert x.reshape(np.int64(3), 2).shape == (3, 2)
    assert x.expand(np.int64(4), 2, 3).shape == (4, 2, 3)


def test_sum_of_a_large_but_allowed_lazy_shape_is_recorded():
    """Just below the limit nothing is refused (the graph is built, not run)."""
    assert ag.ones(2 ** 24, 2 ** 24).sum().shape == ()
