"""Movement ops, indexing, pad, cat/stack, flip, repeat: values and gradients against PyTorch."""
import numpy as np
import pytest
import torch

from audiograd.tensor import pad as ag_pad
from torch_compare import check, check_forward, is_torch, randint, randn

FLOATS = [np.float32, np.float64]


def pad(lib, x, pads, mode="constant", value=0.0):
    if is_torch(lib):
        if mode == "constant":
            return torch.nn.functional.pad(x, pads, mode, value)
        return torch.nn.functional.pad(x, pads, mode)
    return ag_pad(x, pads, mode, value)


# ---- reshape / view --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(12, 5), (-1,), (5, -1, 2), (3, 2, 2, 5), (60, 1), (1, 3, 20)])
@pytest.mark.parametrize("name", ["reshape", "view"])
def test_reshape_view(name, shape, dtype):
    check(lambda lib, x: getattr(x, name)(*shape) * 2, randn(3, 4, 5, dtype=dtype))
    check(lambda lib, x: getattr(x, name)(shape), randn(3, 4, 5, dtype=dtype))


@pytest.mark.parametrize("shape", [(12,), (2, 6), (6, -1), (3, 4)])
def test_reshape_of_non_contiguous(shape):
    # transposed / sliced inputs: reshape has to copy (torch's view would refuse)
    check(lambda lib, x: x.T.reshape(*shape).exp(), randn(4, 3))
    check(lambda lib, x: x[:, 1:4].reshape(*shape), randn(4, 5))


def test_flatten():
    check(lambda lib, x: x.flatten(), randn(2, 3, 4))
    check(lambda lib, x: x.flatten(1), randn(2, 3, 4))
    check(lambda lib, x: x.flatten(0, 1), randn(2, 3, 4))


# ---- permute / transpose / expand ----------------------------------------------------------------
@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0), (-1, 0, 1), (2, 1, 0)])
def test_permute(order):
    check(lambda lib, x: x.permute(*order), randn(3, 4, 5))
    check(lambda lib, x: x.permute(order).sin(), randn(3, 4, 5))


@pytest.mark.parametrize("d0,d1", [(0, 1), (1, 2), (-1, 0), (2, -3), (1, 1)])
def test_transpose(d0, d1):
    check(lambda lib, x: x.transpose(d0, d1) + 1, randn(3, 4, 5))


def test_T_and_mT():
    check(lambda lib, x: x.T, randn(3, 4))
    check(lambda lib, x: x.mT, randn(2, 3, 4))


@pytest.mark.parametrize("src,dst", [((3, 1, 5), (2, 3, 4, 5)), ((3, 1), (3, 6)), ((1,), (4,)),
                                     ((), (2, 3)), ((3, 1, 5), (-1, 4, -1)), ((1, 4), (2, 3, -1, 4))])
def test_expand(src, dst):
    check(lambda lib, x: x.expand(*dst), randn(*src))
    check(lambda lib, x: x.expand(dst) * 3, randn(*src))


def test_expand_as_and_broadcast_to():
    check(lambda lib, x, y: x.expand_as(y) * y, randn(3, 1), randn(3, 4))
    check(lambda lib, x: x.broadcast_to((2, 3, 4)), randn(3, 1))


# ---- squeeze / unsqueeze --------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [None, 0, 2, -1, 1, (0, 3), (0, -1)])
def test_squeeze(dim):
    x = randn(1, 3, 1, 1, 4)
    if dim is None:
        check(lambda lib, x: x.squeeze(), x)
    else:
        check(lambda lib, x: x.squeeze(dim), x)


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_unsqueeze(dim):
    check(lambda lib, x: x.unsqueeze(dim) * 2, randn(3, 4))


# ---- indexing ---------------------------------------------------------------------------------------
INDEXES = {
    "int": lambda x: x[1],
    "neg_int": lambda x: x[-1],
    "int_int": lambda x: x[2, -3],
    "int_all": lambda x: x[1, 2, 3],
    "slice": lambda x: x[1:3],
    "slice_step": lambda x: x[::2, 1::3],
    "slice_neg": lambda x: x[-3:-1, :-2],
    "neg_step": lambda x: x[::-2],
    "neg_step_inner": lambda x: x[:, ::-1, 4:0:-3],
    "neg_step_range": lambda x: x[3:0:-1, -1:-5:-2],
    "none": lambda x: x[None],
    "none_mid": lambda x: x[:, None, 1],
    "ellipsis": lambda x: x[..., 2],
    "ellipsis_mid": lambda x: x[1, ..., ::2],
    "ellipsis_none": lambda x: x[..., None, 1:],
    "mixed": lambda x: x[-2, None, ::-2, ...],
    "out_of_range_slice": lambda x: x[2:100, -100:2],
    "empty": lambda x: x[3:1],
    "int_after_none": lambda x: x[None, 0, None],
}



def index(lib, x, fn):
    """``fn(x)`` with numpy's basic-indexing rules; torch refuses negative steps, so on the torch
    side a negative-step index becomes a gather of the flat positions numpy's rules select."""
    if not is_torch(lib):
        return fn(x)
    try:
        return fn(x)
    except ValueError:  # "step must be greater than zero"
        pos = fn(np.arange(x.numel()).reshape(tuple(x.shape)))
        return x.reshape(-1)[torch.as_tensor(np.ascontiguousarray(pos))]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(INDEXES))
