"""The element-wise ops of the kernel IR over numpy arrays, with the C renderer's semantics.

The C renderer (``codegen.c_source``) spells every node as ``const T v = <expr>;`` with ``T``
the node's dtype, so each op here

- combines its operands in C's common type (usual arithmetic conversions: the wider of the
  operand types, bool counting as int32),
- runs math functions in float32 for float32 nodes (``expf``, ...) and in float64 otherwise,
- and converts the result to the node's dtype as that assignment does.

A bool is held as numpy's bool (0 or 1): a C ``unsigned char`` given any other nonzero value
reads as True here.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Sequence

import numpy as np

from ...dtypes import DType, bool_, float32

# the C types an operand may be promoted to, narrowest first
_PROMOTION = (np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.float32), np.dtype(np.float64))


def common_type(*arrays: np.ndarray) -> np.dtype:
    """The type C computes an operation on these operands in."""
    return max((np.dtype(np.int32) if a.dtype == np.bool_ else a.dtype for a in arrays), key=_PROMOTION.index)


def convert(x: np.ndarray, dtype: DType) -> np.ndarray:
    """C's conversion to ``dtype``: to bool means "is nonzero"; floats go to integers by
    truncation toward zero; wider integers wrap into narrower ones."""
    x = np.asarray(x)
    if dtype is bool_:
        return x if x.dtype == np.bool_ else x != 0
    return x.astype(dtype.np, copy=False)


def _promoted(arrays: Sequence[np.ndarray]):
    t = common_type(*arrays)
    return [a.astype(t, copy=False) for a in arrays]


def divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a / b`` in C: IEEE division for floats, truncation toward zero for integers.

    An integer division by zero (undefined in C, a crash on x86) gives 0 here."""
    a, b = _promoted((a, b))
    if a.dtype.kind == "f":
        return a / b
    safe = np.where(b == 0, 1, b).astype(a.dtype)
    q = a // safe
    q += ((q * safe != a) & ((a < 0) != (safe < 0))).astype(a.dtype)  # floor -> toward zero
    return np.where(b == 0, 0, q).astype(a.dtype)


def c_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``AG_MAX(a, b)``: ``a`` where ``a > b`` or ``a`` is NaN, else ``b`` (NaN wins either way)."""
    a, b = _promoted((a, b))
    return np.where((a > b) | (a != a), a, b)


def c_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``AG_MIN(a, b)``: ``a`` where ``a < b`` or ``a`` is NaN, else ``b``."""
    a, b = _promoted((a, b))
    return np.where((a < b) | (a != a), a, b)


def c_abs(a: np.ndarray, float_result: bool) -> np.ndarray:
    """``fabs`` for float nodes, ``a < 0 ? -a : a`` (in a's promoted type) otherwise."""
    if float_result:
        return np.abs(a)
    return np.where(a < 0, -a, a)


def c_sign(a: np.ndarray) -> np.ndarray:
    """``AG_SIGN(a)``: 1, -1, or ``a`` itself (so zeros keep their sign and NaN stays NaN)."""
    (a,) = _promoted((a,))
    one = np.ones((), a.dtype)
    return np.where(a > 0, one, np.where(a < 0, -one, a))


def erf(x: np.ndarray) -> np.ndarray:
    """The error function in float64 (numpy has none), to within about ten ulps: a series of
    positive terms below 2.5, the continued fraction of erfc above."""
    x = np.asarray(x, np.float64)
    a = np.abs(x)
    near = a < 2.5
    out = np.empty_like(a)
    out[near] = _erf_series(a[near])
    out[~near] = 1 - _erfc_fraction(np.minimum(a[~near], 30.0))
    return np.copysign(out, x)


def _erf_series(a: np.ndarray) -> np.ndarray:
    # erf(a) = 2/sqrt(pi) exp(-a^2) sum_n (2a^2)^n a / (1*3*...*(2n+1))
    term, total, n = a.copy(), a.copy(), 0
    while np.any(term > 1e-17 * total):
        n += 1
        term *= 2 * a * a / (2 * n + 1)
        total += term
    return 2 / math.sqrt(math.pi) * np.exp(-a * a) * total


def _erfc_fraction(a: np.ndarray, depth: int = 120) -> np.ndarray:
    # erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))), from the bottom up
    f = a.copy()
    for k in range(depth, 0, -1):
        f = a + (k / 2) / f
    return np.exp(-a * a) / (math.sqrt(math.pi) * f)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    one = np.ones((), x.dtype)
    return one / (one + np.exp(-x))


def _erf_in(x: np.ndarray) -> np.ndarray:
    return erf(x).astype(x.dtype)  # float32 erf is the float64 one, rounded


# math functions: computed in float32 for float32 nodes, in float64 otherwise
MATH: Dict[str, Callable] = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "sin": np.sin, "cos": np.cos, "sqrt": np.sqrt,
    "tanh": np.tanh, "pow": np.power, "atan2": np.arctan2, "sigmoid": _sigmoid, "erf": _erf_in,
}
# binary operators computed in the operands' common type
ARITH: Dict[str, Callable] = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": divide,
    "cmplt": np.less, "cmple": np.less_equal, "cmpeq": np.equal, "cmpne": np.not_equal,
    "maximum": c_max, "minimum": c_min,
}
LOGIC: Dict[str, Callable] = {"and": np.logical_and, "or": np.logical_or, "not": np.logical_not}


def apply(op: str, dtype: DType, srcs: Sequence[np.ndarray]) -> np.ndarray:
    """The value of element-wise ``op`` on the source arrays, as an array of ``dtype``."""
    if op in MATH:
        ft = np.float32 if dtype is float32 else np.float64
        out = MATH[op](*[s.astype(ft, copy=False) for s in srcs])
    elif op in ARITH:
        out = ARITH[op](*_promoted(srcs))
    elif op in LOGIC:
        out = LOGIC[op](*srcs)
    elif op == "neg":
        out = np.negative(*_promoted(srcs))
    elif op == "recip":
        out = divide(np.ones((), dtype.np), srcs[0])
    elif op == "abs":
        out = c_abs(*_promoted(srcs), dtype.is_float)
    elif op == "sign":
        out = c_sign(srcs[0])
    elif op == "where":
        cond, a, b = srcs
        out = np.where(cond, *_promoted((a, b)))
    elif op in ("cast", "noop"):
        out = srcs[0]
    else:
        raise NotImplementedError(f"the interpreter has no op {op!r}")
    return convert(out, dtype)
