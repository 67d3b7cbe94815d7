"""Turning user data (arrays, nested lists, scalars) into graph buffers."""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..graph import lazy
from ..graph.lazy import LazyNode
from ..devices.cpu.buffers import aligned_empty


def node_from_data(data, dtype) -> LazyNode:
    """A buffer node holding a copy of ``data`` with PyTorch's dtype inference (TypeError if unsupported)."""
    if isinstance(data, np.ndarray):
        d = dt.to_dtype(dtype if dtype is not None else data.dtype)
        # a copy, as torch.tensor makes: later writes to ``data`` must not reach the tensor
        arr = aligned_empty(data.shape, d.np)
        np.copyto(arr, data, casting="unsafe")
        return lazy.buffer_node(arr, d)
    if isinstance(data, (np.number, np.bool_)):  # a numpy scalar keeps its dtype, as in torch
        return node_from_data(np.asarray(data), dtype)
    if isinstance(data, (bool, int, float)):
        d = dt.to_dtype(dtype) if dtype is not None else dt.scalar_dtype(data)
        return lazy.buffer_node(np.asarray(data), d)
    if isinstance(data, (list, tuple)):
        from .tensor import Tensor
        if any(isinstance(x, Tensor) for x in _flatten(data)):
            data = [x.numpy() if isinstance(x, Tensor) else x for x in data]
        arr = np.asarray(data)
        if arr.dtype == object:
            raise TypeError("tensor(): nested sequences must be rectangular and numeric")
        if dtype is None:
            kind = arr.dtype.kind
            dtype = dt.bool_ if kind == "b" else dt.int64 if kind in "iu" else dt.default_float \
                if kind == "f" else None
            if dtype is None:
                raise TypeError(f"tensor(): unsupported element type {arr.dtype}")
        return lazy.buffer_node(arr, dt.to_dtype(dtype))
    raise TypeError(f"tensor(): cannot make a tensor from {type(data).__name__}")


def _flatten(seq):
    for x in seq:
        if isinstance(x, (list, tuple)):
            yield from _flatten(x)
        else:
            yield x
