"""Ways to make tensors: from data, filled, ranges, and seeded random numbers."""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..graph import lazy
from .checks import check_numel, check_shape
from .errors import ArgumentError
from .device import check_device
from .tensor import Tensor


def _shape(args, op: str = "tensor creation"):
    """Sizes given as ints or one sequence, checked (ints, non-negative, at most ``MAX_NUMEL`` elements)."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    return check_shape(op, args)


def tensor(data, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A tensor holding a copy of ``data`` (array, nested list or scalar), like ``torch.tensor``."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)


def full(shape, fill_value, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value``; with no device it follows the tensors it meets."""
    device = check_device(device)
    d = dt.to_dtype(dtype) if dtype is not None else dt.scalar_dtype(fill_value)
    shape = _shape((shape,) if isinstance(shape, (int, np.integer)) else tuple(shape), "full")
    t = Tensor._from_node(lazy.const_node(fill_value, d, shape, device=device))
    return t.requires_grad_(True) if requires_grad else t


def zeros(*shape, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A zero-filled tensor of ``shape`` (ints or one sequence), float32 unless ``dtype`` is given."""
    return full(_shape(shape, "zeros"), 0.0, dtype or dt.default_float, requires_grad, device)


def ones(*shape, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A one-filled tensor of ``shape`` (ints or one sequence), float32 unless ``dtype`` is given."""
    return full(_shape(shape, "ones"), 1.0, dtype or dt.default_float, requires_grad, device)


def zeros_like(t: Tensor, dtype=None) -> Tensor:
    """A zero-filled tensor with ``t``'s shape, dtype (unless given) and device."""
    return zeros(*t.shape, dtype=dtype or t.dtype, device=t.node.device)


def ones_like(t: Tensor, dtype=None) -> Tensor:
    """A one-filled tensor with ``t``'s shape, dtype (unless given) and device."""
    return ones(*t.shape, dtype=dtype or t.dtype, device=t.node.device)


def full_like(t: Tensor, fill_value, dtype=None) -> Tensor:
    """A tensor with ``t``'s shape, dtype (unless given) and device, filled with ``fill_value``."""
    return full(t.shape, fill_value, dtype or t.dtype, device=t.node.device)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 for ints, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ArgumentError("arange: step must be nonzero")
    if not all(np.isfinite(float(v)) for v in (start, end, step)):
        raise ArgumentError(f"arange: start, end and step must be finite, got {(start, end, step)}")
    if dtype is None:
        dtype = dt.int64 if all(isinstance(v, (int, np.integer)) for v in (start, end, step)) else dt.default_float
    d = dt.to_dtype(dtype)
    n = max(0, int(np.ceil((end - start) / step)))
    check_numel("arange", (n,))
    values = start + step * np.arange(n, dtype=np.float64 if d.is_float else np.int64)
    return Tensor(values.astype(d.np), dtype=d, requires_grad=requires_grad, device=device)


def linspace(start, end, steps: int, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (``torch.linspace``)."""
    d = dt.to_dtype(dtype or dt.default_float)
    check_shape("linspace", (steps,))
    return Tensor(np.linspace(start, end, steps, dtype=np.float64).astype(d.np), dtype=d,
                  requires_grad=requires_grad, device=device)


def eye(n: int, m=None, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """An ``n`` x ``m`` matrix with ones on the diagonal (``torch.eye``)."""
    d = dt.to_dtype(dtype or dt.default_float)
    check_shape("eye", (n, m if m is not None else n))
    return Tensor(np.eye(n, m if m is not None else n, dtype=d.np), dtype=d, requires_grad=requires_grad, device=device)


class _RNG:
    gen = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Seed the generator behind rand/randn (results repeat for a given seed)."""
    _RNG.gen = np.random.default_rng(seed)


def rand(*shape, dtype=None, requires_grad: bool = False, device=None, generator=None) -> Tensor:
    """Uniform samples in [0, 1)."""
    d = dt.to_dtype(dtype or dt.default_float)
    g = generator if generator is not None else _RNG.gen
    return Tensor(g.random(_shape(shape, "rand"), dtype=np.float64).astype(d.np), dtype=d,
                  requires_grad=requires_grad, device=device)


def randn(*shape, dtype=None, requires_grad: bool = False, device=None, generator=None) -> Tensor:
    """Standard normal samples."""
    d = dt.to_dtype(dtype or dt.default_float)
    g = generator if generator is not None else _RNG.gen
    return Tensor(g.standard_normal(_shape(shape, "randn"), dtype=np.float64).astype(d.np), dtype=d,
                  requires_grad=requires_grad, device=device)
