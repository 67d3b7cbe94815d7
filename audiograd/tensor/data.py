"""Turning user data (arrays, nested lists, scalars) into graph buffers."""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..graph import lazy
from ..graph.lazy import LazyNode


def node_from_data(data, dtype, host) -> LazyNode:
    """A buffer node of the ``host`` device holding a copy of ``data`` with PyTorch's dtype
    inference (TypeError if unsupported)."""
    if isinstance(data, np.ndarray):
        d = dt.to_dtype(dtype if dtype is not None else data.dtype)
        # a copy, as torch.tensor makes: later writes to ``data`` must not reach the tensor
        arr = host.empty(data.shape, d.np)
        np.copyto(arr, data, casting="unsafe")
        return lazy.buffer_node(arr, d, host)
    if isinstance(data, (np.number, np.bool_)):  # a numpy scalar keeps its dtype, as in torch
        return node_from_data(np.asarray(data), dtype, host)
    if isinstance(data, (bool, int, float)):
        d = dt.to_dtype(dtype) if dtype is not None else dt.scalar_dtype(data)
        return _host_buffer(np.asarray(data), d, host)
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
        return _host_buffer(arr, dt.to_dtype(dtype), host)
    raise TypeError(f"tensor(): cannot make a tensor from {type(data).__name__}")


def _host_buffer(array: np.ndarray, dtype, host) -> LazyNode:
    # ascontiguousarray turns a 0-d array into shape (1,): keep the caller's shape
    arr = np.ascontiguousarray(array, dtype=dtype.np).reshape(np.shape(array))
    return lazy.buffer_node(arr, dtype, host)


def _flatten(seq):
    for x in seq:
        if isinstance(x, (list, tuple)):
            yield from _flatten(x)
        else:
            yield x
