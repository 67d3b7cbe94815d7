"""Random small tensor programs must give numpy's answers, however the scheduler fuses them.

A program is a list of ops drawn by hypothesis. Each op reads earlier values (the inputs or
earlier results) by index and appends one value, so the same list is interpreted twice: over
float64 numpy arrays (the reference) and over audiograd tensors of the drawn dtype.

Values stay in safe domains: log(|x|+1), sqrt(|x|+0.5), exp(-|x|), a / (|b|+0.5), and
``where`` takes a fixed boolean mask (no comparison of computed values, whose float32 and
float64 roundings could land on different sides).

Tolerances: scale = 1 + the largest |value| of any reference intermediate (rounding error of
sums and differences grows with what is summed, not with the result).
float64 programs: rtol 1e-9, atol 1e-9 * scale. Programs with a float32 input: rtol 1e-4,
atol 1e-5 * scale (~170 float32 ulps of the largest intermediate).
"""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import audiograd as ag
from audiograd.tensor import pad

SHAPES = [(4,), (3, 4), (2, 3, 4), (3, 1), (1, 4), (2, 1, 4)]
SHAPES_2D_UP = [(3, 4), (2, 3, 4), (4, 3), (2, 1, 4)]
DTYPES = [np.float32, np.float64]
MAX_NUMEL = 96

UNARY = {
    "neg": (lambda a: -a, lambda t: -t),
    "abs": (np.abs, lambda t: t.abs()),
    "relu": (lambda a: np.maximum(a, 0), lambda t: t.relu()),
    "exp": (lambda a: np.exp(-np.abs(a)), lambda t: (-t.abs()).exp()),
    "log": (lambda a: np.log(np.abs(a) + 1), lambda t: (t.abs() + 1).log()),
    "log1p": (lambda a: np.log1p(np.abs(a)), lambda t: t.abs().log1p()),
    "sqrt": (lambda a: np.sqrt(np.abs(a) + 0.5), lambda t: (t.abs() + 0.5).sqrt()),
    "rsqrt": (lambda a: 1 / np.sqrt(np.abs(a) + 0.5), lambda t: (t.abs() + 0.5).rsqrt()),
    "sin": (np.sin, lambda t: t.sin()),
    "cos": (np.cos, lambda t: t.cos()),
    "tanh": (np.tanh, lambda t: t.tanh()),
    "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), lambda t: t.sigmoid()),
    "softplus": (lambda a: np.logaddexp(0, a), lambda t: t.softplus()),
    "affine": (lambda a: 1.5 - a * 0.5, lambda t: 1.5 - t * 0.5),
    "rdiv": (lambda a: 1 / (np.abs(a) + 1), lambda t: 1 / (t.abs() + 1)),
    "clamp": (lambda a: np.clip(a, -0.5, 0.75), lambda t: t.clamp(-0.5, 0.75)),
    "square": (np.square, lambda t: t ** 2),
}
BINARY = {
    "add": (np.add, lambda a, b: a + b),
    "sub": (np.subtract, lambda a, b: a - b),
    "mul": (np.multiply, lambda a, b: a * b),
    "div": (lambda a, b: a / (np.abs(b) + 0.5), lambda a, b: a / (b.abs() + 0.5)),
    "maximum": (np.maximum, lambda a, b: a.maximum(b)),
    "minimum": (np.minimum, lambda a, b: a.minimum(b)),
    "pow": (lambda a, b: (np.abs(a) + 0.5) ** np.tanh(b), lambda a, b: (a.abs() + 0.5) ** b.tanh()),
}
NP_RED = {"sum": np.sum, "max": np.max, "mean": np.mean}


def _ag_red(name, t, axes, keepdim):
    return getattr(t, "amax" if name == "max" else name)(axes, keepdim=keepdim)


def _np_pad(a, pairs, mode, value):
    full = [(0, 0)] * (a.ndim - len(pairs)) + list(pairs)
    kw = {"constant_values": value} if mode == "constant" else {}
    return np.pad(a, full, mode={"replicate": "edge"}.get(mode, mode), **kw)


def _ag_pad(t, pairs, mode, value):
    return pad(t, [v for p in reversed(pairs) for v in p], mode=mode, value=value)


def _mask(seed, shape):
    return np.random.default_rng(seed).random(shape) < 0.5


def _np_softmax(a, d):
    e = np.exp(a - a.max(d, keepdims=True))
    return e / e.sum(d, keepdims=True)


def _swap(x, lib):
    return np.swapaxes(x, -1, -2) if lib == "np" else x.transpose(-1, -2)


