"""Argument checks of convolutions, pooling, pad and reductions follow PyTorch's rules.

Over grids (and hypothesis-drawn sets) of arguments, including zero and negative strides,
kernels, dilations, paddings, output_padding and groups, and empty inputs: audiograd raises
exactly when PyTorch raises (an error of the same kind, naming the op), and when both succeed the
output shapes agree. audiograd is lazy, so only building the graph is checked here, except for a
few small cases whose values are compared too.
"""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings, strategies as st

import audiograd as ag
import audiograd.nn as nn
import audiograd.nn.functional as F
from torch_agreement import compare, run


def _same_kind(ours: Exception, theirs: Exception) -> bool:
    """Whether our error is of the kind PyTorch raised (PyTorch raises RuntimeError for bad values)."""
    if isinstance(theirs, TypeError):
        return isinstance(ours, TypeError)
    if isinstance(theirs, IndexError):  # PyTorch reports some bad dims and ranks as IndexError
        return isinstance(ours, (IndexError, RuntimeError))
    if isinstance(theirs, NotImplementedError):
        return isinstance(ours, (NotImplementedError, ValueError))
    return isinstance(ours, (RuntimeError, ValueError))


def _compare(op: str, ours_fn, torch_fn) -> str:
    """'' when audiograd and PyTorch agree on raising and on the output shape, else a description."""
    return compare(op, ours_fn, torch_fn, _same_kind)


def _check_grid(op, cases, ours_call, torch_call, stricter=None):
    """Compare every case; ``stricter(case)`` names an argument audiograd refuses where PyTorch
    lets it pass unchecked (then ours must raise naming that argument)."""
    failures = []
    for case in cases:
        arg = stricter(case) if stricter else None
        if arg and run(lambda: torch_call(*case))[1] is None:
            _, oerr = run(lambda: ours_call(*case))
            msg = "" if oerr is not None and arg in str(oerr) else f"expected an error naming {arg}, got {oerr!r}"
        else:
            msg = _compare(op, lambda: ours_call(*case), lambda: torch_call(*case))
        if msg:
            shown = [tuple(v.shape) for v in case if isinstance(v, torch.Tensor)] + \
                [v for v in case if not isinstance(v, (torch.Tensor, ag.Tensor))]
            failures.append(f"{shown}: {msg}")
    if failures:
        pytest.fail(f"{len(failures)} of {len(cases)} cases disagree:\n" + "\n".join(failures[:40]))


def _pair(rng, shape):
    a = rng.standard_normal(shape).astype(np.float32)
    return ag.tensor(a), torch.from_numpy(a)


RNG = np.random.default_rng(0)


# ---- convolutions ---------------------------------------------------------------------------
CONV_INPUTS = [(2, 4, 7), (0, 4, 7), (4, 7), (2, 4, 1), (2, 4, 0)]


@pytest.mark.parametrize("nd", [1, 2])
def test_conv_argument_grid_matches_torch(nd):
    """Strides, paddings (ints and strings), dilations, groups and kernel sizes, valid and not."""
    grid = itertools.product(CONV_INPUTS, [1, 3, 0], [1, 2, 0, -1], [0, 1, -1, "same", "valid", "full"],
                             [1, 2, 0], [1, 2, 0, 3])
    cases = []
    for shape, k, stride, padding, dilation, groups in grid:
        shape = shape[:-1] + (shape[-1],) * nd
        cin_g = 4 // groups if groups > 0 and 4 % groups == 0 else 1
        x, tx = _pair(RNG, shape)
        w, tw = _pair(RNG, (6, cin_g) + (k,) * nd)
        cases.append((x, tx, w, tw, stride, padding, dilation, groups))
    fn, tfn = (F.conv1d, TF.conv1d) if nd == 1 else (F.conv2d, TF.conv2d)
    _check_grid(f"conv{nd}d", cases,
                lambda x, tx, w, tw, s, p, d, g: fn(x, w, None, s, p, d, g),
                lambda x, tx, w, tw, s, p, d, g: tfn(tx, tw, None, s, p, d, g), _zero_dilation(6))


