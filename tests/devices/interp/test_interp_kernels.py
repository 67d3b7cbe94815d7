"""Hand-built kernels, run by the interpreter and compiled by the CPU device, must agree bit
for bit: the C semantics of ops that the tensor layer seldom or never emits (integer
division, truncating casts, NaN and signed zeros in max/min/sign, float truthiness, wrapping
integer sums), and reads through masked views whose offsets fall outside their buffer."""
import math

import numpy as np
import pytest

from audiograd.devices.interp.alu import erf
from audiograd.devices.registry import get_device
from audiograd.dtypes import bool_, float32, float64, int32, int64
from audiograd.graph.kernel_ir import Alu, Const, Kernel, Load, Reduce
from audiograd.graph.view import View
from audiograd.schedule.fuse import KernelStep

N = 12
V = View.contiguous((N,))
F32 = np.array([-2.7, -0.0, 0.0, 0.5, 2.5, np.nan, np.inf, -np.inf, -1.0, 3.0, 1e-40, -7.5], np.float32)
F32B = np.array([0.0, 0.0, -0.0, np.nan, 2.5, 1.0, np.nan, -np.inf, -1.0, -3.0, 0.0, 7.5], np.float32)
I32 = np.array([-7, 7, -8, 9, 0, 2147483647, -2147483648, 5, -1, 13, -13, 100], np.int32)
I32B = np.array([2, -2, 3, -4, 5, 2, 3, -3, 7, 4, -4, 7], np.int32)


def load(buf, dtype, view=V):
    return Load(buf, view, dtype)


def run(device, kernel, inputs):
    """The kernel's output computed by ``device`` (its launch over fresh buffers)."""
    (launch,) = get_device(device).compile([KernelStep(None, kernel, [None] * len(inputs))])
    out = np.zeros(kernel.out_shape, kernel.out_dtype.np)
    launch([out] + [np.ascontiguousarray(a) for a in inputs])
    return out


def elementwise(op, dtype, *srcs, inputs=None):
    """A kernel computing ``op`` of ``srcs`` over (N,); ``inputs`` are its input buffers'
    dtypes (by default those of the loads among ``srcs``)."""
    inputs = inputs or tuple(s.dtype for s in srcs if isinstance(s, Load))
    return Kernel(Alu(op, srcs, dtype), (N,), dtype, (dtype,) + tuple(inputs))


def reduction(op, dtype, view, axes):
    """A kernel reducing buffer 1, read through ``view``, over ``axes``."""
    return Kernel(Reduce(op, load(1, dtype, view), axes, dtype), view.shape, dtype, (dtype, dtype), axes)


ROWS = View((3, 4), (4, 1))
REVERSED = View((N,), (-1,), N - 1)
PADDED = View.make((N,), (1,), -4, ((4, 7),))          # 3 elements read at 4..6, offsets -4..7
CONST_PADDED = View.make((N,), (-1,), 2, ((0, 3),))
F32_OPS = dict(inputs=(float32, float32))

CASES = {
    "int_div_truncates": (elementwise("div", int32, load(1, int32), load(2, int32)), [I32, I32B]),
    "int_recip": (elementwise("recip", int64, load(1, int64)), [I32B.astype(np.int64)]),
    "int_pow_truncates": (elementwise("pow", int32, load(1, int32), load(2, int32)), [I32B, np.abs(I32B) % 4 - 1]),
    "float_to_int_cast": (elementwise("cast", int32, load(1, float32)), [np.nan_to_num(F32, posinf=9, neginf=-9)]),
    "float_to_bool_cast": (elementwise("cast", bool_, load(1, float32)), [F32]),
    "narrowing_noop": (elementwise("noop", float32, load(1, float64)), [F32.astype(np.float64) / 3]),
    "int_narrowing_cast": (elementwise("cast", int32, load(1, int64)), [I32.astype(np.int64) * 3]),
    "maximum_nan_zeros": (elementwise("maximum", float32, load(1, float32), load(2, float32)), [F32, F32B]),
    "minimum_nan_zeros": (elementwise("minimum", float32, load(1, float32), load(2, float32)), [F32, F32B]),
    "sign": (elementwise("sign", float32, load(1, float32)), [F32]),
    "int_sign_abs": (elementwise("add", int32, Alu("sign", (load(1, int32),), int32),
                                 Alu("abs", (load(1, int32),), int32), inputs=(int32,)), [I32]),
    "float_truthiness": (elementwise("where", float32, load(1, float32), load(2, float32),
                                     load(2, float32, REVERSED)), [F32, F32B]),
    "logic_on_floats": (elementwise("or", bool_, Alu("and", (load(1, float32), load(2, float32)), bool_),
                                    Alu("not", (load(1, float32),), bool_), **F32_OPS), [F32, F32B]),
    "mixed_types": (elementwise("add", float64, load(1, int32), load(2, float32)), [I32, F32]),
    "int32_sum_wraps": (reduction("sum", int32, V, (0,)), [I32]),
    "float32_sum_in_double": (reduction("sum", float32, V, (0,)), [np.array([1e8, 1, -1e8] * 4, np.float32)]),
    "max_with_nan": (reduction("max", float32, ROWS, (1,)), [F32]),
    "bool_max": (reduction("max", bool_, View((3, 4), (1, 3)), (1,)), [I32 > 8]),
    "int_scan": (Kernel(load(1, int32, ROWS), (3, 4), int32, (int32, int32), scan_axis=1), [I32]),
    "masked_reads_outside_the_buffer": (elementwise("add", float32, load(1, float32, PADDED),
                                                    Const(2.5, CONST_PADDED, float32)), [F32[:3]]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_interpreter_matches_compiled_c(name):
    kernel, inputs = CASES[name]
    mine, cpu = run("interp", kernel, inputs), run("cpu", kernel, inputs)
    assert mine.dtype == cpu.dtype and mine.shape == cpu.shape
    np.testing.assert_array_equal(mine, cpu)
    if mine.dtype.kind == "f":
        np.testing.assert_array_equal(np.signbit(mine), np.signbit(cpu))


def test_erf_to_a_few_ulps():
    x = np.concatenate([np.linspace(-7, 7, 4000), [0.0, -0.0, 1e-300, 2.5, 30.0, np.inf, -np.inf, np.nan]])
    ref = np.array([math.erf(v) for v in x])
    got = erf(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert np.all(np.abs(got[ok] - ref[ok]) <= 16 * np.spacing(np.abs(ref[ok])))
    assert np.signbit(got[-8:-6]).tolist() == [False, True]
