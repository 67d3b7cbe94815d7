"""Devices for tensors: naming them, moving values between them, reading device values back.

A tensor lives where its buffers live, a device object (``devices/``): the CPU, a GPU by
number, or any other registered backend. Constants made without a device follow the tensors
they meet. A device's runtime is imported only when the device is first asked for.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import numpy as np

from .. import dtypes as dt
from ..devices.device import Device
from ..devices.registry import get_device, host
from ..graph import lazy
from ..graph.lazy import LazyNode
from .autograd import Function


def names_a_device(target) -> bool:
    """Whether ``to(target)``'s first argument is a device rather than a dtype (a device object,
    or a string that is no dtype name)."""
    return isinstance(target, Device) or (isinstance(target, str) and target not in dt._BY_NAME)


def check_device(device) -> Optional[Device]:
    """The device object for a name or device (None stays None); RuntimeError if it is unknown
    or unavailable (asking for a GPU starts its runtime, so a missing CuPy or GPU fails here)."""
    return None if device is None else get_device(device)


def set_default_device(device) -> None:
    """Make ``device`` where new tensors live when no device is named, like
    ``torch.set_default_device``. Tensors that already exist stay where they are."""
    from ..config import config
    config.default_device = None if device is None else get_device(device).name


@contextmanager
def using_device(device):
    """Make ``device`` where new tensors live inside a ``with`` block (``set_default_device``
    for a while, like ``with torch.device(...)``)."""
    from ..config import config
    saved = config.default_device
    set_default_device(device)
    try:
        yield get_device(device)
    finally:
        config.default_device = saved


def host_array(node: LazyNode, shape) -> np.ndarray:
    """A new numpy array of a realized node's values, read through its contiguous view."""
    base, view, _ = node.base_view()
    n = int(np.prod(shape, dtype=np.int64))
    buf = base.buffer.reshape(-1)[view.offset:view.offset + n]
    return base.device.to_host(buf).reshape(shape)


def move_node(node: LazyNode, device: Device) -> LazyNode:
    """A realized node on ``device`` holding ``node``'s values (computed now)."""
    from .tensor import Tensor
    values = Tensor._from_node(node).numpy()
    return lazy.buffer_node(device.from_host(values), node.dtype, device)


class ToDevice(Function):
    """Copy to another device; the gradient is copied back."""

    def forward(self, x: LazyNode, device: Device) -> LazyNode:
        self.source = x.device or host()
        return move_node(x, device)

    def backward(self, g):
        return (g.to(self.source),)
