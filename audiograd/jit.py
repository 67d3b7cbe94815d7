"""``audiograd.jit``: capture a function of tensors once, then replay its kernels.

The first call for a given signature (shapes and dtypes of the tensor arguments, values of
the others) runs the function on placeholder inputs and records every kernel it launches,
including those of ``backward()`` and in-place ``assign`` updates. Intermediate buffers that
nothing outside the function can see are packed into one arena by lifetime. Later calls copy
the new inputs into the placeholders and replay the recorded kernels: no Python-level graph
building, scheduling or compiling. On the GPU the replayed launches become one CUDA graph.
Python control flow that depends on tensor values is frozen at capture time, as with CUDA
graphs or ``torch.jit.trace``.
"""
from __future__ import annotations

import functools
import gc
import weakref
from typing import Callable, Dict, List, Tuple

import numpy as np

from .graph import lazy
from .schedule.memory import ALIGN, plan_arena
from .engine.program import Recorder
from .tensor import Tensor


class CapturedProgram:
    """One recorded signature: placeholders, recorded runs, and where the outputs live."""

    def __init__(self, fn: Callable, args: tuple, kwargs: dict):
        self.placeholders: List[Tuple[int, object]] = []
        call_args = list(args)
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                buf = a.device.empty(a.shape, a.dtype.np)
                _copy_in(buf, a)
                node = lazy.buffer_node(buf, a.dtype, a.device)
                self.placeholders.append((i, buf))
                call_args[i] = Tensor._from_node(node, requires_grad=a.requires_grad)
        from .engine.program import realize
        realize([n for n in lazy.PENDING_ASSIGNS if not n.realized])  # earlier writes are not part of fn
        with Recorder() as rec:
            result = fn(*call_args, **kwargs)
            self.single = isinstance(result, Tensor)
            outs = [result] if self.single else list(result) if isinstance(result, (tuple, list)) else None
            if outs is None or not all(isinstance(o, Tensor) for o in outs):
                raise TypeError("jit: the function must return a Tensor or a tuple/list of Tensors")
            fixed = []
            for o in outs:
                node = o.node
                if node.base.op == "const" or (node.is_view and node.view.mask is not None):
                    node = lazy.contiguous(node)
                fixed.append(node)
            realize(fixed + [n for n in lazy.PENDING_ASSIGNS if not n.realized])
        self.outputs = [(n.base.buffer, n.base_view()[1], n.dtype, n.base.device) for n in fixed]
        first_results = [self._output(i) for i in range(len(fixed))]
        self.first_results = first_results
        self.runs = self._plan(rec)
        devices = {d for prog, _ in self.runs for d in prog.slot_device}
        # a device with a graph facility replays all launches at once (when they all run there)
        self.graph = devices.pop().graph_replay(self._launch_all) if len(devices) == 1 else None
        del result, outs, fixed, call_args

    def _plan(self, rec: Recorder):
        """Move dead intermediate buffers into one arena, reused by lifetime."""
        keep = {id(buf) for _, buf in self.placeholders} | {id(b) for b, _, _, _ in self.outputs}
        alive_refs: Dict[int, list] = {}
        spans: Dict[int, list] = {}
        arrays: Dict[int, np.ndarray] = {}
        device_of: Dict[int, object] = {}
        for step, (prog, bufs) in enumerate(rec.runs):
            for buf, device in zip(bufs, prog.slot_device):
                arrays[id(buf)] = buf
                device_of[id(buf)] = device
            for node in prog.members.values():
                alive_refs.setdefault(id(bufs[prog.slot[node.id]]), []).append(weakref.ref(node))
            for ci, call in enumerate(prog.calls):
                t = (step, ci)
                for s in call.slots:
                    span = spans.setdefault(id(bufs[s]), [t, t])
                    span[1] = t
        for prog, _ in rec.runs:  # replays need only the calls; let the graph go
            prog.nodes, prog.members, prog.slot = [], {}, {}
        gc.collect()
        order = {}
        for step, (prog, _) in enumerate(rec.runs):
            for ci in range(len(prog.calls)):
                order[(step, ci)] = len(order)
        movable = {}
        for key in rec.fresh:
            if key in keep or key not in spans or any(r() is not None for r in alive_refs.get(key, [])):
                continue
            buf = arrays[key]
            movable[key] = (buf.nbytes, order[tuple(spans[key][0])], order[tuple(spans[key][1])])
        remap, self.arena_bytes, self.arenas = {}, 0, []
        for device in {device_of[k] for k in movable}:  # one arena per device
            here = {k: v for k, v in movable.items() if device_of[k] is device}
            offsets, size = plan_arena(here)
            arena = device.empty((size + ALIGN,), np.uint8)
            base = -device.address(arena) % ALIGN
            for key, off in offsets.items():
                buf = arrays[key]
                start = base + off
                remap[key] = arena[start:start + buf.nbytes].view(buf.dtype).reshape(buf.shape)
            self.arenas.append(arena)
            self.arena_bytes += size
        self.unplanned_bytes = sum(v[0] for v in movable.values())
        return [(prog, [remap.get(id(b), b) for b in bufs]) for prog, bufs in rec.runs]

    def _output(self, i: int) -> Tensor:
        buf, view, dtype, device = self.outputs[i]
        out = device.empty(view.shape, dtype.np)
        device.copy(out, device.strided(buf, view))
        return Tensor._from_node(lazy.buffer_node(out, dtype, device))

    def _launch_all(self) -> None:
        for prog, bufs in self.runs:
            prog.run(bufs, bind=True)

    def replay(self, args: tuple):
        if self.graph is None:
            for i, buf in self.placeholders:
                _copy_in(buf, args[i])
            self._launch_all()
            outs = [self._output(i) for i in range(len(self.outputs))]
        else:
            with self.graph:  # copies ordered with the graph on its stream
                for i, buf in self.placeholders:
                    _copy_in(buf, args[i])
                self.graph()
                outs = [self._output(i) for i in range(len(self.outputs))]
        return outs[0] if self.single else tuple(outs)