def test_indexing(name, dtype):
    check(lambda lib, x: index(lib, x, INDEXES[name]), randn(4, 5, 6, dtype=dtype))


def test_indexing_chained_and_reused():
    def f(lib, x):
        y = index(lib, x[1:, ::2], lambda v: v[::-1, 1])
        return y * x[0, :3] + x[:, 0].sum()
    check(f, randn(4, 6))


def test_indexing_int_tensor():
    check_forward(lambda lib, x: index(lib, x, lambda v: v[::-2, 1:]), randint(0, 100, 5, 4))


# ---- pad ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("pads,value", [((1, 2), 0.0), ((2, 0, 1, 3), 0.0), ((1, 1), 1.5),
                                        ((0, 2, 1, 0, 1, 1), -2.0), ((-1, 2), 0.0), ((1, -2, -1, 0), 3.0),
                                        ((-2, -1), 0.0), ((0, 0), 7.0)])
def test_pad_constant(pads, value, dtype):
    check(lambda lib, x: pad(lib, x, pads, "constant", value), randn(2, 3, 5, dtype=dtype))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("pads", [(1, 2), (2, 0), (0, 4), (1, 2, 2, 1), (4, 4, 0, 2)])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_modes(mode, pads, dtype):
    if mode == "circular" and max(pads) > 3:
        pads = tuple(min(p, 3) for p in pads)  # circular pads at most the size of the dim
    check(lambda lib, x: pad(lib, x, pads, mode), randn(2, 3, 5, dtype=dtype))


@pytest.mark.parametrize("op", ["exp", "cos", "sigmoid"])
def test_pad_of_computed_value(op):
    check(lambda lib, x: pad(lib, getattr(x, op)(), (1, 2)), randn(2, 4))


def test_overlapping_slices_gradient():
    # the two slices' backward pads (g / x) and g, then adds them in one kernel: 0 / 0 in the padding
    x = np.abs(randn(3, 4)) + 0.5
    check(lambda lib, x: x[1:].log() + x[:-1], x)


def test_pad_then_compute():
    check(lambda lib, x: (pad(lib, x, (2, 2), "reflect") * 2).cumsum(-1), randn(3, 6))


# ---- cat / stack -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_cat(dim, dtype):
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for k, s in enumerate(shapes):
        s[dim] = k + 1
    a, b, c = (randn(*s, dtype=dtype, seed=k) for k, s in enumerate(shapes))
    check(lambda lib, a, b, c: lib.cat([a, b, c], dim), a, b, c)
    check(lambda lib, a, b, c: lib.cat((a, b * 2 - c.sum(dim, keepdim=True), a), dim=dim), a, b, c)


@pytest.mark.parametrize("dim", [0, -1])
def test_cat_of_computed_pieces(dim):
    a, b = randn(2, 3, seed=1), randn(2, 3, seed=2)
    check(lambda lib, a, b: lib.cat([a, b.exp(), a.sigmoid()], dim), a, b)


def test_cat_single_and_promotion():
    check(lambda lib, a: lib.cat([a], 1), randn(2, 3))
    check(lambda lib, a, b: lib.cat([a, b], 0), randn(2, 3), randn(1, 3, dtype=np.float64))
    check_forward(lambda lib, a, b: lib.cat([a, b], 1), randint(0, 9, 2, 2), randint(0, 9, 2, 3))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2])
def test_stack(dim, dtype):
    a, b = randn(3, 4, dtype=dtype, seed=1), randn(3, 4, dtype=dtype, seed=2)
    check(lambda lib, a, b: lib.stack([a, b, a * b], dim), a, b)


# ---- flip / repeat ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [0, -1, (0, 2), (1,), [0, 1, 2]])
def test_flip(dims):
    d = dims if isinstance(dims, (tuple, list)) else (dims,)
    check(lambda lib, x: x.flip(d) * 2, randn(3, 4, 5))


@pytest.mark.parametrize("src,reps", [((3,), (2,)), ((2, 3), (2, 1)), ((2, 3), (1, 3)), ((2, 3), (2, 2, 2)),
                                      ((3, 1), (1, 4)), ((), (3, 2))])
def test_repeat(src, reps):
    check(lambda lib, x: x.repeat(*reps), randn(*src))
    check(lambda lib, x: x.repeat(reps).exp(), randn(*src))


# ---- chains of views --------------------------------------------------------------------------------
def test_view_chain():
    def f(lib, x):
        y = x.permute(2, 0, 1)[1:].flip(1).reshape(-1, 4).transpose(0, 1)
        return y.unsqueeze(0).expand(2, -1, -1).flip(-1)[..., 1::2]
    check(f, randn(3, 4, 5))


def test_contiguous_and_clone():
    check(lambda lib, x: x.T.contiguous() * 2, randn(3, 4))
    check(lambda lib, x: x.clone() + x.T.clone().T, randn(3, 4))