def _zero_dilation(index):
    """PyTorch skips its dilation check for empty batches."""
    return lambda case: "dilation" if case[index] <= 0 and case[4] > 0 and case[-1 if index == 6 else 7] > 0 \
        else None


@pytest.mark.parametrize("nd", [1, 2])
def test_conv_transpose_argument_grid_matches_torch(nd):
    """Output padding must stay below stride or dilation; paddings may not empty the output."""
    grid = itertools.product([(2, 4, 5), (0, 4, 5), (4, 5), (2, 4, 0)], [1, 3], [1, 2, 0, -1],
                             [0, 1, -1, 4], [0, 1, 2, -1], [1, 2, 0], [1, 2, 0, 3])
    cases = []
    for shape, k, stride, padding, out_pad, dilation, groups in grid:
        shape = shape[:-1] + (shape[-1],) * nd
        x, tx = _pair(RNG, shape)
        w, tw = _pair(RNG, (4, 3) + (k,) * nd)
        cases.append((x, tx, w, tw, stride, padding, out_pad, groups, dilation))
    fn, tfn = (F.conv_transpose1d, TF.conv_transpose1d) if nd == 1 else (F.conv_transpose2d, TF.conv_transpose2d)
    _check_grid(f"conv_transpose{nd}d", cases,
                lambda x, tx, w, tw, s, p, o, g, d: fn(x, w, None, s, p, o, g, d),
                lambda x, tx, w, tw, s, p, o, g, d: tfn(tx, tw, None, s, p, o, g, d), _transposed_stricter)


def _transposed_stricter(case):
    """PyTorch checks neither dilation nor output_padding of empty batches."""
    x, s, o, g, d = case[0], case[4], case[6], case[7], case[8]
    if s <= 0 or g <= 0:
        return None
    if d <= 0:
        return "dilation"
    return "output_padding" if x.shape[0] == 0 and x.ndim == 3 + (case[2].ndim - 3) and o >= max(s, d) else None


@pytest.mark.parametrize("fn, tfn, op", [(F.conv1d, TF.conv1d, "conv1d"),
                                         (F.conv_transpose1d, TF.conv_transpose1d, "conv_transpose1d")])
@pytest.mark.parametrize("bad", [dict(stride=1.5), dict(stride=(1, 2)), dict(padding=(1, 1)),
                                 dict(dilation=[1, 1]), dict(groups=1.0), dict(weight=(4, 3)),
                                 dict(weight=(0, 3, 3)), dict(bias=(5,)), dict(bias=(3, 1))])
def test_conv_malformed_arguments_raise_like_torch(fn, tfn, op, bad):
    """Wrong types, tuple lengths, weight ranks and bias shapes."""
    x, tx = _pair(RNG, (1, 3, 6))
    w, tw = _pair(RNG, bad.get("weight", (3, 3, 3)))
    kw = {k: v for k, v in bad.items() if k not in ("weight", "bias")}
    b, tb = _pair(RNG, bad["bias"]) if "bias" in bad else (None, None)
    msg = _compare(op, lambda: fn(x, w, b, **kw), lambda: tfn(tx, tw, tb, **kw))
    assert not msg, msg
    with pytest.raises((TypeError, RuntimeError, ValueError), match=op):
        fn(x, w, b, **kw)


@given(length=st.integers(1, 9), k=st.integers(-1, 5), stride=st.integers(-2, 4), padding=st.integers(-2, 6),
       dilation=st.integers(-1, 3), out_pad=st.integers(-1, 3), groups=st.sampled_from([-1, 0, 1, 2, 4]),
       transposed=st.booleans())
