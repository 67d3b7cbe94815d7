"""The interpreter device: numpy buffers, and every scheduled step run by numpy.

Kernels are not compiled: ``interpreter`` evaluates each one's expression tree over whole
arrays with the C renderer's semantics, and ``library`` runs products, convolutions and FFTs
with numpy. Slow, but short and independent of any compiler: a reference to check the other
devices against (the whole test suite runs on it with ``pytest --device interp``).
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ...codegen.c_source import kernel_name
from ...dtypes import float32, float64
from ...graph.kernel_ir import Kernel
from ...schedule.fuse import CopyStep, KernelStep, LibraryStep, MatmulStep
from ..device import Launch
from ..host_arrays import HostArrayDevice
from .interpreter import run_kernel
from .library import CopyLaunch, LibraryLaunch, MatmulLaunch


class KernelLaunch(Launch):
    """One fused kernel, evaluated by the interpreter at every call."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.name = "interp_" + kernel_name(kernel)

    def __call__(self, bufs: List) -> None:
        run_kernel(self.kernel, bufs)


class InterpDevice(HostArrayDevice):
    kind = "interp"
    has_fused_adam = False
    conv_rows_dtypes = frozenset({float32, float64})
    graph_passes = ()

    # ---- buffers ---------------------------------------------------------------------------
    def empty(self, shape, dtype):
        return np.empty(shape, dtype)

    def from_host(self, array: np.ndarray):
        return np.array(array, copy=True, order="C")

    # ---- kernels ---------------------------------------------------------------------------
    def compile(self, steps: Sequence) -> List[Launch]:
        return [self._launch(st) for st in steps]

    @staticmethod
    def _launch(st) -> Launch:
        if isinstance(st, KernelStep):
            return KernelLaunch(st.kernel)
        if isinstance(st, LibraryStep):
            return LibraryLaunch(st.node, st.inputs)
        if isinstance(st, MatmulStep):
            return MatmulLaunch(st.a.base_view()[1], st.b.base_view()[1])
        if isinstance(st, CopyStep):
            return CopyLaunch()
        raise TypeError(f"the interpreter cannot run a {type(st).__name__}")


DEVICE_CLASS = InterpDevice
