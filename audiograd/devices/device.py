"""The interface every device implements: where buffers live and how kernels run there.

The engine (``engine/program.py``) and everything above it talk to a device only through
these methods; each device folder (``devices/cpu``, ``devices/cuda``, ``devices/interp``)
implements them with everything specific to it: buffers and memory pool, renderer and
compiler, library ops, graph replay. ``devices/registry.py`` turns names such as "cpu",
"cuda" or "cuda:1" into the one device object per name.
"""
from __future__ import annotations

from typing import Callable, List, Sequence

import numpy as np


class Launch:
    """A runnable call over a step's buffers (output first), made by :meth:`Device.compile`."""

    name = ""

    def __call__(self, bufs: List) -> None:
        raise NotImplementedError

    def bind(self, bufs: List) -> Callable[[], None]:
        """A call of this launch over ``bufs`` fixed now, for replays that pass the same buffers
        every time (a device may precompute what it hands the kernel)."""
        return lambda: self(bufs)


class Device:
    """One place where tensors live. Subclasses set ``kind`` and implement the methods below."""

    kind = ""                 # the name before the index: "cpu", "cuda", ...
    indexed = False           # whether the kind has several instances (GPUs by number)
    is_host = False           # buffers are numpy arrays of this process (no copy to read them)
    # dtypes in which 1-D convolutions run on the conv_rows library op (else a BLAS product of
    # gathered columns)
    conv_rows_dtypes: frozenset = frozenset()
    has_fused_adam = False    # whether fused_adam returns a launch
    # rewrites run before scheduling: (bases, consumers, ids to keep) -> {node id: the library
    # node that computes it instead} (see ``schedule.fuse.create_schedule``)
    graph_passes: tuple = ()

    def __init__(self, index: int = 0):
        self.index = index
        # the canonical name: the kind alone for a device that has one instance, else "kind:index"
        self.name = f"{self.kind}:{index}" if self.indexed else self.kind

    # ---- naming ----------------------------------------------------------------------------

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"device(type={self.kind!r}" + (f", index={self.index})" if self.indexed else ")")

    def __eq__(self, other) -> bool:
        if isinstance(other, Device):
            return other is self
        if isinstance(other, str):
            return other == self.name or (self.indexed and self.index == 0 and other == self.kind)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)

    # ---- buffers ---------------------------------------------------------------------------
    def empty(self, shape, dtype):
        """An uninitialized C-contiguous buffer."""
        raise NotImplementedError

    def from_host(self, array: np.ndarray):
        """A new buffer of this device holding a copy of the host array."""
        raise NotImplementedError

    def to_host(self, buf) -> np.ndarray:
        """A host (numpy) array with a copy of the buffer's values."""
        raise NotImplementedError

    def copy(self, dst, src) -> None:
        """Copy ``src`` (same shape, this device) into ``dst``."""
        raise NotImplementedError

    def fill(self, buf, value) -> None:
        """Set every element of ``buf`` to ``value``, ordered with the work already queued."""
        raise NotImplementedError

    def strided(self, buf, view):
        """An array of this device reading ``buf`` through an unmasked view (no copy)."""
        raise NotImplementedError

    def address(self, buf) -> int:
        """The address of the buffer's first element (to align sub-buffers of an arena)."""
        raise NotImplementedError

    def owns(self, buf) -> bool:
        """Whether ``buf`` is a buffer of this device."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait until all queued work has finished."""

    # ---- kernels ---------------------------------------------------------------------------
    def compile(self, steps: Sequence) -> List[Launch]:
        """A launch per scheduled step (``schedule.fuse``'s KernelStep, LibraryStep, MatmulStep,
        CopyStep), compiling what is not cached yet."""
        raise NotImplementedError

    def fused_adam(self, ctype: str, sizes: Sequence[int], **hyper) -> Launch:
        """One launch updating many tensors with Adam's rule (see ``optim.adam``), for devices
        with ``has_fused_adam`` (elsewhere the update runs as tensor ops)."""
        raise NotImplementedError

    def graph_replay(self, launch_all: Callable[[], None]):
        """An object whose call runs ``launch_all`` and which is a context manager for the copies
        around it (a CUDA graph on the GPU), or None when the device has nothing better than
        calling the launches one by one."""
        return None
