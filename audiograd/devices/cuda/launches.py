"""Scheduled steps made runnable on a GPU: rendered and compiled kernels, cuBLAS products,
copies, and the library ops (convolution rows on cuBLAS or our tensor-core kernel, real FFTs
on cuFFT, fused attention)."""
from __future__ import annotations

from typing import Callable, List, Sequence

from ...schedule.fuse import CopyStep, KernelStep, LibraryStep, MatmulStep
from ..device import Launch
from .renderer import render_cuda


class OnGpu(Launch):
    """Runs ``fn`` over the buffers with its GPU current (a no-op switch on one-GPU machines)."""

    def __init__(self, dev, fn: Callable[[List], None], name: str):
        self.dev, self.fn, self.name = dev, fn, name
        self.switch = dev.count > 1

    def __call__(self, bufs: List) -> None:
        if self.switch:
            with self.dev.gpu:
                self.fn(bufs)
        else:
            self.fn(bufs)


class _Kernel:
    def __init__(self):
        self.kernel = None

    def __call__(self, bufs: List) -> None:
        if bufs[0].size:
            self.kernel(bufs)


class _Matmul:
    def __init__(self, dev, views):
        self.dev, self.views = dev, views

    def __call__(self, bufs: List) -> None:
        dev = self.dev
        dev.matmul(bufs[0], dev.strided(bufs[1], self.views[0]), dev.strided(bufs[2], self.views[1]))


def _library(node, inputs) -> Callable[[List], None]:
    if node.op == "conv_rows":
        from .conv import conv_rows_call
        return conv_rows_call(node, inputs)
    if node.op in ("rfft", "rfft_adjoint"):
        from .fft import fft_call
        return fft_call(node, inputs)
    if node.op == "attention":
        from .attention import attention_call
        return attention_call(node, inputs)
    raise NotImplementedError(f"{node.op}: this library op has no CUDA version yet; run it on the CPU (.to('cpu'))")


def compile_steps(dev, steps: Sequence) -> List[Launch]:
    """A launch per step; the kernels among them are compiled (or found in the cache) together."""
    launches: List[Launch] = []
    kernels = []  # (call, name, source, launch configuration)
    for st in steps:
        if isinstance(st, KernelStep):
            name, src, config = render_cuda(st.kernel)
            call = _Kernel()
            kernels.append((call, name, src, config))
        elif isinstance(st, LibraryStep):
            name, call = st.node.op, _library(st.node, st.inputs)
        elif isinstance(st, MatmulStep):
            name, call = "matmul", _Matmul(dev, [st.a.base_view()[1], st.b.base_view()[1]])
        elif isinstance(st, CopyStep):
            name, call = "copy", lambda bufs: dev.copy(bufs[0], bufs[1])
        else:
            raise TypeError(f"the GPU cannot run a {type(st).__name__}")
        launches.append(OnGpu(dev, call, name))
    for (call, _, _, _), kernel in zip(kernels, dev.get_many([(n, s, c) for _, n, s, c in kernels])):
        call.kernel = kernel
    return launches
