"""The differentiable primitives: each builds its lazy node and states its gradient."""
from __future__ import annotations

import math

from ..graph import lazy
from ..graph.lazy import LazyNode
from ..graph.library_ops import MATMUL
from .autograd import Function


def _t(node: LazyNode):
    from .tensor import Tensor
    return Tensor._from_node(node)


# ---- unary ----------------------------------------------------------------------------------
class Unary(Function):
    op = ""

    def forward(self, x: LazyNode) -> LazyNode:
        self.x = x
        self.out = lazy.elementwise(self.op, (x,))
        return self.out


class Neg(Unary):
    op = "neg"
    def backward(self, g): return (-g,)


class Exp(Unary):
    op = "exp"
    def backward(self, g): return (g * _t(self.out),)


class Log(Unary):
    op = "log"
    def backward(self, g): return (g / _t(self.x),)


class Log1p(Unary):
    op = "log1p"
    def backward(self, g): return (g / (_t(self.x) + 1),)


class Sin(Unary):
    op = "sin"
    def backward(self, g): return (g * _t(self.x).cos(),)


class Cos(Unary):
    op = "cos"
    def backward(self, g): return (-(g * _t(self.x).sin()),)


class Sqrt(Unary):
    op = "sqrt"
    def backward(self, g): return (g / (_t(self.out) * 2),)


class Tanh(Unary):
    op = "tanh"
    def backward(self, g):
        o = _t(self.out)
        return (g * (1 - o * o),)


class Sigmoid(Unary):
    op = "sigmoid"
    def backward(self, g):
        o = _t(self.out)
        return (g * (o * (1 - o)),)


class Erf(Unary):
    op = "erf"
    def backward(self, g):
        x = _t(self.x)
        return (g * (-(x * x)).exp() * (2 / math.sqrt(math.pi)),)


class Softplus(Function):
    """log(1 + exp(beta*x)) / beta, or x where beta*x > threshold; the gradient is stated as
    sigmoid(beta*x) because the stable forward's pieces (relu, abs) have kinks at 0 whose
    one-sided gradients would give 0 there instead of 1/2."""

    def forward(self, x, beta, threshold):
        from .tensor import where
        self.x, self.beta, self.threshold = x, beta, threshold
        t = _t(x)
        bx = t * beta if beta != 1 else t
        # max(z, 0) + log1p(exp(-|z|)) never overflows, so both branches stay finite
        soft = bx.relu() + (-bx.abs()).exp().log1p()
        if beta != 1:
            soft = soft / beta
        return where(bx > threshold, t, soft).node

    def backward(self, g):
        from .tensor import where
        t = _t(self.x)
        bx = t * self.beta if self.beta != 1 else t
        return (where(bx > self.threshold, g, g * bx.sigmoid()),)


class Abs(Unary):
    op = "abs"
    def backward(self, g): return (g * _t(self.x).sign(),)


class Sign(Unary):
    op = "sign"
    def backward(self, g): return (g.zeros_like(),)


class Recip(Unary):
    op = "recip"
    def backward(self, g):
        o = _t(self.out)
        return (-(g * (o * o)),)


class Relu(Function):
    def forward(self, x):
        self.x = x
        zero = lazy.const_node(0, x.dtype, x.shape)
        return lazy.elementwise("maximum", (x, zero))

    def backward(self, g): return (g * (_t(self.x) > 0),)


class Cast(Function):
    def forward(self, x, dtype):
        self.src_dtype = x.dtype
        return lazy.elementwise("cast", (x,), dtype=dtype)

    def backward(self, g):
        return (g.to(self.src_dtype),) if self.src_dtype.is_float else (None,)


class Contiguous(Function):
    def forward(self, x, copy=False): return lazy.contiguous(x, copy)
    def backward(self, g): return (g,)


# ---- binary ---------------------------------------------------------------------------------
class Add(Function):
    def forward(self, a, b): return lazy.elementwise("add", (a, b))
    def backward(self, g): return g, g


class Sub(Function):
    def forward(self, a, b): return lazy.elementwise("sub", (a, b))
    def backward(self, g): return g, -g


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return lazy.elementwise("mul", (a, b))

    def backward(self, g):
        return (g * _t(self.b) if self.needs_grad[0] else None,
                g * _t(self.a) if self.needs_grad[1] else None)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return lazy.elementwise("div", (a, b))

    def backward(self, g):
        a, b = _t(self.a), _t(self.b)
        return (g / b if self.needs_grad[0] else None,
                -(g * a / (b * b)) if self.needs_grad[1] else None)


