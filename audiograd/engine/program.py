"""A scheduled computation made runnable: compiled kernels over a table of buffer slots.

``Program`` is shared by eager realization (run once, buffers freshly allocated) and by
``audiograd.jit`` (run many times over a planned arena).
"""
from __future__ import annotations

import copy
import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..codegen.c_source import render_c
from ..devices.cuda.renderer import render_cuda
from ..config import config
from ..graph.lazy import LazyNode, common_device
from ..graph.view import View
from ..devices.cpu.buffers import pool
from ..devices.cpu.kernels import PointerTable, compiler, pointer_array
from ..schedule.fuse import CopyStep, KernelStep, MatmulStep, TemplateStep, create_schedule


@dataclass
class Call:
    kind: str                 # "kernel", "matmul", "copy", or their "cuda_" versions
    slots: List[int]          # buffer slots: output first
    name: str = ""
    fn: object = None
    views: Optional[List[View]] = None   # matmul operands' views onto their slots
    ptrs: object = None       # cached pointer array (jit replays)
    table: object = None      # PointerTable refreshed per run (hand-written kernels)


def strided(buf: np.ndarray, view: View) -> np.ndarray:
    """A numpy array reading ``buf`` through an unmasked ``view``."""
    it = buf.itemsize
    return np.ndarray(view.shape, buf.dtype, buffer=buf, offset=view.offset * it,
                      strides=tuple(s * it for s in view.strides))


