"""A scheduled computation made runnable: compiled kernels over a table of buffer slots.

``Program`` is shared by eager realization (run once, buffers freshly allocated) and by
``audiograd.jit`` (run many times over a planned arena).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..codegen.c_source import render_c
from ..config import config
from ..graph.lazy import LazyNode
from ..graph.view import View
from ..runtime.buffers import pool
from ..runtime.cpu import compiler, pointer_array
from .fuse import CopyStep, KernelStep, MatmulStep, TemplateStep, create_schedule


@dataclass
class Call:
    kind: str                 # "kernel", "matmul" or "copy"
    slots: List[int]          # buffer slots: output first
    name: str = ""
    fn: object = None
    views: Optional[List[View]] = None   # matmul operands' views onto their slots
    ptrs: object = None       # cached pointer array (jit replays)


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
        self.calls: List[Call] = []
        sources = []
        for st in steps:
            if isinstance(st, KernelStep):
                name, src = render_c(st.kernel, config.num_threads)
                out = st.out.srcs[0] if st.out.op == "assign" else st.out
                self.calls.append(Call("kernel", [self._slot(st.out, out)] + [self._slot(n) for n in st.inputs], name))
                sources.append((len(self.calls) - 1, name, src))
            elif isinstance(st, TemplateStep):
                self.calls.append(Call("kernel", [self._slot(st.out)] + [self._slot(n) for n in st.inputs], st.name))
                sources.append((len(self.calls) - 1, st.name, st.source))
            elif isinstance(st, MatmulStep):
                a, b = st.a.base_view(), st.b.base_view()
                self.calls.append(Call("matmul", [self._slot(st.out), self._slot(a[0]), self._slot(b[0])],
                                       "matmul", views=[a[1], b[1]]))
            elif isinstance(st, CopyStep):
                self.calls.append(Call("copy", [self._slot(st.out, st.out.srcs[0]), self._slot(st.src)], "copy"))
        fns = compiler.get_many([(n, s) for _, n, s in sources])
        for (i, _, _), fn in zip(sources, fns):
            self.calls[i].fn = fn
        # slots holding an assign result alias their target's slot
        self.outputs = [self.slot[o.base.id] for o in outputs]

    def _slot(self, node: LazyNode, alias: Optional[LazyNode] = None) -> int:
        """The slot of ``node``; an assign shares the slot of the buffer it writes (``alias``)."""
        self.members[node.id] = node
        if alias is not None:
            self.slot[node.id] = self._slot(alias)
        elif node.id not in self.slot:
            self.slot[node.id] = len(self.nodes)
            self.nodes.append(node)
        return self.slot[node.id]

    def run(self, bufs: List[np.ndarray], cache_pointers: bool = False) -> None:
        debug = config.debug
        for c in self.calls:
            t0 = time.perf_counter() if debug else 0.0
            if c.kind == "kernel":
                if bufs[c.slots[0]].size == 0:
                    continue
                ptrs = c.ptrs if c.ptrs is not None else pointer_array([bufs[s] for s in c.slots])
                if cache_pointers:
                    c.ptrs = ptrs
                c.fn(ptrs)
            elif c.kind == "matmul":
                a = strided(bufs[c.slots[1]], c.views[0])
                b = strided(bufs[c.slots[2]], c.views[1])
                np.matmul(a, b, out=bufs[c.slots[0]])
            else:
                np.copyto(bufs[c.slots[0]], bufs[c.slots[1]])
            if debug:
                print(f"[audiograd] {c.name}: {1e3*(time.perf_counter()-t0):.3f} ms", file=sys.stderr)


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
    """Compute every unrealized base among ``nodes`` and attach the results to the graph."""
    todo = [n for n in nodes if not n.base.realized and n.base.op != "const"]
    if not todo:
        return
    prog = Program(todo)
    bufs = [n.buffer if n.realized else pool.empty(n.shape, n.dtype.np) for n in prog.nodes]
    rec = Recorder.active
    if rec is not None:
        rec.runs.append((prog, bufs))
        rec.fresh.update(id(b) for b, n in zip(bufs, prog.nodes) if not n.realized)
    prog.run(bufs)
    for node in prog.members.values():
        if not node.realized:
            node.buffer = bufs[prog.slot[node.id]]
            node.srcs = ()
