"""The user-facing Tensor: a lazy value with PyTorch's names, computed when asked for."""
from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np

from .. import dtypes as dt
from ..config import config
from ..devices.device import Device
from ..devices.registry import default_device, gpu, host
from ..graph import lazy
from ..graph.lazy import LazyNode
from ..engine.program import realize
from . import functions as F
from .autograd import backward as _backward
from .data import node_from_data
from .device import ToDevice, check_device, host_array, move_node, names_a_device
from .checks import check_numel
from .errors import ShapeError, broadcast_shapes
from .movement import MovementMixin
from .reductions import ReductionMixin


class Tensor(MovementMixin, ReductionMixin):
    __array_priority__ = 1000  # numpy defers to our operators

    def __init__(self, data, dtype=None, requires_grad: bool = False, device=None):
        device = check_device(device)
        if isinstance(data, Tensor):
            node = data.node if dtype is None else data.to(dtype).node
        elif isinstance(data, LazyNode):
            node = data
        else:
            node = node_from_data(data, dtype, host())
            if device is None and config.default_device is not None:
                device = default_device()
        if device is not None and device is not (node.device or host()):
            node = move_node(node, device)
        self.node: LazyNode = node
        self.grad: Optional[Tensor] = None
        self._ctx = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _from_node(node: LazyNode, requires_grad: bool = False) -> "Tensor":
        t = Tensor.__new__(Tensor)
        t.node, t.grad, t._ctx, t.requires_grad = node, None, None, requires_grad
        return t

    # ---- properties ------------------------------------------------------------------------
    @property
    def shape(self):
        return self.node.shape

    @property
    def dtype(self) -> dt.DType:
        return self.node.dtype

    @property
    def device(self) -> Device:
        """Where the tensor's values live (a device object, equal to its name: ``t.device == "cpu"``)."""
        return self.node.device or default_device()

    def cuda(self, device: Optional[int] = None) -> "Tensor":
        """This tensor on the GPU of that number (itself if it is there already)."""
        return self.to(gpu(device))

    def cpu(self) -> "Tensor":
        """This tensor in host memory (itself if it is there already)."""
        return self.to(host())

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return self.ndim

    def size(self, dim: Optional[int] = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and not self.dtype.is_float:
            raise TypeError(f"only floating point tensors can require gradients, got {self.dtype.name}")
        self.requires_grad = flag
        return self

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({np.array2string(self.numpy(), separator=', ')}, dtype={self.dtype.name}{grad})"

    # ---- values ----------------------------------------------------------------------------
    def realize(self) -> "Tensor":
        """Compute this tensor now (it stays lazy until something reads it)."""
        realize([self.node])
        return self

    def numpy(self) -> np.ndarray:
        """A new numpy array holding this tensor's values."""
        node = self.node
        if node.base.op == "const" or (node.is_view and node.view.mask is not None):
            node = lazy.contiguous(node)
        realize([node])
        base, view, _ = node.base_view()
        if not base.device.is_host:
            if not view.is_contiguous:
                node = lazy.contiguous(node, copy=True)
                realize([node])
            return host_array(node, self.shape)
        if view.is_contiguous:
            # a contiguous view may still be a prefix of a larger base (x[0], x[:2], empty slices)
            return base.buffer.reshape(-1)[:self.numel()].reshape(self.shape).copy()
        return np.array(base.device.strided(base.buffer, view))

    def item(self):
        if self.numel() != 1:
            raise ValueError(f"item(): only one-element tensors can be converted, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def detach(self) -> "Tensor":
        return Tensor._from_node(self.node)

    def clone(self) -> "Tensor":
        return F.Contiguous.apply(self, copy=True)

    def contiguous(self) -> "Tensor":
        return F.Contiguous.apply(self)

    def to(self, target=None, dtype=None, device=None) -> "Tensor":
        """Cast (``to(audiograd.float64)``), move (``to('cuda')``, ``to('cpu')``) or both."""
        if names_a_device(target):
            device, target = target, None
        d = dt.to_dtype(target if target is not None else dtype) if (target or dtype) is not None else self.dtype
        out = self if d is self.dtype else F.Cast.apply(self, dtype=d)
        device = check_device(device)
        if device is None or device is out.device:
            return out
        return ToDevice.apply(out, device=device)

    def float(self) -> "Tensor":
        return self.to(dt.float32)

    def double(self) -> "Tensor":
        return self.to(dt.float64)

    def long(self) -> "Tensor":
        return self.to(dt.int64)

    def int(self) -> "Tensor":
        return self.to(dt.int32)

    def bool(self) -> "Tensor":
        return self.to(dt.bool_)

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        _backward(self, gradient, retain_graph)

    def assign(self, value) -> "Tensor":
        """Overwrite this tensor's values in place (broadcast to its shape, cast to its dtype).

        The tensor keeps its buffer, so every tensor sharing it (``detach()``) sees the new
        values, and a captured ``jit`` program writes to the same memory on every replay.
        """
        value = value if isinstance(value, Tensor) else Tensor(np.asarray(value), dtype=self.dtype)
        if value.shape != self.shape:
            if broadcast_shapes("assign", self.shape, value.shape) != self.shape:
                raise ShapeError(f"assign: value of shape {value.shape} does not fit tensor of shape {self.shape}")
            value = value.expand(*self.shape)
        target = self.node
        if not target.realized or target.is_view:
            target = lazy.contiguous(target)
            realize([target])
        self.node = lazy.assign(target, value.to(self.dtype).node)
        return self

    # ---- construction helpers ----------------------------------------------------------------
    def zeros_like(self) -> "Tensor":
        return Tensor._from_node(lazy.const_node(0, self.dtype, self.shape))

    def ones_like(self) -> "Tensor":
        return Tensor._from_node(lazy.const_node(1, self.dtype, self.shape))

    def _const(self, value, dtype: dt.DType) -> "Tensor":
        return Tensor._from_node(lazy.const_node(value, dtype, ()))

    # ---- element-wise ------------------------------------------------------------------------
    def _operands(self, other, op: str, reverse: bool = False):
        """Promote dtypes and broadcast shapes of (self, other) as PyTorch does."""
        if isinstance(other, Tensor):
            d = dt.promote(self.dtype, other.dtype)
            o = other
        elif isinstance(other, np.ndarray):
            o = Tensor(other)
            d = dt.promote(self.dtype, o.dtype)
        else:
            if not isinstance(other, (int, float, bool, np.number, np.bool_)):
                raise TypeError(f"{op}: unsupported operand of type {type(other).__name__}")
            d = dt.result_with_scalar(self.dtype, other)
            o = self._const(other, d)
        a = self.to(d)
        o = o.to(d)
        if a.shape != o.shape:
            shape = broadcast_shapes(op, a.shape, o.shape)
            a, o = a.expand(*shape), o.expand(*shape)
        return (o, a) if reverse else (a, o)

    def _float_operands(self, other, op, reverse=False):
        a, b = self._operands(other, op, reverse)
        if not a.dtype.is_float:
            a, b = a.to(dt.default_float), b.to(dt.default_float)
        return a, b

    def add(self, other, alpha=1):
        if alpha != 1:
            other = other * alpha
        a, b = self._operands(other, "add")
        if a.dtype is dt.bool_:
            return Tensor._from_node(lazy.elementwise("or", (a.node, b.node)))
        return F.Add.apply(a, b)

    def sub(self, other, alpha=1):
        if alpha != 1:
            other = other * alpha
        a, b = self._operands(other, "sub")
        if a.dtype is dt.bool_:
            raise TypeError("sub: subtraction of bool tensors is not supported; use logical ops")
        return F.Sub.apply(a, b)

    def mul(self, other):
        a, b = self._operands(other, "mul")
        if a.dtype is dt.bool_:
            return Tensor._from_node(lazy.elementwise("and", (a.node, b.node)))
        return F.Mul.apply(a, b)

    def div(self, other):
        return F.Div.apply(*self._float_operands(other, "div"))

    def pow(self, exponent):
        if not isinstance(exponent, Tensor) and not isinstance(exponent, np.ndarray):
            special = {2: lambda x: x * x, 1: lambda x: x, 0.5: lambda x: x.sqrt(), -1: lambda x: x.reciprocal(),
                       3: lambda x: x * x * x, -0.5: lambda x: x.rsqrt(), -2: lambda x: (x * x).reciprocal()}
            if exponent in special and (self.dtype.is_float or exponent in (1, 2, 3)):
                return special[exponent](self)
        a, b = self._operands(exponent, "pow")
        if not a.dtype.is_float:
            return F.Pow.apply(a.to(dt.float64), b.to(dt.float64)).to(a.dtype)
        return F.Pow.apply(a, b)

    def maximum(self, other):
        return F.Maximum.apply(*self._operands(other, "maximum"))

    def atan2(self, other):
        """Elementwise angle of the point (other, self) in (-pi, pi], like ``torch.atan2``."""
        return F.Atan2.apply(*self._float_operands(other, "atan2"))

    arctan2 = atan2

    def minimum(self, other):
        return F.Minimum.apply(*self._operands(other, "minimum"))

    def _compare(self, other, op, name, reverse=False):
        a, b = self._operands(other, name, reverse)
        return Tensor._from_node(lazy.elementwise(op, (a.node, b.node)))

    def eq(self, other): return self._compare(other, "cmpeq", "eq")
    def ne(self, other): return self._compare(other, "cmpne", "ne")
    def lt(self, other): return self._compare(other, "cmplt", "lt")
    def le(self, other): return self._compare(other, "cmple", "le")
    def gt(self, other): return self._compare(other, "cmplt", "gt", reverse=True)
    def ge(self, other): return self._compare(other, "cmple", "ge", reverse=True)

    def _logical(self, other, op):
        a, b = self._operands(other, op)
        if a.dtype is not dt.bool_:
            raise TypeError(f"{op}: logical ops need bool tensors, got {self.dtype.name}")
        return Tensor._from_node(lazy.elementwise(op, (a.node, b.node)))

    def logical_not(self) -> "Tensor":
        return Tensor._from_node(lazy.elementwise("not", (self.to(dt.bool_).node,)))

    __add__ = add
    __sub__ = sub
    __mul__ = mul
    __truediv__ = div
    __pow__ = pow
    __eq__ = eq
    __ne__ = ne
    __lt__ = lt
    __le__ = le
    __gt__ = gt
    __ge__ = ge
    __hash__ = object.__hash__

    def __radd__(self, other): return F.Add.apply(*self._operands(other, "add", reverse=True))
    def __rsub__(self, other): return F.Sub.apply(*self._operands(other, "sub", reverse=True))
    def __rmul__(self, other): return F.Mul.apply(*self._operands(other, "mul", reverse=True))
    def __rtruediv__(self, other): return F.Div.apply(*self._float_operands(other, "div", reverse=True))
    def __rpow__(self, other): return F.Pow.apply(*self._float_operands(other, "pow", reverse=True))
    def __neg__(self): return self.neg()
    def __and__(self, other): return self._logical(other, "and")
    def __or__(self, other): return self._logical(other, "or")
    def __invert__(self): return self.logical_not()
    def __matmul__(self, other): return self.matmul(other)
    def __rmatmul__(self, other): return Tensor(other).matmul(self)

    def neg(self):
        if self.dtype is dt.bool_:
            raise TypeError("neg: negation of a bool tensor is not supported; use logical_not()")
        return F.Neg.apply(self)

    def _float_unary(self, fn):
        x = self if self.dtype.is_float else self.to(dt.default_float)
        return fn.apply(x)

    def exp(self): return self._float_unary(F.Exp)
    def log(self): return self._float_unary(F.Log)
    def log1p(self): return self._float_unary(F.Log1p)
    def sin(self): return self._float_unary(F.Sin)
    def cos(self): return self._float_unary(F.Cos)
    def sqrt(self): return self._float_unary(F.Sqrt)
    def rsqrt(self): return self.sqrt().reciprocal()
    def tanh(self): return self._float_unary(F.Tanh)
    def sigmoid(self): return self._float_unary(F.Sigmoid)
    def erf(self): return self._float_unary(F.Erf)
    def reciprocal(self): return self._float_unary(F.Recip)
    def abs(self): return F.Abs.apply(self)
    def sign(self): return F.Sign.apply(self)
    def relu(self): return F.Relu.apply(self)
    def square(self): return self * self

    def softplus(self, beta: float = 1.0, threshold: float = 20.0):
        """log(1 + exp(beta*x)) / beta, linear above ``threshold`` (PyTorch's definition)."""
        x = self if self.dtype.is_float else self.to(dt.default_float)
        return F.Softplus.apply(x, beta=beta, threshold=threshold)

    def clamp(self, min=None, max=None):
        """Limit values to [min, max]; gradient passes where min <= x <= max (as in PyTorch)."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        out = self
        if min is not None:
            out = where(out < min, min if not isinstance(min, Tensor) else min.to(self.dtype), out)
        if max is not None:
            out = where(out > max, max if not isinstance(max, Tensor) else max.to(self.dtype), out)
        return out

    clip = clamp

    def where(self, condition, other):
        return where(condition, self, other)

    def matmul(self, other) -> "Tensor":
        other = other if isinstance(other, Tensor) else Tensor(other)
        if not self.dtype.is_float or self.dtype is not other.dtype:
            raise TypeError(f"matmul: operands must share a floating dtype, got {self.dtype.name} and {other.dtype.name}")
        if self.ndim == 0 or other.ndim == 0:
            raise ShapeError(f"matmul: both operands need at least 1 dim, got shapes {self.shape} and {other.shape}")
        a = self.unsqueeze(0) if self.ndim == 1 else self
        b = other.unsqueeze(-1) if other.ndim == 1 else other
        if a.shape[-1] != b.shape[-2]:
            raise ShapeError(f"matmul: shapes {self.shape} and {other.shape} cannot be multiplied "
                             f"({a.shape[-1]} != {b.shape[-2]})")
        batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
        check_numel("matmul", (*batch, a.shape[-2], b.shape[-1]))
        a = a.expand(*batch, *a.shape[-2:])
        b = b.expand(*batch, *b.shape[-2:])
        out = F.Matmul.apply(a, b)
        if self.ndim == 1:  # drop the added row first: for 1-D @ 1-D the result is (1, 1)
            out = out.squeeze(-2)
        if other.ndim == 1:
            out = out.squeeze(-1)
        return out


def where(condition, x, y) -> Tensor:
    """Elements of ``x`` where ``condition`` holds, else of ``y`` (broadcasting all three)."""
    c = condition if isinstance(condition, Tensor) else Tensor(np.asarray(condition, dtype=bool))
    if c.dtype is not dt.bool_:
        c = c.to(dt.bool_)
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):   # two scalars: torch's default dtype
        x = c._const(x, dt.promote(dt.scalar_dtype(x), dt.scalar_dtype(y)))
    if isinstance(x, Tensor):
        a, b = x._operands(y, "where")
    else:
        b, a = y._operands(x, "where")
    shape = broadcast_shapes("where", c.shape, a.shape, b.shape)
    return F.Where.apply(c.expand(*shape), a.expand(*shape), b.expand(*shape))


def realize_all(tensors: Iterable[Optional[Tensor]]) -> None:
    """Compute several tensors in one schedule (shared work is done once)."""
    realize([t.node for t in tensors if t is not None])
