"""The expression tree of one kernel, as the scheduler hands it to a renderer.

Values are computed per index of the kernel's iteration space. Loads and constants carry the
View through which they are read; the one optional ``Reduce`` splits the tree into a prologue
(indexed by the full iteration shape) and an epilogue (indexed by the kept-dim output shape).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..dtypes import DType
from .view import View


@dataclass(frozen=True)
class Load:
    buf: int          # index into the kernel's buffer list (0 is the output)
    view: View
    dtype: DType


@dataclass(frozen=True)
class Const:
    value: object
    view: View        # only its mask matters: outside it the constant reads as zero
    dtype: DType


@dataclass(frozen=True)
class Alu:
    op: str
    srcs: Tuple[object, ...]
    dtype: DType


@dataclass(frozen=True)
class Reduce:
    op: str           # "sum" or "max"
    src: object
    axes: Tuple[int, ...]
    dtype: DType


@dataclass(frozen=True)
class Kernel:
    """One fused loop nest: ``out[i] = root(i)`` over ``full_shape``."""

    root: object
    full_shape: Tuple[int, ...]
    out_dtype: DType
    buf_dtypes: Tuple[DType, ...]            # dtypes of buffers 0..n (0 is the output)
    reduce_axes: Tuple[int, ...] = ()
    scan_axis: Optional[int] = None           # cumulative sum along this axis
    inplace: bool = False                     # output also read as an input (assign)

    @property
    def out_shape(self) -> Tuple[int, ...]:
        return tuple(1 if i in self.reduce_axes else s for i, s in enumerate(self.full_shape))


def walk(expr):
    """Yield every node of an expression tree once, children before parents."""
    seen = set()

    def rec(e):
        if id(e) in seen:
            return
        seen.add(id(e))
        for s in getattr(e, "srcs", ()):
            yield from rec(s)
        if isinstance(e, Reduce):
            yield from rec(e.src)
        yield e

    yield from rec(expr)
