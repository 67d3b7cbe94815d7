"""A scheduled computation made runnable: a device's launches over a table of buffer slots.

``Program`` is shared by eager realization (run once, buffers freshly allocated) and by
``audiograd.jit`` (run many times over a planned arena). Everything specific to a device
(rendering, compiling, allocating, launching) is asked of its ``Device`` object.
"""
from __future__ import annotations

import copy
import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from ..config import config
from ..devices.device import Device, Launch
from ..devices.registry import default_device
from ..graph.lazy import LazyNode, common_device
from ..schedule.fuse import create_schedule


@dataclass
class Call:
    slots: List[int]                   # buffer slots: output first
    launch: Launch
    bound: Optional[Callable[[], None]] = None   # the launch over fixed buffers (jit replays)

    @property
    def name(self) -> str:
        return self.launch.name


class Program:
    def __init__(self, outputs: Sequence[LazyNode]):
        self.device: Device = common_device(outputs) or default_device()
        steps = create_schedule(list(outputs), self.device.graph_passes)
        self.nodes: List[LazyNode] = []
        self.slot: Dict[int, int] = {}
        self.members: Dict[int, LazyNode] = {}
        self.meta: List[tuple] = []          # (shape, numpy dtype) per slot
        self.slot_device: List[Device] = []
        slots = []
        for st in steps:
            written = st.out.srcs[0] if st.out.op == "assign" else None  # an assign writes its target
            slots.append([self._slot(st.out, written)] + [self._slot(n) for n in st.inputs])
            self._check_devices(slots[-1])
        self.calls = [Call(s, launch) for s, launch in zip(slots, self.device.compile(steps))]

    def _check_devices(self, slots: List[int]) -> None:
        for s in slots:
            if self.slot_device[s] is not self.device:
                raise RuntimeError(f"expected all tensors to be on the same device, but a step on "
                                   f"{self.device.name!r} reads a tensor on {self.slot_device[s].name!r}: "
                                   f"move it with .to({self.device.name!r}) first")

    @classmethod
    def of_launch(cls, device: Device, launch: Launch, n_buffers: int) -> "Program":
        """A program of one hand-written launch over ``n_buffers`` caller-provided buffers, for
        work that is not a lazy graph (a fused optimizer step): ``run`` it, or ``record`` it."""
        prog = cls.__new__(cls)
        prog.nodes, prog.slot, prog.members, prog.meta = [], {}, {}, [None] * n_buffers
        prog.slot_device, prog.device = [device] * n_buffers, device
        prog.calls = [Call(list(range(n_buffers)), launch)]
        return prog

    def record_and_run(self, bufs: List) -> None:
        """Run over ``bufs``; inside a ``jit`` capture, also record the run so replays repeat it
        (on a copy of this program: the capture owns what it records and binds its buffers)."""
        prog = self
        if Recorder.active is not None:
            prog = copy.copy(self)
            prog.calls = [dataclasses.replace(c, bound=None) for c in self.calls]
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
            self.slot_device.append(node.device or self.device)
        return self.slot[node.id]

    def run(self, bufs: List, bind: bool = False, after=None) -> None:
        """Run every call over ``bufs`` (one buffer per slot). A None slot gets a fresh buffer
        when first used. With ``bind``, each call is bound to its buffers on the first run and
        later runs replay the bound calls (the buffers must stay the same). ``after(i)`` is
        called once call ``i`` has finished."""
        debug = config.debug
        for i, c in enumerate(self.calls):
            t0 = time.perf_counter() if debug else 0.0
            if c.bound is not None:
                c.bound()
            else:
                for s in c.slots:
                    if bufs[s] is None:
                        bufs[s] = self.slot_device[s].empty(*self.meta[s])
                if bind:
                    c.bound = c.launch.bind([bufs[s] for s in c.slots])
                    c.bound()
                else:  # no name holds the list: buffers freed by ``after`` are gone at once
                    c.launch([bufs[s] for s in c.slots])
            if debug:
                self.device.synchronize()
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
    bufs: List = [n.buffer if n.realized else None for n in prog.nodes]
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
