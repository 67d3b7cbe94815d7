"""Library ops on the GPU: each scheduled template step (convolution rows, real FFTs) becomes a
callable over the call's device buffers, output first, that runs the op with cuBLAS / cuFFT or
our own kernels on the current stream."""
from __future__ import annotations

from typing import Callable, List, Sequence

from ...graph.lazy import LazyNode


def library_call(node: LazyNode, inputs: Sequence[LazyNode]) -> Callable[[List], None]:
    """The GPU implementation of the library op ``node`` reading ``inputs``."""
    if node.op == "conv_rows":
        from .conv import conv_rows_call
        return conv_rows_call(node, inputs)
    if node.op in ("rfft", "rfft_adjoint"):
        from .fft import fft_call
        return fft_call(node, inputs)
    raise NotImplementedError(f"{node.op}: this library op has no CUDA version yet; run it on the CPU (.to('cpu'))")