class Program:
    def __init__(self, outputs: Sequence[LazyNode]):
        steps = create_schedule(list(outputs))
        self.nodes: List[LazyNode] = []
        self.slot: Dict[int, int] = {}
        self.members: Dict[int, LazyNode] = {}
        self.meta: List[tuple] = []          # (shape, numpy dtype) per slot
        self.slot_device: List[str] = []     # "cpu" or "cuda" per slot
        self.default_device = common_device(outputs) or config.default_device
        self.calls: List[Call] = []
        sources, cuda_sources = [], []
        for st in steps:
            dev = self._device(st.out)
            if isinstance(st, KernelStep):
                out = st.out.srcs[0] if st.out.op == "assign" else st.out
                slots = [self._slot(st.out, out)] + [self._slot(n) for n in st.inputs]
                if dev == "cuda":
                    name, src, launch = render_cuda(st.kernel)
                    self.calls.append(Call("cuda_kernel", slots, name))
                    cuda_sources.append((len(self.calls) - 1, name, src, launch))
                    continue
                name, src = render_c(st.kernel, config.num_threads)
                self.calls.append(Call("kernel", slots, name))
                sources.append((len(self.calls) - 1, name, src))
            elif isinstance(st, TemplateStep):
                slots = [self._slot(st.out)] + [self._slot(n) for n in st.inputs]
                if dev == "cuda":
                    from ..devices.cuda.library import library_call
                    self.calls.append(Call("cuda_library", slots, st.name, library_call(st.out, st.inputs)))
                else:
                    self.calls.append(Call("kernel", slots, st.name))
                    sources.append((len(self.calls) - 1, st.name, st.source()))
            elif isinstance(st, MatmulStep):
                a, b = st.a.base_view(), st.b.base_view()
                self.calls.append(Call("matmul" if dev == "cpu" else "cuda_matmul",
                                       [self._slot(st.out), self._slot(a[0]), self._slot(b[0])],
                                       "matmul", views=[a[1], b[1]]))
            elif isinstance(st, CopyStep):
                self.calls.append(Call("copy" if dev == "cpu" else "cuda_copy",
                                       [self._slot(st.out, st.out.srcs[0]), self._slot(st.src)], "copy"))
            self._check_devices(self.calls[-1], dev)
        fns = compiler.get_many([(n, s) for _, n, s in sources])
        for (i, _, _), fn in zip(sources, fns):
            self.calls[i].fn = fn
        if cuda_sources:
            for i, _, _, _ in cuda_sources:
                self._check_devices(self.calls[i], "cuda")
            fns = _cuda().get_many([(n, s, l) for _, n, s, l in cuda_sources])
            for (i, _, _, _), fn in zip(cuda_sources, fns):
                self.calls[i].fn = fn

    def _device(self, node: LazyNode) -> str:
        return node.device or self.default_device

    def _check_devices(self, call: Call, dev: str) -> None:
        for s in call.slots:
            if self.slot_device[s] != dev:
                raise RuntimeError(f"expected all tensors to be on the same device, but {call.name} on {dev!r} "
                                   f"reads a tensor on {self.slot_device[s]!r}: move it with .to({dev!r}) first")

    @classmethod
    def from_kernel(cls, name: str, source: str, n_buffers: int) -> "Program":
        """A program of one hand-written kernel over ``n_buffers`` caller-provided buffers, for
        work that is not a lazy graph (a fused optimizer step): ``run`` it, or ``record`` it."""
        prog = cls.__new__(cls)
        prog.nodes, prog.slot, prog.members, prog.meta = [], {}, {}, [None] * n_buffers
        prog.slot_device, prog.default_device = ["cpu"] * n_buffers, "cpu"
        prog.calls = [Call("kernel", list(range(n_buffers)), name, compiler.get_many([(name, source)])[0],
                           table=PointerTable(n_buffers))]
        return prog

    @classmethod
    def from_cuda_call(cls, name: str, fn, n_buffers: int) -> "Program":
        """A GPU program of one call that hands its ``n_buffers`` caller-provided buffers to
        ``fn`` (hand-written launches, such as a fused optimizer step)."""
        prog = cls.__new__(cls)
        prog.nodes, prog.slot, prog.members, prog.meta = [], {}, {}, [None] * n_buffers
        prog.slot_device, prog.default_device = ["cuda"] * n_buffers, "cuda"
        prog.calls = [Call("cuda_library", list(range(n_buffers)), name, fn)]
        return prog

    def record_and_run(self, bufs: List[np.ndarray]) -> None:
        """Run over ``bufs``; inside a ``jit`` capture, also record the run so replays repeat it
        (on a copy of this program: the capture owns what it records and caches its pointers)."""
        prog = self
        if Recorder.active is not None:
            prog = copy.copy(self)
            prog.calls = [dataclasses.replace(c, ptrs=None, table=None) for c in self.calls]
            Recorder.active.runs.append((prog, list(bufs)))
        prog.run(bufs)

    def _slot(self, node: LazyNode, alias: Optional[LazyNode] = None) -> int:
        """The slot of ``node``; an assign shares the slot of the buffer it writes (``alias``)."""
        self.members[node.id] = node
        if alias is not None:
            self.slot[node.id] = self._slot(alias)
        elif node.id not in self.slot:
            self.slot[node.id] = len(self.nodes)
            self.nodes.append(node)
            self.meta.append((node.shape, node.dtype.np))
            self.slot_device.append(self._device(node))
        return self.slot[node.id]

    def run(self, bufs: List[Optional[np.ndarray]], cache_pointers: bool = False, after=None) -> None:
        """Run every call over ``bufs`` (one array per slot). A None slot gets a pooled buffer
        when first used; ``after(i)`` is called once call ``i`` has finished."""
        debug = config.debug
        for i, c in enumerate(self.calls):
            for s in c.slots:
                if bufs[s] is None:
                    bufs[s] = pool.empty(*self.meta[s]) if self.slot_device[s] == "cpu" else \
                        _cuda().empty(*self.meta[s])
            t0 = time.perf_counter() if debug else 0.0
            if c.kind == "kernel":
                if bufs[c.slots[0]].size:
                    ptrs = c.ptrs
                    if ptrs is None:
                        args = [bufs[s] for s in c.slots]
                        ptrs = c.table.update(args) if c.table is not None else pointer_array(args)
                    if cache_pointers:
                        c.ptrs = ptrs
                    c.fn(ptrs)
            elif c.kind == "matmul":
                a = strided(bufs[c.slots[1]], c.views[0])
                b = strided(bufs[c.slots[2]], c.views[1])
                np.matmul(a, b, out=bufs[c.slots[0]])
            elif c.kind == "copy":
                np.copyto(bufs[c.slots[0]], bufs[c.slots[1]])
            else:
                _run_cuda_call(c, bufs)
            if debug:
                print(f"[audiograd] {c.name}: {1e3*(time.perf_counter()-t0):.3f} ms", file=sys.stderr)
            if after is not None:
                after(i)

    def last_uses(self) -> List[List[int]]:
        """For each call, the slots no later call touches."""
        last = {}
        for i, c in enumerate(self.calls):
            for s in c.slots:
                last[s] = i
        out: List[List[int]] = [[] for _ in self.calls]
        for s, i in last.items():
            out[i].append(s)
        return out


