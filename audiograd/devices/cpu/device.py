"""The CPU device: numpy buffers from the pool, C kernels compiled through the disk cache,
numpy's BLAS for products."""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ...codegen.c_source import render_c
from ...config import config
from ...dtypes import float32
from ...schedule.fuse import CopyStep, KernelStep, LibraryStep, MatmulStep
from ..device import Launch
from ..host_arrays import HostArrayDevice, strided
from .adam_template import render_adam
from .buffers import pool
from .kernels import PointerTable, compiler, pointer_array
from .library import SOURCES
from .prelude import PRELUDE


class KernelLaunch(Launch):
    """A compiled C kernel, called with a table of its buffers' addresses. ``reuse_table``
    keeps the table between calls and rewrites only the entries whose buffer changed (a
    fused optimizer step passes the same parameters every time, and new gradients only)."""

    def __init__(self, name: str, n: int, reuse_table: bool = False):
        self.name, self.fn = name, None
        self.table = PointerTable(n) if reuse_table else None

    def __call__(self, bufs: List) -> None:
        if bufs[0].size:
            self.fn(self.table.update(bufs) if self.table is not None else pointer_array(bufs))

    def bind(self, bufs: List):
        if not bufs[0].size:
            return lambda: None
        fn, ptrs = self.fn, pointer_array(bufs)
        return lambda: fn(ptrs)


class MatmulLaunch(Launch):
    name = "matmul"

    def __init__(self, views):
        self.views = views

    def __call__(self, bufs: List) -> None:
        np.matmul(strided(bufs[1], self.views[0]), strided(bufs[2], self.views[1]), out=bufs[0])

    def bind(self, bufs: List):
        out, a, b = bufs[0], strided(bufs[1], self.views[0]), strided(bufs[2], self.views[1])
        return lambda: np.matmul(a, b, out=out)


class CopyLaunch(Launch):
    name = "copy"

    def __call__(self, bufs: List) -> None:
        np.copyto(bufs[0], bufs[1])


class CpuDevice(HostArrayDevice):
    kind = "cpu"
    has_fused_adam = True
    conv_rows_dtypes = frozenset({float32})

    # ---- buffers ---------------------------------------------------------------------------
    def empty(self, shape, dtype):
        return pool.empty(shape, dtype)

    def from_host(self, array: np.ndarray):
        out = pool.empty(np.shape(array), array.dtype)
        np.copyto(out, array)
        return out

    # ---- kernels ---------------------------------------------------------------------------
    def compile(self, steps: Sequence) -> List[Launch]:
        launches: List[Launch] = []
        sources = []  # (launch, name, source) compiled together, in parallel
        for st in steps:
            if isinstance(st, KernelStep):
                name, src = render_c(st.kernel, config.num_threads)
                src = PRELUDE + "\n" + src
            elif isinstance(st, LibraryStep):
                name, src = SOURCES[st.node.op](st.node)
            elif isinstance(st, MatmulStep):
                launches.append(MatmulLaunch([st.a.base_view()[1], st.b.base_view()[1]]))
                continue
            elif isinstance(st, CopyStep):
                launches.append(CopyLaunch())
                continue
            else:
                raise TypeError(f"the CPU cannot run a {type(st).__name__}")
            launches.append(KernelLaunch(name, 1 + len(st.inputs)))
            sources.append((launches[-1], name, src))
        for (launch, _, _), fn in zip(sources, compiler.get_many([(n, s) for _, n, s in sources])):
            launch.fn = fn
        return launches

    def fused_adam(self, ctype: str, sizes: Sequence[int], **hyper) -> Launch:
        name = f"adam_step_{ctype}_{len(sizes)}"
        source = render_adam(name, ctype, sizes, nthreads=config.num_threads, **hyper)
        launch = KernelLaunch(name, len(sizes) * (5 + bool(hyper["amsgrad"])) + 1, reuse_table=True)
        launch.fn = compiler.get_many([(name, source)])[0]
        return launch


DEVICE_CLASS = CpuDevice
