"""Reverse-mode differentiation: each op records a Function whose backward is written with
ordinary (lazy) tensor ops, so gradients compile and fuse exactly like forward code."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, List, Optional, Tuple

if TYPE_CHECKING:
    from .tensor import Tensor

_state = {"grad_enabled": True}


def is_grad_enabled() -> bool:
    return _state["grad_enabled"]


class _GradMode:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self.prev = _state["grad_enabled"]
        _state["grad_enabled"] = self.enabled
        return self

    def __exit__(self, *exc):
        _state["grad_enabled"] = self.prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(self.enabled):
                return fn(*args, **kwargs)
        return wrapper


def no_grad():
    """Context manager / decorator: ops inside record no graph (as ``torch.no_grad``)."""
    return _GradMode(False)


def enable_grad():
    return _GradMode(True)


class Function:
    """One differentiable op: ``forward`` builds lazy nodes, ``backward`` returns input grads."""

    def __init__(self, *parents: "Tensor"):
        self.parents = parents
        self.needs_grad = tuple(p.requires_grad for p in parents)

    def forward(self, *nodes, **kwargs):
        raise NotImplementedError

    def backward(self, grad: "Tensor") -> Tuple[Optional["Tensor"], ...]:
        raise NotImplementedError

    @classmethod
    def apply(cls, *parents: "Tensor", **kwargs) -> "Tensor":
        from .tensor import Tensor
        ctx = cls(*parents)
        node = ctx.forward(*[p.node for p in parents], **kwargs)
        track = is_grad_enabled() and any(ctx.needs_grad)
        out = Tensor._from_node(node, requires_grad=track)
        if track:
            out._ctx = ctx
        return out


class _Freed:
    """Stands in for a Function whose graph a backward pass without ``retain_graph`` released;
    the tensor stays a non-leaf, and a second backward through it is an error (as in PyTorch)."""
    parents = ()
    needs_grad = ()


_FREED = _Freed()


def _topo(root: "Tensor") -> List["Tensor"]:
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            for p in t._ctx.parents:
                if p.requires_grad and id(p) not in seen:
                    stack.append((p, False))
    return order


def backward(root: "Tensor", gradient: Optional["Tensor"] = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into every leaf's ``.grad``; computes all leaf grads at once."""
    from .tensor import Tensor, realize_all
    if not root.requires_grad:
        raise RuntimeError("backward: tensor does not require grad and has no grad_fn")
    if gradient is None:
        if root.numel() != 1:
            raise RuntimeError(f"backward: grad can be implicitly created only for scalar outputs, "
                               f"got shape {root.shape}")
        gradient = Tensor.ones_like(root)
    elif not isinstance(gradient, Tensor):
        gradient = Tensor(gradient, dtype=root.dtype, device=root.device)
    if gradient.shape != root.shape:
        raise ValueError(f"backward: gradient shape {gradient.shape} does not match tensor shape {root.shape}")
    grads = {id(root): gradient}
    leaves = []
    order = _topo(root)
    if any(t._ctx is _FREED for t in order):  # checked first: no .grad is touched on error
        raise RuntimeError("backward: trying to backward through the graph a second time; "
                           "pass retain_graph=True to the first backward() to do that")
    with no_grad():
        for t in reversed(order):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if t._ctx is None:
                t.grad = g if t.grad is None else t.grad + g
                leaves.append(t)
                continue
            for p, pg, need in zip(t._ctx.parents, t._ctx.backward(g), t._ctx.needs_grad):
                if not need or pg is None:
                    continue
                assert pg.shape == p.shape, (type(t._ctx).__name__, pg.shape, p.shape)
                grads[id(p)] = pg if id(p) not in grads else grads[id(p)] + pg
            if not retain_graph:
                t._ctx = _FREED
    realize_all([l.grad for l in leaves])
