"""Devices for tensors: naming them, moving values between them, reading device values back.

A tensor lives where its buffers live: "cpu" (numpy arrays, C kernels) or "cuda" (CuPy
arrays, CUDA kernels). Constants made without a device follow the tensors they meet. The CUDA
runtime is imported only when "cuda" is first asked for.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..graph import lazy
from ..graph.lazy import LazyNode
from ..graph.view import View
from .autograd import Function

DEVICES = ("cpu", "cuda")


def check_device(device) -> Optional[str]:
    """Normalize a device name ("cpu", "cuda", "cuda:0", or None for the default) or raise.

    Asking for "cuda" starts the CUDA runtime, so a missing CuPy or GPU fails here, clearly.
    """
    if device is None:
        return None
    name = str(device)
    if name == "cpu":
        return "cpu"
    if name in ("cuda", "cuda:0"):
        from ..devices.cuda.device import get_device
        get_device()
        return "cuda"
    if name.startswith("cuda:"):
        raise RuntimeError(f"device {name!r} is not available: audiograd uses one GPU, 'cuda' (device 0)")
    raise RuntimeError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")


def set_default_device(device) -> None:
    """Make ``device`` ("cpu" or "cuda") where new tensors live when no device is named, like
    ``torch.set_default_device``. Tensors that already exist stay where they are."""
    from ..config import config
    config.default_device = check_device(device) or "cpu"


def is_device_name(target) -> bool:
    """True when ``target`` names a device rather than a dtype."""
    return isinstance(target, str) and (target in DEVICES or target.startswith("cuda:"))


def host_array(buffer, view: View, shape) -> np.ndarray:
    """A new numpy array of a device buffer read through a contiguous ``view``."""
    from ..devices.cuda.device import get_device
    n = int(np.prod(shape, dtype=np.int64))
    return get_device().to_host(buffer.reshape(-1)[view.offset:view.offset + n]).reshape(shape)


def move_node(node: LazyNode, device: str) -> LazyNode:
    """A realized node on ``device`` holding ``node``'s values (computed now)."""
    from .tensor import Tensor
    host = Tensor._from_node(node).numpy()
    if device == "cpu":
        return lazy.buffer_node(host, node.dtype)
    from ..devices.cuda.device import get_device
    return lazy.device_buffer_node(get_device().from_host(host), node.dtype, device)


class ToDevice(Function):
    """Copy to another device; the gradient is copied back."""

    def forward(self, x: LazyNode, device: str) -> LazyNode:
        self.source = x.device or "cpu"
        return move_node(x, device)

    def backward(self, g):
        return (g.to(self.source),)
