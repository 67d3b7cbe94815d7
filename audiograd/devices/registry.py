"""The one place that picks a device: names are parsed here into device objects.

A backend is one folder under ``devices/`` that defines ``DEVICE_CLASS``; it is imported
when its name is first asked for, so ``import audiograd`` loads no GPU library. Adding a
backend means adding its folder and one line to ``BACKENDS``.
"""
from __future__ import annotations

import importlib
import re
from typing import Dict, Optional, Tuple

from .device import Device

BACKENDS = {
    "cpu": "audiograd.devices.cpu.device",
    "cuda": "audiograd.devices.cuda.device",
    "interp": "audiograd.devices.interp.device",
}
HOST = "cpu"
GPU = "cuda"

_NAME = re.compile(r"([a-z]+)(?::(\d+))?")
_devices: Dict[Tuple[str, int], Device] = {}


def parse(name) -> Tuple[str, Optional[int]]:
    """("cuda", 1) for "cuda:1", ("cpu", None) for "cpu"; RuntimeError for unknown names."""
    m = _NAME.fullmatch(str(name))
    if m is None or m.group(1) not in BACKENDS:
        raise RuntimeError(f"unknown device {name!r}: expected one of "
                           + ", ".join(f"'{k}'" for k in BACKENDS) + " (GPUs by number: 'cuda:1')")
    return m.group(1), None if m.group(2) is None else int(m.group(2))


def get_device(name) -> Device:
    """The device object for a name ("cpu", "cuda", "cuda:1") or a device; created on first use,
    which starts its runtime (a missing CuPy or GPU fails here, with a clear RuntimeError)."""
    if isinstance(name, Device):
        return name
    kind, index = parse(name)
    key = (kind, index or 0)
    dev = _devices.get(key)
    if dev is None:
        cls = importlib.import_module(BACKENDS[kind]).DEVICE_CLASS
        if index and not cls.indexed:
            raise RuntimeError(f"device {name!r} is not available: there is one {kind!r} device")
        dev = _devices[key] = cls(key[1])
    return dev


def host() -> Device:
    """The CPU: where numpy data starts and where ``Tensor.numpy()`` results live."""
    return get_device(HOST)


def gpu(index: Optional[int] = None) -> Device:
    """The GPU of that number (``Tensor.cuda()``, ``Module.cuda()``)."""
    return get_device(GPU if index is None else f"{GPU}:{index}")


def default_device() -> Device:
    """Where tensors made from data live when no device is named (``set_default_device``)."""
    from ..config import config
    return get_device(config.default_device or HOST)