# kind -> (numpy implementation, audiograd implementation); both get (srcs, *params)
OPS = {
    "unary": (lambda s, n: UNARY[n][0](s[0]), lambda s, n: UNARY[n][1](s[0])),
    "binary": (lambda s, n: BINARY[n][0](s[0], s[1]), lambda s, n: BINARY[n][1](s[0], s[1])),
    "where": (lambda s, seed, shp: np.where(_mask(seed, shp), s[0], s[1]),
              lambda s, seed, shp: ag.where(ag.tensor(_mask(seed, shp)), s[0], s[1])),
    "reshape": (lambda s, shp: s[0].reshape(shp), lambda s, shp: s[0].reshape(*shp)),
    "permute": (lambda s, p: s[0].transpose(p), lambda s, p: s[0].permute(*p)),
    "expand": (lambda s, shp: np.broadcast_to(s[0], shp), lambda s, shp: s[0].expand(*shp)),
    "slice": (lambda s, idx: s[0][idx], lambda s, idx: s[0][idx]),
    "flip": (lambda s, dims: np.flip(s[0], dims), lambda s, dims: s[0].flip(dims)),
    "pad": (lambda s, *p: _np_pad(s[0], *p), lambda s, *p: _ag_pad(s[0], *p)),
    "cat": (lambda s, d: np.concatenate(s, d), lambda s, d: ag.cat(s, d)),
    "stack": (lambda s, d: np.stack(s, d), lambda s, d: ag.stack(s, d)),
    "reduce": (lambda s, n, ax, k: NP_RED[n](s[0], axis=ax, keepdims=k),
               lambda s, n, ax, k: _ag_red(n, s[0], ax, k)),
    "center": (lambda s, n, ax: s[0] - NP_RED[n](s[0], axis=ax, keepdims=True),
               lambda s, n, ax: s[0] - _ag_red(n, s[0], ax, True)),
    "softmax": (lambda s, d: _np_softmax(s[0], d), lambda s, d: s[0].softmax(d)),
    "matmul": (lambda s, tr: s[0] @ (_swap(s[1], "np") if tr else s[1]),
               lambda s, tr: s[0] @ (_swap(s[1], "ag") if tr else s[1])),
    "cumsum": (lambda s, d: np.cumsum(s[0], d), lambda s, d: s[0].cumsum(d)),
}
ALL_KINDS = tuple(OPS)
LOCAL_KINDS = ("unary", "binary", "where", "reduce", "center", "softmax", "cumsum", "slice", "pad")


def interpret(program, inputs, lib):
    """Run ``program`` over numpy float64 arrays (lib "np") or audiograd tensors (lib "ag")."""
    if lib == "np":
        vals = [np.asarray(x, np.float64) for x in inputs]
    else:
        vals = [ag.tensor(x) for x in inputs]
    for kind, srcs, params in program:
        args = [vals[i] for i in srcs]
        out = OPS[kind][0 if lib == "np" else 1](args, *params)
        vals.append(np.asarray(out) if lib == "np" else out)
    return vals