@settings(max_examples=150, deadline=None)
def test_conv1d_drawn_arguments_match_torch(length, k, stride, padding, dilation, out_pad, groups, transposed):
    x, tx = _pair(RNG, (1, 4, length))
    wshape = (4, 2, max(k, 0)) if transposed else (4, 2 if groups == 2 else 4 // max(groups, 1), max(k, 0))
    w, tw = _pair(RNG, wshape)
    if transposed and dilation <= 0 and stride > 0 and groups > 0:  # PyTorch leaves it unchecked
        with pytest.raises(ValueError, match="dilation"):
            F.conv_transpose1d(x, w, None, stride, padding, out_pad, groups, dilation)
        return
    if transposed:
        msg = _compare("conv_transpose1d", lambda: F.conv_transpose1d(x, w, None, stride, padding, out_pad, groups, dilation),
                       lambda: TF.conv_transpose1d(tx, tw, None, stride, padding, out_pad, groups, dilation))
    else:
        msg = _compare("conv1d", lambda: F.conv1d(x, w, None, stride, padding, dilation, groups),
                       lambda: TF.conv1d(tx, tw, None, stride, padding, dilation, groups))
    assert not msg, msg


@pytest.mark.parametrize("make", [
    lambda: nn.Conv1d(4, 6, 0), lambda: nn.Conv1d(4, 6, 3, stride=0), lambda: nn.Conv1d(4, 6, 3, padding=-1),
    lambda: nn.Conv1d(4, 6, 3, dilation=0), lambda: nn.Conv1d(4, 6, 3, groups=0), lambda: nn.Conv1d(4, 6, 3, groups=4),
    lambda: nn.Conv1d(4, 6, 3, padding="full"), lambda: nn.Conv1d(4, 6, 3, stride=2, padding="same"),
    lambda: nn.Conv2d(4, 6, (3, 3, 3)), lambda: nn.Conv2d(4, 6, 2.5),
    lambda: nn.ConvTranspose1d(4, 6, 3, output_padding=-1), lambda: nn.ConvTranspose2d(4, 6, 3, stride=(1, 0))])
def test_conv_modules_refuse_bad_arguments_when_built(make):
    """Modules check their arguments in the constructor, with errors naming the module."""
    with pytest.raises((TypeError, ValueError), match="Conv"):
        make()


def test_conv_argument_checks_keep_values_right():
    """A few valid, unusual combinations realized and compared with PyTorch's values."""
    cases = [(F.conv1d, TF.conv1d, (2, 4, 7), (6, 2, 3), dict(stride=2, padding=3, dilation=2, groups=2)),
             (F.conv1d, TF.conv1d, (0, 4, 7), (6, 4, 3), dict(padding="same")),
             (F.conv_transpose1d, TF.conv_transpose1d, (2, 4, 5), (4, 3, 3),
              dict(stride=1, padding=1, output_padding=1, dilation=2))]
    for fn, tfn, xs, ws, kw in cases:
        x, tx = _pair(RNG, xs)
        w, tw = _pair(RNG, ws)
        np.testing.assert_allclose(fn(x, w, **kw).numpy(), tfn(tx, tw, **kw).numpy(), rtol=1e-5, atol=1e-5)


# ---- pooling --------------------------------------------------------------------------------
POOL_INPUTS = [(2, 3, 7), (3, 7), (0, 3, 7), (2, 0, 7), (2, 3, 1), (7,)]


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_argument_grid_matches_torch(nd, kind):
    """Kernel, stride and dilation positive, padding non-negative and at most half the kernel."""
    dilations = [1, 2, 0] if kind == "max" else [None]
    grid = itertools.product(POOL_INPUTS, [1, 2, 3, 0, -1], [None, 1, 2, 0, -1], [0, 1, 2, -1], dilations,
                             [False, True])
    cases = []
    for shape, k, s, p, d, ceil in grid:
        shape = shape[:-1] + (shape[-1],) * nd
        x, tx = _pair(RNG, shape)
        cases.append((x, tx, k, s, p, d, ceil))
    op = f"{kind}_pool{nd}d"
    fn, tfn = getattr(F, op), getattr(TF, op)
    if kind == "max":
        _check_grid(op, cases, lambda x, tx, k, s, p, d, c: fn(x, k, s, p, d, c),
                    lambda x, tx, k, s, p, d, c: tfn(tx, k, s, p, d, c))
    else:
        _check_grid(op, cases, lambda x, tx, k, s, p, d, c: fn(x, k, s, p, c),
                    lambda x, tx, k, s, p, d, c: tfn(tx, k, s, p, c))


@pytest.mark.parametrize("op", ["max_pool1d", "avg_pool1d"])
@pytest.mark.parametrize("kw", [dict(kernel_size=(2, 2)), dict(kernel_size=2.0), dict(kernel_size=2, stride=(1, 1)),
                                dict(kernel_size=2, padding=[1, 1])])
def test_pool_malformed_arguments_raise_like_torch(op, kw):
    x, tx = _pair(RNG, (1, 3, 6))
    msg = _compare(op, lambda: getattr(F, op)(x, **kw), lambda: getattr(TF, op)(tx, **kw))
    assert not msg, msg


# ---- pad ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_amount_grid_matches_torch(mode):
    """Negative amounts crop (down to an empty dim, never below); edge modes keep PyTorch's limits."""
    amounts = [-6, -5, -2, 0, 1, 4, 5, 6]
    # PyTorch pads edges only of inputs with one more (or two more, batched) dims than padded
    shapes = [((2, 3, 5), 1), ((3, 5), 1), ((2, 3, 4, 5), 2), ((2, 4, 5), 2), ((0, 3, 5), 1), ((2, 0, 5), 1)]
    cases = []
    for (shape, pairs), amount in itertools.product(shapes, itertools.product(amounts, repeat=2)):
        n = shape[-1]
        if mode != "constant" and (n + sum(amount) == 0 or (mode == "circular" and min(amount) < 0)):
            # PyTorch is inconsistent there: an empty edge-padded result is refused for some ranks
            # only, and circular crops read uninitialized memory in PyTorch
            continue
        x, tx = _pair(RNG, shape)
        pad = list(amount) + ([1, -1] if pairs == 2 else [])
        cases.append((x, tx, pad))
    _check_grid("pad", cases, lambda x, tx, p: F.pad(x, p, mode=mode), lambda x, tx, p: TF.pad(tx, p, mode=mode))


@pytest.mark.parametrize("pad", [(1,), (1, 1) * 4, (1.5, 1), (2, -8)])
def test_pad_malformed_amounts_raise_like_torch(pad):
    x, tx = _pair(RNG, (2, 3, 5))
    msg = _compare("pad", lambda: F.pad(x, pad), lambda: TF.pad(tx, pad))
    assert not msg, msg


@pytest.mark.parametrize("mode, pad", [("constant", (-1, 2, 1, -2)), ("reflect", (-2, 4)), ("reflect", (3, -4)),
                                       ("replicate", (2, -3)), ("circular", (3, 2))])
def test_pad_mixed_crops_match_torch_values(mode, pad):
    x, tx = _pair(RNG, (2, 3, 5))
    np.testing.assert_array_equal(F.pad(x, pad, mode=mode).numpy(), TF.pad(tx, pad, mode=mode).numpy())


# ---- reductions -----------------------------------------------------------------------------
DIMS = [0, 2, -1, -3, 3, -4, (0, 0), (0, -3), (1, 2), (2, -1, 0), (), None, 1.0]


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "amax", "amin", "logsumexp"])
def test_reduction_dims_match_torch(name):
    """Dims in range, no dim twice (also through negative aliases), ints only."""
    cases = []
    for shape, dim, keepdim in itertools.product([(2, 3, 4), (0, 3, 4), ()], DIMS, [False, True]):
        if name == "logsumexp" and dim in (None, ()):  # PyTorch needs a dim there
            continue
        x, tx = _pair(RNG, shape)
        cases.append((x, tx, dim, keepdim))

    def ours(x, tx, dim, keepdim):
        return getattr(x, name)(dim, keepdim=keepdim) if dim is not None else getattr(x, name)()

    def theirs(x, tx, dim, keepdim):
        return getattr(tx, name)(dim, keepdim=keepdim) if dim is not None else getattr(tx, name)()

    _check_grid(name, cases, ours, theirs)