def _cuda():
    from ..devices.cuda.device import get_device
    return get_device()


def _run_cuda_call(c: Call, bufs: List) -> None:
    """Run one call of a CUDA program on the current stream."""
    if c.kind == "cuda_kernel":
        if bufs[c.slots[0]].size:
            c.fn([bufs[s] for s in c.slots])
    elif c.kind == "cuda_matmul":
        dev = _cuda()
        dev.matmul(bufs[c.slots[0]], dev.strided(bufs[c.slots[1]], c.views[0]), dev.strided(bufs[c.slots[2]], c.views[1]))
    elif c.kind == "cuda_library":
        c.fn([bufs[s] for s in c.slots])
    elif c.kind == "cuda_copy":
        _cuda().copy(bufs[c.slots[0]], bufs[c.slots[1]])
    else:
        raise RuntimeError(f"unknown call kind {c.kind!r}")


class Recorder:
    """Collects every program run while active (how ``jit`` captures a function)."""

    active: Optional["Recorder"] = None

    def __init__(self):
        self.runs = []        # (program, buffers) in execution order
        self.fresh = set()    # ids of buffers allocated by those runs

    def __enter__(self):
        if Recorder.active is not None:
            raise RuntimeError("jit: capturing inside another capture is not supported")
        Recorder.active = self
        return self

    def __exit__(self, *exc):
        Recorder.active = None


def realize(nodes: Sequence[LazyNode]) -> None:
    """Compute every unrealized base among ``nodes`` and attach the results to the graph.

    Each result is attached to its node as soon as its kernel has run, and the program drops
    its own reference to a buffer after the buffer's last use, so intermediates nobody else
    holds return to the pool while the program is still running.
    """
    todo = [n for n in nodes if not n.base.realized and n.base.op != "const"]
    if not todo:
        return
    prog = Program(todo)
    bufs: List[Optional[np.ndarray]] = [n.buffer if n.realized else None for n in prog.nodes]
    rec = Recorder.active
    if rec is not None:  # a capture keeps every buffer: replays reuse them
        rec.runs.append((prog, bufs))
        pre = {s for s, n in enumerate(prog.nodes) if n.realized}
        prog.run(bufs)
        rec.fresh.update(id(b) for s, b in enumerate(bufs) if s not in pre)
        for node in prog.members.values():
            if not node.realized:
                node.buffer = bufs[prog.slot[node.id]]
                node.srcs = ()
                node.device = node.device or prog.slot_device[prog.slot[node.id]]
        return
    produced: List[List[LazyNode]] = [[] for _ in prog.calls]
    writer = {c.slots[0]: i for i, c in enumerate(prog.calls)}
    for node in prog.members.values():
        if not node.realized:
            produced[writer[prog.slot[node.id]]].append(node)
    slots, frees, devices = prog.slot, prog.last_uses(), prog.slot_device
    prog.nodes = prog.members = None  # from here on only the graph and the user hold nodes
    del todo

    def after(i: int) -> None:
        for node in produced[i]:
            node.buffer = bufs[slots[node.id]]
            node.srcs = ()
            if node.device is None:  # made of constants alone: it now lives where it was computed
                node.device = devices[slots[node.id]]
        produced[i] = None
        for s in frees[i]:
            bufs[s] = None

    prog.run(bufs, after=after)