# ---- drawing one op's parameters from the shapes at hand ---------------------------------------
def _factorizations(n, parts):
    if parts == 1:
        return [(n,)]
    return [(f,) + rest for f in range(1, n + 1) if n % f == 0 for rest in _factorizations(n // f, parts - 1)]


def _broadcastable(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def _matmul_ok(a, b):
    if not a or not b:
        return False
    try:
        np.matmul(np.zeros(a), np.zeros(b))
        return True
    except ValueError:
        return False


def _pick(draw, options):
    return draw(st.sampled_from(options))


def draw_params(draw, kind, i, pool, dtypes):
    """(srcs, params) for op ``kind`` reading pool[i] (and maybe a partner), or None if it cannot."""
    a = pool[i]
    shp, nd = a.shape, a.ndim
    others = list(range(len(pool)))[::-1]  # shrinks toward the most recent value
    if kind == "unary":
        return (i,), (_pick(draw, sorted(UNARY)),)
    if kind in ("binary", "where"):
        j = _pick(draw, [k for k in others if _broadcastable(shp, pool[k].shape)])
        if kind == "binary":
            return (i, j), (_pick(draw, sorted(BINARY)),)
        return (i, j), (draw(st.integers(0, 2 ** 16)), np.broadcast_shapes(shp, pool[j].shape))
    if kind == "matmul":
        cands = [k for k in others if dtypes[k] == dtypes[i] and _matmul_ok(shp, pool[k].shape)]
        if cands:
            return (i, _pick(draw, cands)), (False,)
        return ((i, i), (True,)) if nd >= 2 else None
    if nd == 0:
        return None
    axis = draw(st.integers(0, nd - 1))
    if kind == "reshape":
        cands = [s for r in (1, 2, 3) for s in _factorizations(a.size, r) if s != shp]
        return ((i,), (_pick(draw, cands),)) if cands else None
    if kind == "permute":
        return ((i,), (tuple(draw(st.permutations(range(nd)))),)) if nd >= 2 else None
    if kind == "expand":
        lead = _pick(draw, [(), (2,)])
        new = lead + tuple(draw(st.sampled_from([1, 2, 3])) if s == 1 else s for s in shp)
        return ((i,), (new,)) if new != shp else None
    if kind == "slice":
        idx = []
        for d, n in enumerate(shp):
            if nd >= 2 and d == axis and draw(st.booleans()):
                idx.append(draw(st.integers(-n, n - 1)))
                continue
            step = _pick(draw, [1, 2, -1, -2, 3])
            start = draw(st.one_of(st.none(), st.integers(-n, n - 1)))
            stop = draw(st.one_of(st.none(), st.integers(-n, n)))
            if len(range(*slice(start, stop, step).indices(n))) == 0:
                start = stop = None
            idx.append(slice(start, stop, step))
        return (i,), (tuple(idx),)
    if kind == "flip":
        dims = draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd, unique_by=lambda d: d % nd))
        return (i,), (tuple(dims),)
    if kind == "pad":
        mode = _pick(draw, ["constant", "reflect", "replicate"])
        k = draw(st.integers(1, min(2, nd)))
        hi = lambda n: n - 1 if mode == "reflect" else 2
        pairs = tuple((draw(st.integers(0, hi(n))), draw(st.integers(0, hi(n)))) for n in shp[nd - k:])
        value = _pick(draw, [0.0, 1.5]) if mode == "constant" else 0.0
        return (i,), (pairs, mode, value)
    if kind == "cat":
        cands = [k for k in others if pool[k].ndim == nd and
                 all(x == y for d, (x, y) in enumerate(zip(pool[k].shape, shp)) if d != axis)]
        return (i, _pick(draw, cands)), (axis,)
    if kind == "stack":
        return (i, _pick(draw, [k for k in others if pool[k].shape == shp])), (draw(st.integers(-nd - 1, nd)),)
    if kind in ("reduce", "center"):
        axes = tuple(sorted(draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))))
        name = _pick(draw, ["sum", "max", "mean"])
        return ((i,), (name, axes, draw(st.booleans()))) if kind == "reduce" else ((i,), (name, axes))
    if kind in ("softmax", "cumsum"):
        return (i,), (draw(st.integers(-nd, nd - 1)),)
    raise AssertionError(kind)


@st.composite
def programs(draw, plan, shapes=SHAPES):
    """Inputs and a program following ``plan``: (kinds, pin) per op, where pin None lets the op read
    any value, -1 the latest one, and k >= 0 the result of the k-th op."""
    inputs = []
    for _ in range(draw(st.integers(1, 3))):
        shape = draw(st.sampled_from(shapes))
        data = draw(arrays(np.float32, shape, elements=st.floats(-2, 2, width=32)))
        inputs.append(data.astype(draw(st.sampled_from(DTYPES))))
    pool = [x.astype(np.float64) for x in inputs]
    dtypes = [x.dtype for x in inputs]
    program = []
    for kinds, pin in plan:
        recent = list(range(len(pool)))[::-1]
        i = draw(st.sampled_from(recent)) if pin is None else len(pool) - 1 if pin < 0 else len(inputs) + pin
        kind = draw(st.sampled_from(kinds))
        got = draw_params(draw, kind, i, pool, dtypes)
        if got is None:
            kind, got = "unary", draw_params(draw, "unary", i, pool, dtypes)
        srcs, params = got
        value = np.asarray(OPS[kind][0]([pool[k] for k in srcs], *params))
        if value.size > MAX_NUMEL or value.ndim > 4 or not np.all(np.isfinite(value)):
            kind, srcs, params = "unary", (i,), ("tanh",)
            value = np.tanh(pool[i])
        program.append((kind, srcs, params))
        pool.append(value)
        dtypes.append(np.result_type(*[dtypes[k] for k in srcs]))
    return inputs, program, dtypes


