"""The shifted-row matrix product behind 1-D convolutions (``conv_rows``) on the GPU:

    out[n, g*O + o, t] = bias[g*O + o] + sum_{c, k} A[g, o, c, k] * X[n, g*C + c, off[k] + t]

as one cuBLAS product per tap, accumulated into the output. In cuBLAS's column-major terms,
for tap k and one (n, g): out[n, g]^T (T x O, ld T) += X_k^T (T x C, ld L, starting off[k] into
each row) @ A_k^T (C x O). The shifted rows are read in place, so no column buffer is built and
memory stays that of the input and the output. The products are batched over the batch (or over
the groups, when those are fewer) with strided-batched calls. The weight is read through its
view when cuBLAS can; otherwise it is first repacked into a (K, G, O, C) scratch buffer that the
call allocates once, when it is made. The output starts as the bias (or the first tap overwrites
it), and the taps accumulate with beta = 1.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ...config import config
from ...graph.lazy import LazyNode
from ...graph.library_ops import has_addend
from .blas import run
from .gemm_plan import INT_MAX, OP_N, Gemm, blas_layout, split_batch
from .conv_tc import TensorCoreConv, usable

# buffer indices of the products: the output, the weight (view base or scratch), the input rows
OUT, W, X = 0, 1, 2


def conv_gemms(n: int, g: int, o: int, c: int, t: int, lrow: int, offsets: Sequence[int], w_offset: int,
               w_strides: Tuple[int, int, int, int], first_beta: float) -> Optional[List[Gemm]]:
    """The products computing conv rows (sizes as in the module docstring, ``lrow`` the length
    of an input row) for a weight at ``w_offset`` with element strides (g, o, c, k); None when
    cuBLAS cannot read that layout in place. The first tap's products use ``first_beta``."""
    sg, so, sc, sk = w_strides
    lay = blas_layout(c, o, sc, so)
    if lay is None or min(w_strides) < 0 or w_offset < 0:
        return None
    if min(n, g, o, c, t) == 0:
        return []
    if max(t, o, c, lrow) > INT_MAX or lrow < t + max(offsets):
        raise ValueError(f"conv_rows: rows of {lrow} cannot hold {t} outputs at offsets up to {max(offsets)}")
    gemms: List[Gemm] = []
    for j, off in enumerate(offsets):
        beta = first_beta if j == 0 else 1.0
        wk = w_offset + j * sk
        if g <= n:  # a call per group, batched over the batch (the weight does not move)
            for gi in range(g):
                gemms += split_batch(Gemm(OP_N, lay[0], t, o, c, (X, gi * c * lrow + off), lrow, (W, wk + gi * sg),
                                          lay[1], (OUT, gi * o * t), t, g * c * lrow, 0, g * o * t, n, beta))
        else:  # a call per batch element, batched over the groups
            for ni in range(n):
                gemms += split_batch(Gemm(OP_N, lay[0], t, o, c, (X, ni * g * c * lrow + off), lrow, (W, wk), lay[1],
                                          (OUT, ni * g * o * t), t, c * lrow, sg, o * t, g, beta))
    return gemms


class ConvRowsCall:
    """Runs one ``conv_rows`` node over its device buffers [out, weight base, x, (bias), (addend)]:
    on the tensor-core kernel in the reduced precisions where it serves the sizes, else as
    cuBLAS products accumulating onto the bias and addend."""

    def __init__(self, node: LazyNode):
        from .device import get_device
        self.dev = get_device()
        a, x = node.srcs[:2]
        g, o, c, k = a.shape
        n, t = node.shape[0], node.shape[2]
        offsets = list(node.arg[1])
        self.dtype = node.dtype.np
        self.view = a.base_view()[1]
        self.has_addend = has_addend(node)
        self.has_bias = len(node.srcs) - 2 - self.has_addend > 0
        first_beta = 1.0 if self.has_bias or self.has_addend else 0.0
        self.zero_first = c == 0 and not first_beta
        args = (n, g, o, c, t, x.shape[2], offsets)
        self.gemms = conv_gemms(*args, self.view.offset, self.view.strides, first_beta)
        self.packed = None
        self.tc_args = args + (self.view.offset, self.view.strides, self.has_bias, self.has_addend)
        self.tc = None
        if self.gemms is None:
            self.packed = self.dev.empty((k, g, o, c), self.dtype)
            self.gemms = conv_gemms(*args, 0, (o * c, c, 1, g * o * c), first_beta)

    def __call__(self, bufs: List) -> None:
        out, w, x = bufs[:3]
        if out.size == 0:
            return
        if self._tensor_cores(bufs):
            self.tc(bufs)
            return
        cp = self.dev.cp
        if self.packed is not None:
            cp.copyto(self.packed, self.dev.strided(w, self.view).transpose(3, 0, 1, 2))
            w = self.packed
        bias = bufs[3].reshape(1, -1, 1) if self.has_bias else None
        if self.has_addend and bias is not None:
            cp.add(bufs[4], bias, out=out)
        elif self.has_addend or bias is not None:
            cp.copyto(out, bufs[3] if self.has_addend else bias)
        elif self.zero_first:
            out.fill(0)
        run(self.gemms, [out.data.ptr, w.data.ptr, x.data.ptr], self.dtype)

    def _tensor_cores(self, bufs: List) -> bool:
        """Whether this call runs on the TF32 implicit-GEMM kernel (built on first use)."""
        if config.cuda_matmul_precision == "fp32" or self.dtype != np.float32:
            return False
        if self.tc is None:
            o, c, t, lrow, offsets = self.tc_args[2:7]
            # one tap without a bias is a plain product: cuBLAS's own
            wanted = len(offsets) > 1 or self.has_bias or self.has_addend
            self.tc = TensorCoreConv(*self.tc_args) if wanted and usable(o, c, t, lrow, offsets) else False
        ptrs = [b.data.ptr for b in bufs]
        return bool(self.tc) and ptrs[0] % 8 == 0 and ptrs[2] % 16 == 0 and ptrs[-1] % 8 == 0


def conv_rows_call(node: LazyNode, inputs: Sequence[LazyNode]) -> Callable[[List], None]:
    """The GPU implementation of ``node`` (op ``conv_rows``) over [out, *inputs] device buffers,
    ``inputs`` being the weight's base, the input rows, the optional bias and the optional
    addend (``schedule.residual``)."""
    if node.dtype.name not in ("float32", "float64"):
        raise NotImplementedError(f"conv_rows on CUDA takes float32 or float64, got {node.dtype.name}")
    return ConvRowsCall(node)
