"""``interpolate`` and ``Upsample`` against PyTorch: values (float32 and float64), gradients, and
argument errors (audiograd raises exactly when PyTorch raises, an error of the same kind)."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings, strategies as st

import audiograd as ag
import audiograd.nn as nn
import audiograd.nn.functional as F
from torch_agreement import compare

RNG = np.random.default_rng(0)


def _pair(shape, dtype=np.float64, grad=False):
    a = RNG.standard_normal(shape).astype(dtype)
    return ag.tensor(a, requires_grad=grad), torch.tensor(a, requires_grad=grad)


def _tol(dtype):
    # float32 sums may be fused differently by the C compiler: a few ulps
    return dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)


FORWARD_CASES = [
    ((2, 3, 7), dict(size=13, mode="nearest")),
    ((2, 3, 7), dict(size=3, mode="nearest")),
    ((1, 2, 10), dict(scale_factor=1.7, mode="nearest")),
    ((1, 2, 10), dict(scale_factor=0.35, mode="nearest")),
    ((1, 2, 10), dict(scale_factor=2.5, mode="nearest", recompute_scale_factor=True)),
    ((2, 2, 9), dict(size=20, mode="nearest-exact")),
    ((2, 2, 9), dict(scale_factor=0.6, mode="nearest-exact")),
    ((1, 1, 5), dict(scale_factor=3, mode="nearest-exact")),
    ((2, 3, 7), dict(size=16, mode="linear")),
    ((2, 3, 7), dict(size=16, mode="linear", align_corners=True)),
    ((2, 3, 17), dict(size=5, mode="linear")),
    ((2, 3, 17), dict(size=1, mode="linear", align_corners=True)),
    ((1, 2, 8), dict(scale_factor=1.3, mode="linear")),
    ((1, 2, 8), dict(scale_factor=0.45, mode="linear", recompute_scale_factor=True)),
    ((1, 2, 8), dict(scale_factor=2.5, mode="linear", align_corners=True)),
    ((1, 2, 50), dict(size=49, mode="linear")),
    ((2, 2, 5, 6), dict(size=(9, 4), mode="nearest")),
    ((1, 2, 5, 6), dict(scale_factor=(1.5, 0.7), mode="nearest-exact")),
    ((1, 2, 5, 6), dict(scale_factor=2, mode="nearest")),
    ((2, 2, 5, 6), dict(size=(8, 11), mode="bilinear")),
    ((1, 3, 7, 4), dict(size=(3, 9), mode="bilinear", align_corners=True)),
    ((1, 2, 6, 6), dict(scale_factor=(0.8, 1.9), mode="bilinear")),
    ((1, 2, 6, 6), dict(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True, align_corners=False)),
    ((0, 2, 6), dict(size=4, mode="linear")),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_torch(dtype):
    outs, refs = [], []
    for shape, kw in FORWARD_CASES:
        x, tx = _pair(shape, dtype)
        outs.append(F.interpolate(x, **kw))
        refs.append(TF.interpolate(tx, **kw))
    ag.realize_all(outs)
    for (shape, kw), o, r in zip(FORWARD_CASES, outs, refs):
        assert o.dtype == ag.float32 if dtype == np.float32 else o.dtype == ag.float64
        np.testing.assert_allclose(o.numpy(), r.numpy(), **_tol(dtype), err_msg=f"{shape} {kw}")


def test_picks_exactly_torch_indices():
    """Nearest modes copy values: with distinct inputs the picked elements must be identical, also at
    the float rounding edges of the source positions (many size pairs)."""
    for dtype, tdtype in ((np.float32, torch.float32), (np.float64, torch.float64)):
        x = ag.tensor(np.arange(60, dtype=dtype).reshape(3, 1, 20))
        for mode in ("nearest", "nearest-exact"):
            for kw in [dict(size=41), dict(size=47), dict(scale_factor=1 / 3), dict(scale_factor=2.9),
                       dict(size=7), dict(scale_factor=0.55)]:
                ref = TF.interpolate(torch.arange(60, dtype=tdtype).reshape(3, 1, 20), mode=mode, **kw)
                np.testing.assert_array_equal(F.interpolate(x, mode=mode, **kw).numpy(), ref.numpy())


GRAD_CASES = [((2, 2, 7), dict(size=12, mode="nearest")), ((2, 2, 11), dict(size=4, mode="nearest-exact")),
              ((2, 2, 7), dict(scale_factor=1.6, mode="linear")),
              ((2, 2, 9), dict(size=4, mode="linear", align_corners=True)),
              ((1, 2, 4, 5), dict(size=(7, 3), mode="bilinear")),
              ((1, 2, 4, 5), dict(scale_factor=(1.5, 2.2), mode="bilinear", align_corners=True)),
              ((1, 2, 4, 5), dict(size=(2, 9), mode="nearest"))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_picks_exactly_torch_indices_2d(dtype, mode):
    """The 2-D nearest kernels take float32 steps for every dtype: distinct inputs, many size
    pairs and scale factors (including the whole-copy and doubling shortcuts), identical picks."""
    rng = np.random.default_rng(7)
    x = np.arange(2 * 17 * 23, dtype=dtype).reshape(1, 2, 17, 23)
    edge = np.arange(2 * 2 * 6, dtype=dtype).reshape(1, 2, 2, 6)
    kws = [dict(size=(int(a), int(b))) for a, b in rng.integers(1, 60, (10, 2))]
    kws += [dict(size=(17, 46)), dict(size=(34, 23))] + [dict(scale_factor=float(f)) for f in rng.uniform(0.3, 3.5, 6)]
    kws += [dict(size=(41, 47)), dict(size=(55, 61)), dict(size=(37, 41))]  # rounding edges of the 2-D formulas
    cases = [(x, kw) for kw in kws] + [(edge, kw) for kw in kws[-3:]]
    outs = [F.interpolate(ag.tensor(a), mode=mode, **kw) for a, kw in cases]
    ag.realize_all(outs)
    for (a, kw), out in zip(cases, outs):
        ref = TF.interpolate(torch.from_numpy(a), mode=mode, **kw).numpy()
        np.testing.assert_array_equal(out.numpy(), ref, err_msg=str(kw))


@pytest.mark.parametrize("shape, kw", GRAD_CASES, ids=[f"{s}-{k['mode']}" for s, k in GRAD_CASES])
def test_gradients_match_torch(shape, kw):
    x, tx = _pair(shape, grad=True)
    out, tout = F.interpolate(x, **kw), TF.interpolate(tx, **kw)
    g = RNG.standard_normal(tuple(tout.shape))
    (out * ag.tensor(g)).sum().backward()
    (tout * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_upsample_module_matches_torch():
    x, tx = _pair((1, 2, 5, 4))
    for kw in [dict(scale_factor=2), dict(size=(3, 7), mode="bilinear", align_corners=True),
               dict(scale_factor=(1.5, 0.5), mode="nearest-exact")]:
        np.testing.assert_allclose(nn.Upsample(**kw)(x).numpy(), torch.nn.Upsample(**kw)(tx).numpy(), rtol=1e-13)
    assert "scale_factor=2.0" in repr(nn.Upsample(scale_factor=2))


# ---- argument errors -------------------------------------------------------------------------------
def _same_kind(ours, theirs):
    if isinstance(theirs, TypeError):
        return isinstance(ours, TypeError)
    if isinstance(theirs, NotImplementedError):
        return isinstance(ours, NotImplementedError)
    return isinstance(ours, (RuntimeError, ValueError)) and not isinstance(ours, NotImplementedError)


def _compare(ours_fn, torch_fn) -> str:
    return compare("interpolate", ours_fn, torch_fn, _same_kind)


INPUTS = [(2, 3, 5), (1, 2, 4, 5), (3, 5), (0, 2, 5), (2, 0, 5), (1, 1, 0)]
MODES = ["nearest", "nearest-exact", "linear", "bilinear", "cubic"]
SIZES = [None, 3, 0, -2, (3,), (3, 4), (2, 0), (2.0,)]
SCALES = [None, 2, 0.5, 0.1, -1.0, 0.0, (1.5,), (2, 0.5)]


def test_argument_grid_matches_torch():
    """Both or neither of size and scale_factor, sizes and scales that are zero, negative or give
    an empty output, tuple lengths, modes against input ranks, align_corners, recompute_scale_factor."""
    tensors = {s: _pair(s, np.float32) for s in INPUTS}
    failures, count = [], 0
    for shape, mode, size, scale, align, recompute in itertools.product(
            INPUTS, MODES, SIZES, SCALES, [None, False, True], [None, True]):
        x, tx = tensors[shape]
        kw = dict(size=size, scale_factor=scale, mode=mode, align_corners=align, recompute_scale_factor=recompute)
        count += 1
        msg = _compare(lambda: F.interpolate(x, **kw), lambda: TF.interpolate(tx, **kw))
        if msg:
            failures.append(f"{shape} {kw}: {msg}")
    assert not failures, f"{len(failures)} of {count} cases disagree:\n" + "\n".join(failures[:30])


@pytest.mark.parametrize("kw", [dict(size=2.5), dict(size=(2, "a")), dict(scale_factor="2"),
                                dict(scale_factor=2, antialias=True), dict(size=4, mode="nearest", antialias=True),
                                dict(size=4, align_corners=False), dict(size=4, mode="area"),
                                dict(size=4, mode="linear", recompute_scale_factor=False)])
def test_malformed_arguments_raise_like_torch(kw):
    x, tx = _pair((1, 2, 6), np.float32)
    if kw.get("antialias") and kw.get("mode") is None:
        kw = dict(kw, mode="linear")
    msg = _compare(lambda: F.interpolate(x, **kw), lambda: TF.interpolate(tx, **kw))
    if kw.get("mode") == "area":  # a PyTorch mode audiograd does not have
        with pytest.raises(NotImplementedError, match="interpolate.*area"):
            F.interpolate(x, **kw)
        return
    assert not msg, msg


def test_errors_name_the_argument():
    x = ag.zeros(1, 2, 6)
    for kw, name in [(dict(size=(3, 4)), "size"), (dict(scale_factor=(2, 2)), "scale_factor"),
                     (dict(size=3, scale_factor=2), "size or scale_factor"), (dict(), "size or scale_factor"),
                     (dict(size=3, align_corners=True), "align_corners"), (dict(size=0), "output sizes"),
                     (dict(size=3, mode="bilinear"), "bilinear"), (dict(size=3, mode="linearr"), "mode"),
                     (dict(size=3, recompute_scale_factor=True), "recompute_scale_factor")]:
        with pytest.raises((ValueError, RuntimeError, NotImplementedError), match=name):
            F.interpolate(x, **kw)


def test_output_shape_limit():
    with pytest.raises(ag.ShapeError, match="interpolate.*2\\*\\*48"):
        F.interpolate(ag.zeros(64, 64, 4, 4), size=(2 ** 19, 2 ** 19))


@given(nd=st.sampled_from([1, 2]), data=st.data())
@settings(max_examples=25, deadline=None)
def test_drawn_arguments_match_torch(nd, data):
    """Random valid calls: same output shape and values as PyTorch (float64)."""
    sizes = data.draw(st.lists(st.integers(1, 9), min_size=nd, max_size=nd))
    mode = data.draw(st.sampled_from(["nearest", "nearest-exact", "linear" if nd == 1 else "bilinear"]))
    kw = dict(mode=mode)
    if mode in ("linear", "bilinear"):
        kw["align_corners"] = data.draw(st.sampled_from([None, False, True]))
    if data.draw(st.booleans()):
        kw["size"] = tuple(data.draw(st.integers(1, 14)) for _ in range(nd))
    else:
        scales = [data.draw(st.floats(1.0 / n, 3.0).filter(lambda f: int(f * n) >= 1)) for n in sizes]
        kw["scale_factor"] = tuple(scales) if data.draw(st.booleans()) or nd == 1 else scales[0]
        if nd == 2 and not isinstance(kw["scale_factor"], tuple):
            kw["scale_factor"] = max(scales)
        kw["recompute_scale_factor"] = data.draw(st.sampled_from([None, False, True]))
    x, tx = _pair((2, 2, *sizes))
    ref = TF.interpolate(tx, **kw)
    out = F.interpolate(x, **kw)
    assert tuple(out.shape) == tuple(ref.shape), kw
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-13, atol=1e-13, err_msg=str(kw))
