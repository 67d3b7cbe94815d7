"""The interpreter device runs the random programs of ``tests/schedule/test_random_graphs.py``
and must agree with the CPU device and with numpy.

The float programs are those of that module (drawn by its strategies). Integer programs,
drawn here, mix integer element-wise ops, reductions, cumulative sums and the same movement
ops; their results must match bit for bit.

Tolerances, with ``scale`` = 1 + the largest |value| of any numpy reference intermediate (as
in the numpy check, rounding errors grow with what is summed, not with the result):
- interpreter vs CPU: integers and bools exact; float64 rtol 1e-11, atol 1e-11 * scale; with a
  float32 input rtol 2e-5, atol 2e-6 * scale. The CPU's C kernels use fused multiply-adds and
  vector math libraries, the interpreter numpy's functions: a few ulps apart per op.
- interpreter vs numpy (float64): the tolerances of the module's own ``check``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import audiograd as ag


def _load_random_graphs():
    path = Path(__file__).resolve().parents[2] / "schedule" / "test_random_graphs.py"
    spec = importlib.util.spec_from_file_location("random_graph_programs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rg = _load_random_graphs()
DEVICES = ("cpu", "interp")



def run_on(device, run, outputs):
    """The values ``outputs`` (indices) of ``run()`` computed on ``device``, realized together."""
    with ag.using_device(device):
        vals = run()
        ag.realize_all([vals[k] for k in outputs])
        for k in outputs:
            assert vals[k].device == device, (k, vals[k].device)
        return {k: vals[k].numpy() for k in outputs}


def compare(inputs, program, outputs):
    """Run a float program on both devices and compare with each other and with numpy."""
    ref = rg.interpret(program, inputs, "np")
    got = {d: run_on(d, lambda: rg.interpret(program, inputs, "ag"), outputs) for d in DEVICES}
    scale = 1 + max(float(np.max(np.abs(v), initial=0)) for v in ref)
    f32 = any(x.dtype == np.float32 for x in inputs)
    rtol, atol = (2e-5, 2e-6 * scale) if f32 else (1e-11, 1e-11 * scale)
    ref_rtol, ref_atol = (1e-4, 1e-5 * scale) if f32 else (1e-9, 1e-9 * scale)
    for k in outputs:
        mine, cpu = got["interp"][k], got["cpu"][k]
        assert mine.dtype == cpu.dtype and mine.shape == cpu.shape, (k, mine.dtype, cpu.dtype, mine.shape, cpu.shape)
        if mine.dtype.kind in "biu":
            np.testing.assert_array_equal(mine, cpu, err_msg=f"value {k} of {program}")
        else:
            np.testing.assert_allclose(mine, cpu, rtol=rtol, atol=atol, err_msg=f"value {k} of {program}")
        np.testing.assert_allclose(mine, ref[k], rtol=ref_rtol, atol=ref_atol, err_msg=f"value {k} of {program}")


@settings(max_examples=80, **rg.SETTINGS)
@given(st.integers(1, 6).flatmap(lambda n: rg.programs([(rg.ALL_KINDS, None)] * n)), st.data())
def test_random_program(prog, data):
    inputs, program, _ = prog
    n = len(inputs) + len(program)
    extra = data.draw(st.lists(st.integers(0, n - 2), max_size=2, unique=True)) if n > 1 else []
    compare(inputs, program, [n - 1] + extra)


@settings(max_examples=25, **rg.SETTINGS)
@given(rg.programs([(("unary", "binary", "pad", "slice", "reduce"), None)] + [(rg.ALL_KINDS, 0)] * 3))
def test_intermediate_with_several_consumers(prog):
    inputs, program, _ = prog
    n = len(inputs)
    compare(inputs, program, [n, n + 1, n + 2, n + 3])


@settings(max_examples=25, **rg.SETTINGS)
@given(rg.programs([(("unary", "binary"), None), (("center",), -1), (rg.LOCAL_KINDS, None), (("binary",), -1)]))
def test_reduction_broadcast_back(prog):
    inputs, program, _ = prog
    n = len(inputs) + len(program)
    compare(inputs, program, [n - 1, n - 3])


@settings(max_examples=25, **rg.SETTINGS)
@given(rg.programs([(("permute",), None), (("reshape",), -1), (("slice", "flip"), -1), (("slice", "pad"), -1),
                    (("unary", "binary", "reduce", "cumsum", "matmul", "center"), -1)], shapes=rg.SHAPES_2D_UP))
def test_chained_views(prog):
    inputs, program, _ = prog
    n = len(inputs) + len(program)
    compare(inputs, program, [n - 1, n - 2])


# ---- integer programs: exact agreement ----------------------------------------------------------
INT_UNARY = {
    "neg": (lambda a: -a, lambda t: -t),
    "abs": (np.abs, lambda t: t.abs()),
    "square": (lambda a: a * a, lambda t: t * t),
    "clamp": (lambda a: np.clip(a, -3, 5), lambda t: t.clamp(-3, 5)),
    "affine": (lambda a: 7 - a * 3, lambda t: 7 - t * 3),
    "sign": (np.sign, lambda t: t.sign()),
}
INT_BINARY = {
    "add": (np.add, lambda a, b: a + b),
    "sub": (np.subtract, lambda a, b: a - b),
    "mul": (np.multiply, lambda a, b: a * b),
    "maximum": (np.maximum, lambda a, b: a.maximum(b)),
    "minimum": (np.minimum, lambda a, b: a.minimum(b)),
    "select": (lambda a, b: np.where(a > b, a, b), lambda a, b: ag.where(a > b, a, b)),
    "eq_plus": (lambda a, b: (a == b) + a, lambda a, b: (a == b) + a),
}
INT_REDUCE = {"sum": (np.sum, "sum"), "amax": (np.max, "amax")}
INT_OPS = {
    "unary": (lambda s, n: INT_UNARY[n][0](s[0]), lambda s, n: INT_UNARY[n][1](s[0])),
    "binary": (lambda s, n: INT_BINARY[n][0](s[0], s[1]), lambda s, n: INT_BINARY[n][1](s[0], s[1])),
    "reduce": (lambda s, n, ax, k: INT_REDUCE[n][0](s[0], axis=ax, keepdims=k),
               lambda s, n, ax, k: getattr(s[0], INT_REDUCE[n][1])(ax, keepdim=k)),
    **{kind: rg.OPS[kind] for kind in ("where", "reshape", "permute", "expand", "slice", "flip", "pad", "cat",
                                       "stack", "cumsum")},
}


def _int_params(draw, kind, i, pool):
    a = pool[i]
    if kind == "unary":
        return (i,), (draw(st.sampled_from(sorted(INT_UNARY))),)
    if kind == "binary":
        j = draw(st.sampled_from([k for k in range(len(pool)) if rg._broadcastable(a.shape, pool[k].shape)]))
        return (i, j), (draw(st.sampled_from(sorted(INT_BINARY))),)
    if kind == "reduce":
        if a.ndim == 0:
            return None
        axes = tuple(sorted(draw(st.lists(st.integers(0, a.ndim - 1), min_size=1, max_size=a.ndim, unique=True))))
        return (i,), (draw(st.sampled_from(sorted(INT_REDUCE))), axes, draw(st.booleans()))
    got = rg.draw_params(draw, kind, i, pool, [p.dtype for p in pool])
    if got is not None and kind == "pad":  # an integer fill value
        srcs, (pairs, mode, value) = got
        got = srcs, (pairs, mode, 3 if value else 0)
    return got


@st.composite
def int_programs(draw, n_ops):
    inputs = [draw(arrays(draw(st.sampled_from([np.int32, np.int64])), draw(st.sampled_from(rg.SHAPES)),
                          elements=st.integers(-20, 20))) for _ in range(draw(st.integers(1, 3)))]
    pool, program = list(inputs), []
    for _ in range(n_ops):
        i = draw(st.sampled_from(list(range(len(pool)))[::-1]))
        kind = draw(st.sampled_from(sorted(INT_OPS)))
        got = _int_params(draw, kind, i, pool)
        if got is None:
            kind, got = "unary", ((i,), ("neg",))
        value = np.asarray(INT_OPS[kind][0]([pool[k] for k in got[0]], *got[1]))
        if value.size > rg.MAX_NUMEL or value.ndim > 4:
            kind, got, value = "unary", ((i,), ("neg",)), -pool[i]
        program.append((kind,) + got)
        pool.append(value)
    return inputs, program, pool


def interpret_ints(program, inputs):
    vals = [ag.tensor(x) for x in inputs]
    for kind, srcs, params in program:
        vals.append(INT_OPS[kind][1]([vals[k] for k in srcs], *params))
    last = vals[-1]
    return vals + [(last > 0) | (vals[0].sum() < 0)]  # and a bool result


@settings(max_examples=60, **rg.SETTINGS)
@given(st.integers(1, 5).flatmap(int_programs))
def test_integer_program_exact(prog):
    inputs, program, ref = prog
    n = len(ref)
    ref = ref + [(ref[-1] > 0) | (np.sum(ref[0]) < 0)]
    outputs = [n - 1, n, len(inputs)]
    got = {d: run_on(d, lambda: interpret_ints(program, inputs), outputs) for d in DEVICES}
    for k in outputs:
        mine, cpu = got["interp"][k], got["cpu"][k]
        assert mine.dtype == cpu.dtype and mine.shape == cpu.shape == np.shape(ref[k]), (k, program)
        np.testing.assert_array_equal(mine, cpu, err_msg=f"value {k} of {program}")
        np.testing.assert_array_equal(mine, ref[k], err_msg=f"value {k} of {program}")
