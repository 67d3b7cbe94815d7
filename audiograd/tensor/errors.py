"""Errors raised where the user called the op."""
from ..errors import ShapeError


def broadcast_shapes(op: str, *shapes):
    """numpy/PyTorch broadcasting of ``shapes``; ShapeError naming ``op`` and the shapes if impossible."""
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(nd):
        dims = {s[len(s) - nd + i] for s in shapes if len(s) - nd + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ShapeError(f"{op}: cannot broadcast shapes " + " and ".join(str(tuple(s)) for s in shapes))
        out.append(dims.pop() if dims else 1)
    from .checks import check_numel
    check_numel(op, out)
    return tuple(out)


def normalize_dim(op: str, dim: int, ndim: int) -> int:
    """``dim`` as an index in 0..ndim-1 (a 0-d tensor takes 0 and -1); IndexError naming ``op`` if out of range."""
    lo, hi = (-ndim, ndim - 1) if ndim else (-1, 0)
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not lo <= dim <= hi:
        raise IndexError(f"{op}: dimension {dim} out of range for a tensor with {ndim} dims (expected {lo}..{hi})")
    return dim % ndim if ndim else 0


class ArgumentError(RuntimeError, ValueError):
    """An argument value the op cannot take (stride 0, negative padding, a repeated dim...).

    A RuntimeError like PyTorch's for the same mistakes, and a ValueError for Python callers."""


class EmptyReductionError(IndexError, ValueError):
    """A max/min over an empty dim: there is no value to return (an IndexError like PyTorch's)."""
