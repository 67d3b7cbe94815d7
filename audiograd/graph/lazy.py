"""The lazy graph: nodes that describe a computation until someone asks for its values.

Every node is either a *base* (a buffer, a constant, an element-wise op, a reduction, a library
op) whose result is contiguous in its own shape, or a *view* of a base: a ``View`` plus the list
of movement ops that produced it, so the view can be replayed onto the inputs of an unrealized
base when the scheduler fuses it into its consumer.
"""
from __future__ import annotations

import itertools
import math
import weakref
from typing import Optional, Tuple

from ..dtypes import DType, bool_
from . import ops
from .library_ops import LibraryOp
from .view import View

_ids = itertools.count()
# assigns not yet realized: jit capture realizes them before it ends
PENDING_ASSIGNS: "weakref.WeakSet[LazyNode]" = weakref.WeakSet()


class LazyNode:
    __slots__ = ("op", "srcs", "arg", "dtype", "shape", "buffer", "view", "history", "id", "device",
                 "__weakref__")

    def __init__(self, op: str, srcs: Tuple["LazyNode", ...], arg, dtype: DType, shape,
                 buffer=None, view: Optional[View] = None, history=(),
                 device: Optional[str] = None):
        self.op, self.srcs, self.arg, self.dtype, self.shape = op, tuple(srcs), arg, dtype, tuple(shape)
        self.buffer, self.view, self.history = buffer, view, history
        # a Device object (see devices/), or None for values made of constants alone (they
        # follow their users); a buffer node is always told its device
        self.device = device if device is not None or not self.srcs else common_device(self.srcs)
        self.id = next(_ids)

    def __repr__(self) -> str:
        state = "realized" if self.realized else f"{len(self.srcs)} srcs"
        return f"<LazyNode {self.op} {self.shape} {self.dtype.name} {state}>"

    @property
    def realized(self) -> bool:
        return self.buffer is not None

    @property
    def is_view(self) -> bool:
        return self.op == "view"

    @property
    def base(self) -> "LazyNode":
        return self.srcs[0] if self.op == "view" else self

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def base_view(self) -> Tuple["LazyNode", View, tuple]:
        """(base, view onto the base's contiguous shape, movement history from the base)."""
        if self.op == "view":
            return self.srcs[0], self.view, self.history
        return self, View.contiguous(self.shape), ()


def common_device(nodes) -> Optional[str]:
    """The one device the nodes live on (None when all are device-free constants); a clear
    RuntimeError when they live on different devices."""
    dev = None
    for n in nodes:
        d = n.device
        if d is not None and d is not dev:
            if dev is not None:
                raise RuntimeError(f"expected all tensors to be on the same device, but found at least two "
                                   f"devices, {str(dev)!r} and {str(d)!r}: move them with .to(device) first")
            dev = d
    return dev


# ---- constructors ---------------------------------------------------------------------------
def buffer_node(array, dtype: DType, device) -> LazyNode:
    """A realized node over an existing contiguous buffer of ``device``."""
    return LazyNode("buffer", (), None, dtype, tuple(array.shape), buffer=array, device=device)


def const_node(value, dtype: DType, shape=(), device: Optional[str] = None) -> LazyNode:
    """A constant broadcast to ``shape``; with no ``device`` it takes the device of its users."""
    c = LazyNode("const", (), dtype.np(value).item(), dtype, (), device=device)
    if shape == ():
        return c
    return movement(movement(c, "reshape", (1,) * len(shape)), "expand", tuple(shape))


def elementwise(op: str, srcs, dtype: Optional[DType] = None, arg=None) -> LazyNode:
    assert op in ops.ELEMENTWISE, op
    shape = srcs[0].shape
    assert all(s.shape == shape for s in srcs), (op, [s.shape for s in srcs])
    if dtype is None:
        dtype = bool_ if op in ops.COMPARISON else srcs[-1].dtype
    return LazyNode(op, tuple(srcs), arg, dtype, shape)


def reduce(op: str, src: LazyNode, axes: Tuple[int, ...], dtype: Optional[DType] = None) -> LazyNode:
    """Reduce over ``axes`` keeping them as size-1 dims."""
    shape = tuple(1 if i in axes else s for i, s in enumerate(src.shape))
    if not axes or all(src.shape[a] == 1 for a in axes):
        return src if dtype in (None, src.dtype) else elementwise("cast", (src,), dtype)
    return LazyNode(op, (src,), tuple(sorted(axes)), dtype or src.dtype, shape)


def library(op: LibraryOp, srcs, dtype: DType, arg=None) -> LazyNode:
    """A node computed by the declared library op ``op`` (its shape from the op's rule)."""
    return LazyNode(op.name, tuple(srcs), arg, dtype, op.shape(tuple(s.shape for s in srcs), arg))


def cumsum(src: LazyNode, axis: int) -> LazyNode:
    """The running sum of ``src`` along ``axis`` (a scan kernel)."""
    return LazyNode("cumsum", (src,), axis, src.dtype, src.shape)


def contiguous(node: LazyNode, copy: bool = False) -> LazyNode:
    """A node whose result is a buffer of its own: ``node`` itself if it is already one."""
    if not copy and node.op not in ("view", "const"):
        return node
    return LazyNode("contiguous", (node,), None, node.dtype, node.shape)


def assign(target: LazyNode, value: LazyNode) -> LazyNode:
    """Write ``value`` into ``target``'s buffer when realized (the buffer keeps its identity)."""
    node = LazyNode("assign", (target, value), None, target.dtype, target.shape)
    PENDING_ASSIGNS.add(node)
    return node


def movement(node: LazyNode, op: str, arg) -> LazyNode:
    """Apply one movement op (reshape, permute, expand, pad, shrink, flip, step, unfold) lazily."""
    base, view, history = node.base_view()
    new = getattr(view, op)(arg)
    if new is None:  # no single View expresses it (reshape, unfold of padding): materialize first
        base, history = contiguous(node), ()
        new = getattr(View.contiguous(node.shape), op)(arg)
    if new.shape == base.shape and new.is_contiguous:
        return base
    return LazyNode("view", (base,), None, node.dtype, new.shape, view=new, history=history + ((op, arg),))