def _copy_in(buf, t: Tensor) -> None:
    """Copy the tensor ``t`` into the placeholder buffer ``buf`` (the signature puts both on one device)."""
    node = t.realize().node
    if node.is_view or node.base.op == "const":
        node = t.contiguous().realize().node
    node.base.device.copy(buf, node.base.buffer.reshape(buf.shape))


class JitFunction:
    def __init__(self, fn: Callable, recapture: bool = True):
        self.fn, self.recapture = fn, recapture
        self.programs: Dict[tuple, CapturedProgram] = {}
        functools.update_wrapper(self, fn)

    def _signature(self, args, kwargs) -> tuple:
        sig = []
        for a in args:
            if isinstance(a, Tensor):
                sig.append(("T", a.shape, a.dtype.name, a.requires_grad, a.device))
            else:
                try:
                    hash(a)
                except TypeError:
                    raise TypeError(f"jit: non-tensor argument {a!r} must be hashable (it is part of the signature)")
                sig.append(("V", a))
        return tuple(sig) + tuple(sorted(kwargs.items()))

    def __call__(self, *args, **kwargs):
        sig = self._signature(args, kwargs)
        prog = self.programs.get(sig)
        if prog is None:
            if self.programs and not self.recapture:
                known = next(iter(self.programs))
                raise ValueError(f"jit: {self.fn.__name__} was captured for {known}, called with {sig}; "
                                 "use recapture=True to capture each new signature")
            prog = CapturedProgram(self.fn, args, kwargs)
            self.programs[sig] = prog
            res = prog.first_results
            prog.first_results = None
            return res[0] if prog.single else tuple(res)
        return prog.replay(args)


def jit(fn: Callable = None, *, recapture: bool = True):
    """Capture ``fn`` per input signature and replay its kernels (decorator or function).

    With ``recapture=False`` a call with a new signature raises ValueError instead of
    capturing again.
    """
    if fn is None:
        return lambda f: JitFunction(f, recapture)
    return JitFunction(fn, recapture)