def check(inputs, program, dtypes, outputs):
    """Realize ``outputs`` (value indices) together and compare each with the numpy reference."""
    ref = interpret(program, inputs, "np")
    got = interpret(program, inputs, "ag")
    ag.realize_all([got[k] for k in outputs])
    scale = 1 + max(float(np.max(np.abs(v), initial=0)) for v in ref)
    f32 = any(x.dtype == np.float32 for x in inputs)
    rtol, atol = (1e-4, 1e-5 * scale) if f32 else (1e-9, 1e-9 * scale)
    for k in outputs:
        out = got[k].numpy()
        assert out.dtype == dtypes[k], (k, out.dtype, dtypes[k])
        assert out.shape == ref[k].shape, (k, out.shape, ref[k].shape)
        np.testing.assert_allclose(out, ref[k], rtol=rtol, atol=atol, err_msg=f"value {k} of {program}")


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=300, **SETTINGS)
@given(st.integers(1, 6).flatmap(lambda n: programs([(ALL_KINDS, None)] * n)), st.data())
def test_random_program(prog, data):
    inputs, program, dtypes = prog
    n = len(inputs) + len(program)
    extra = data.draw(st.lists(st.integers(0, n - 2), max_size=2, unique=True)) if n > 1 else []
    check(inputs, program, dtypes, [n - 1] + extra)


@settings(max_examples=80, **SETTINGS)
@given(programs([(("unary", "binary", "pad", "slice", "reduce"), None)] + [(ALL_KINDS, 0)] * 3))
def test_intermediate_with_several_consumers(prog):
    """One intermediate feeds three ops; it and all three are realized together."""
    inputs, program, dtypes = prog
    n = len(inputs)
    check(inputs, program, dtypes, [n, n + 1, n + 2, n + 3])


@settings(max_examples=80, **SETTINGS)
@given(programs([(("unary", "binary"), None), (("center",), -1), (LOCAL_KINDS, None), (("binary",), -1)]))
def test_reduction_broadcast_back(prog):
    """x - x.mean/max/sum(axes, keepdim=True) over a fused element-wise x, then more work."""
    inputs, program, dtypes = prog
    n = len(inputs) + len(program)
    check(inputs, program, dtypes, [n - 1, n - 3])


@settings(max_examples=80, **SETTINGS)
@given(programs([(("permute",), None), (("reshape",), -1), (("slice", "flip"), -1), (("slice", "pad"), -1),
                 (("unary", "binary", "reduce", "cumsum", "matmul", "center"), -1)], shapes=SHAPES_2D_UP))
def test_chained_views(prog):
    """transpose, reshape (often not expressible as one view), slice/flip/pad, then compute."""
    inputs, program, dtypes = prog
    n = len(inputs) + len(program)
    check(inputs, program, dtypes, [n - 1, n - 2])


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4)])
def test_outputs_sharing_a_base_realized_together(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    t = ag.tensor(x)
    y = (t.sin() * 2 + 1).softmax(-1)
    outs = [y, y.transpose(-1, -2), y[..., ::-2], y.sum(-1), y.cumsum(0), y - y.mean(-1, keepdim=True)]
    ag.realize_all(outs)
    yr = _np_softmax(np.sin(x.astype(np.float64)) * 2 + 1, -1)
    refs = [yr, np.swapaxes(yr, -1, -2), yr[..., ::-2], yr.sum(-1), np.cumsum(yr, 0), yr - yr.mean(-1, keepdims=True)]
    for o, r in zip(outs, refs):
        np.testing.assert_allclose(o.numpy(), r, rtol=1e-5, atol=1e-6)


# ---- regressions: minimal programs that once went wrong ------------------------------------------
def _vec():
    return ag.tensor(np.array([-1.0, 2.0, -3.0, 0.5], np.float32))


REGRESSIONS = [
    pytest.param(lambda: _vec().relu(), [0, 2, 0, 0.5], id="relu"),
    pytest.param(lambda: _vec().sum().maximum(0.0), 0.0, id="maximum_after_sum"),
    pytest.param(lambda: _vec() @ _vec(), 14.25, id="matmul_1d_1d"),
    pytest.param(lambda: _vec()[:2], [-1, 2], id="numpy_of_prefix_view"),
    pytest.param(lambda: pad(_vec().cos(), (1, 1)), [0, *np.cos([-1.0, 2.0, -3.0, 0.5]), 0], id="pad_of_cos"),
    pytest.param(lambda: ag.cat([_vec().exp(), _vec()]), [*np.exp([-1.0, 2.0, -3.0, 0.5]), -1, 2, -3, 0.5],
                 id="cat_of_exp"),
]


@pytest.mark.parametrize("make,expected", REGRESSIONS)
def test_regression(make, expected):
    np.testing.assert_allclose(make().numpy(), expected, rtol=1e-6)
