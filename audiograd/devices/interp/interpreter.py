"""Evaluate a scheduled ``Kernel`` with numpy: the reference semantics of the kernel IR.

A kernel computes ``out[i] = root(i)`` for every index ``i`` of its iteration space. Here the
whole space is computed at once: every node of the expression tree becomes an array over its
views' shape, which is the full iteration shape below the one ``Reduce`` (the prologue) and
the output shape above it (the epilogue). Element-wise ops follow the C renderer's semantics
(``alu``); sums accumulate in float64 or int64 as the C kernels do.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from ...dtypes import DType, bool_
from ...graph.kernel_ir import Alu, Const, Kernel, Load, Reduce
from ...graph.view import View
from . import alu


def offsets_and_mask(view: View) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """The flat element offset of every index of ``view`` and where its mask holds (None when
    it holds everywhere), both broadcastable to ``view.shape``."""
    nd = len(view.shape)
    offsets = np.full((1,) * nd, view.offset, np.int64)
    valid = None
    for d, (size, stride) in enumerate(zip(view.shape, view.strides)):
        i = np.arange(size, dtype=np.int64).reshape((-1,) + (1,) * (nd - d - 1))
        offsets = offsets + i * stride
        if view.mask is not None and view.mask[d] != (0, size):
            lo, hi = view.mask[d]
            inside = (i >= lo) & (i < hi)
            valid = inside if valid is None else valid & inside
    return offsets, valid


def read(flat: np.ndarray, view: View) -> np.ndarray:
    """The elements of a flat buffer read through ``view``: zero outside its mask. An index
    inside the mask whose offset falls outside the buffer is an IndexError (a C kernel would
    read whatever lies there)."""
    zero = flat.dtype.type(0)
    if view.fully_masked or view.numel == 0:
        return np.full(view.shape, zero)
    offsets, valid = offsets_and_mask(view)
    offsets = np.broadcast_to(offsets, view.shape)
    if valid is not None:
        valid = np.broadcast_to(valid, view.shape)
        offsets = np.where(valid, offsets, 0)  # masked indices may point anywhere: read element 0
    used = offsets if valid is None else offsets[valid]
    if used.size and (used.min() < 0 or used.max() >= flat.size):
        raise IndexError(f"view {view} reads elements {used.min()}..{used.max()} of a buffer of {flat.size}")
    values = flat[offsets]
    return values if valid is None else np.where(valid, values, zero)


def constant(c: Const) -> np.ndarray:
    """A constant over its view's shape, zero outside the view's mask."""
    value = np.array(_literal(c.value, c.dtype)).astype(c.dtype.np)
    zero = np.zeros((), c.dtype.np)
    if c.view.fully_masked:
        return np.broadcast_to(zero, c.view.shape)
    full = np.broadcast_to(value, c.view.shape)
    _, valid = offsets_and_mask(c.view)
    return full if valid is None else np.where(valid, full, zero)


def _literal(value, dtype: DType):
    """The value C sees for a literal (``codegen.c_source.c_literal``): ints truncated, floats
    rounded to the dtype."""
    if dtype is bool_:
        return bool(value)
    if not dtype.is_float:
        return int(value)
    return dtype.np(value)


def accumulator(dtype: DType, op: str = "sum") -> np.dtype:
    """The type a kernel accumulates a sum (float64 or int64) or a max (its own type) in."""
    if op == "max":
        return np.dtype(dtype.np)
    return np.dtype(np.float64 if dtype.is_float else np.int64)


def reduce(r: Reduce, x: np.ndarray) -> np.ndarray:
    """A sum or max over ``r.axes`` (dims kept) with the C kernel's accumulator and start value;
    max propagates NaN, and an empty max is the accumulator's lowest value."""
    acc = accumulator(r.dtype, r.op)
    if r.op == "sum":
        out = np.sum(x, axis=r.axes, dtype=acc, keepdims=True)
    elif r.op == "max":
        lowest = -np.inf if acc.kind == "f" else False if acc.kind == "b" else np.iinfo(acc).min
        out = np.max(x.astype(acc, copy=False), axis=r.axes, keepdims=True, initial=lowest)
    else:
        raise NotImplementedError(f"the interpreter has no reduction {r.op!r}")
    return alu.convert(out, r.dtype)


def scan(x: np.ndarray, axis: int, dtype: DType) -> np.ndarray:
    """The cumulative sum along ``axis``, accumulated in float64 or int64."""
    return alu.convert(np.cumsum(x, axis=axis, dtype=accumulator(dtype)), dtype)


class Evaluator:
    """Evaluates expression nodes over a kernel's buffers, each shared node once."""

    def __init__(self, bufs: List[np.ndarray]):
        self.flat = [b.reshape(-1) for b in bufs]
        self.values: Dict[int, np.ndarray] = {}

    def __call__(self, e) -> np.ndarray:
        key = id(e)
        if key not in self.values:
            self.values[key] = self._evaluate(e)
        return self.values[key]

    def _evaluate(self, e) -> np.ndarray:
        if isinstance(e, Load):
            flat = self.flat[e.buf]
            if flat.dtype != e.dtype.np:
                raise TypeError(f"buffer {e.buf} holds {flat.dtype}, the kernel reads it as {e.dtype.name}")
            return read(flat, e.view)
        if isinstance(e, Const):
            return constant(e)
        if isinstance(e, Reduce):
            return reduce(e, self(e.src))
        if isinstance(e, Alu):
            srcs = [self(s) for s in e.srcs]
            if len({s.shape for s in srcs}) > 1:
                raise ValueError(f"operands of {e.op} have shapes {[s.shape for s in srcs]}")
            return alu.apply(e.op, e.dtype, srcs)
        raise TypeError(f"not a kernel expression node: {type(e).__name__}")


def evaluate(kernel: Kernel, bufs: List[np.ndarray]) -> np.ndarray:
    """The kernel's output values, an array of ``kernel.out_shape`` and ``kernel.out_dtype``;
    every buffer is read before anything is written (``inplace`` kernels read their output)."""
    with np.errstate(all="ignore"):  # C computes inf, NaN and wrapped integers silently too
        values = Evaluator(bufs)(kernel.root)
        if kernel.scan_axis is not None:
            values = scan(values, kernel.scan_axis, kernel.out_dtype)
        values = alu.convert(values, kernel.out_dtype)
    if values.shape != kernel.out_shape:
        raise ValueError(f"kernel computes shape {values.shape}, its output is {kernel.out_shape}")
    return values


def run_kernel(kernel: Kernel, bufs: List[np.ndarray]) -> None:
    """Compute ``kernel`` over ``bufs`` (output first) and write the output buffer."""
    out = bufs[0]
    if not out.size:
        return
    if not out.flags.c_contiguous:
        raise ValueError("the output buffer of a kernel must be C-contiguous")
    out.reshape(-1)[...] = evaluate(kernel, bufs).reshape(-1)