class Atan2(Function):
    """``atan2(a, b)``, the angle of the point (b, a); its gradient at the origin is zero, like
    ``torch.angle``'s."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return lazy.elementwise("atan2", (a, b))

    def backward(self, g):
        from .tensor import where
        a, b = _t(self.a), _t(self.b)
        r2 = a * a + b * b
        scale = where(r2 == 0, 0.0, g / where(r2 == 0, 1.0, r2))
        return (scale * b if self.needs_grad[0] else None,
                -scale * a if self.needs_grad[1] else None)


class Maximum(Function):
    op = "maximum"

    def forward(self, a, b):
        self.a, self.b = a, b
        return lazy.elementwise(self.op, (a, b))

    def backward(self, g):
        a, b = _t(self.a), _t(self.b)
        from .tensor import where
        half = where(a == b, g * 0.5, g)
        a_loses, b_loses = (a < b, a > b) if self.op == "maximum" else (a > b, a < b)
        return where(a_loses, 0.0, half), where(b_loses, 0.0, half)


class Minimum(Maximum):
    op = "minimum"


class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = lazy.elementwise("pow", (a, b))
        return self.out

    def backward(self, g):
        from .tensor import where
        a, b, o = _t(self.a), _t(self.b), _t(self.out)
        ga = gb = None
        if self.needs_grad[0]:
            ga = where(b == 0, 0.0, g * b * a.pow(b - 1))
        if self.needs_grad[1]:
            gb = where((a == 0) & (b >= 0), 0.0, g * o * a.log())
        return ga, gb


class Where(Function):
    def forward(self, c, a, b):
        self.c = c
        return lazy.elementwise("where", (c, a, b))

    def backward(self, g):
        from .tensor import where
        c = _t(self.c)
        return (None,
                where(c, g, 0.0) if self.needs_grad[1] else None,
                where(c, 0.0, g) if self.needs_grad[2] else None)


class Compare(Function):
    def forward(self, a, b, op):
        return lazy.elementwise(op, (a, b))


# ---- reductions -----------------------------------------------------------------------------
class Sum(Function):
    def forward(self, x, axes, dtype=None):
        self.shape = x.shape
        return lazy.reduce("sum", x, axes, dtype)

    def backward(self, g):
        return (g.expand(*self.shape),) if g.dtype.is_float else (None,)


class Max(Function):
    """Maximum over axes; the gradient is shared evenly between tied maxima (like torch.amax)."""

    def forward(self, x, axes):
        self.x, self.axes = x, axes
        self.out = lazy.reduce("max", x, axes)
        return self.out

    def backward(self, g):
        x, o = _t(self.x), _t(self.out)
        hit = (x == o.expand(*x.shape)).to(g.dtype)
        count = hit.sum(dim=self.axes, keepdim=True)
        return ((g / count).expand(*x.shape) * hit,)


class Cumsum(Function):
    def forward(self, x, axis):
        self.axis = axis
        return lazy.cumsum(x, axis)

    def backward(self, g):
        return (g.flip(self.axis).cumsum(self.axis).flip(self.axis),)


class Matmul(Function):
    """Batched matrix product of equal-batch operands (broadcasting is done by expand)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return lazy.library(MATMUL, (a, b), a.dtype)

    def backward(self, g):
        a, b = _t(self.a), _t(self.b)
        return (g @ b.transpose(-1, -2) if self.needs_grad[0] else None,
                a.transpose(-1, -2) @ g if self.needs_grad[1] else None)


# ---- movement -------------------------------------------------------------------------------
class Reshape(Function):
    def forward(self, x, shape):
        self.shape = x.shape
        return lazy.movement(x, "reshape", shape)

    def backward(self, g): return (g.reshape(self.shape),)


class Permute(Function):
    def forward(self, x, order):
        self.inv = tuple(sorted(range(len(order)), key=lambda i: order[i]))
        return lazy.movement(x, "permute", order)

    def backward(self, g): return (g.permute(*self.inv),)


class Expand(Function):
    def forward(self, x, shape):
        self.shape = x.shape
        return lazy.movement(x, "expand", shape)

    def backward(self, g):
        axes = tuple(i for i, (a, b) in enumerate(zip(self.shape, g.shape)) if a != b)
        return (g.sum(dim=axes, keepdim=True) if axes else g,)


class Pad(Function):
    def forward(self, x, pads):
        self.bounds = tuple((b, b + s) for (b, _), s in zip(pads, x.shape))
        return lazy.movement(x, "pad", pads)

    def backward(self, g): return (g._shrink(self.bounds),)


class Shrink(Function):
    def forward(self, x, bounds):
        self.pads = tuple((lo, s - hi) for (lo, hi), s in zip(bounds, x.shape))
        return lazy.movement(x, "shrink", bounds)

    def backward(self, g): return (g._pad(self.pads),)


class Flip(Function):
    def forward(self, x, flags):
        self.flags = flags
        return lazy.movement(x, "flip", flags)

    def backward(self, g): return (g._flip(self.flags),)


class Step(Function):
    def forward(self, x, steps):
        self.shape, self.steps = x.shape, steps
        return lazy.movement(x, "step", steps)

    def backward(self, g):
        # put each gradient element back at every steps[d]-th position, zeros between
        for d, (k, s) in enumerate(zip(self.steps, self.shape)):
            if k == 1:
                continue
            n = g.shape[d]
            g = g.unsqueeze(d + 1)
            pads = [(0, 0)] * g.ndim
            pads[d + 1] = (0, k - 1)
            g = g._pad(tuple(pads)).reshape(*g.shape[:d], n * k, *g.shape[d + 2:])
            bounds = [(0, x) for x in g.shape]
            bounds[d] = (0, s)
            g = g._shrink(tuple(bounds))
        return (g,)


class Unfold(Function):
    """Sliding windows along ``dim`` (a view: windows share memory); backward folds them back."""

    def forward(self, x, dim, size, step, dilation):
        self.args, self.length = (dim, size, step, dilation), x.shape[dim]
        return lazy.movement(x, "unfold", (dim, size, step, dilation))

    def backward(self, g):
        from .movement import fold
        dim, size, step, dilation = self.args
        return (fold(g, dim, self.length, step, dilation),)
