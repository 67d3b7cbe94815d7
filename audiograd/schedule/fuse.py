"""Turn a lazy graph into an ordered list of kernels and library calls.

Rules (see docs/architecture.md):
- a base node becomes a buffer ("is realized") when it is asked for, feeds a library op, is a
  reduction read through a view or by a non-element-wise op, is used by more than one node, or
  is an expensive element-wise result that a consumer would recompute per broadcast element;
- everything else is inlined into its consumer's loop nest, views included, so chains of
  element-wise and movement ops become one pass that may also wrap one reduction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set

from ..dtypes import bool_
from ..graph import library_ops, ops
from ..graph.lazy import LazyNode, contiguous
from ..graph.view import View
from ..graph.kernel_ir import Alu, Const, Kernel, Load, Reduce, walk


@dataclass
class KernelStep:
    """Compute ``out`` with a fused kernel reading ``inputs`` (buffer 0 is ``out``)."""
    out: LazyNode
    kernel: Kernel
    inputs: List[LazyNode]


@dataclass
class MatmulStep:
    out: LazyNode
    a: LazyNode   # views of realized bases
    b: LazyNode

    @property
    def inputs(self) -> List[LazyNode]:
        return [self.a.base, self.b.base]


@dataclass
class LibraryStep:
    """Compute ``out`` with its device's implementation of a declared library op
    (``graph.library_ops``) reading ``inputs`` (contiguous buffers; a CONV_ROWS weight is
    passed as its base and read through its view). ``node`` is the library node whose op,
    argument and sources say what to compute: ``out`` itself, or the node a device's graph
    pass put in its place."""
    out: LazyNode
    inputs: List[LazyNode]
    node: LazyNode


@dataclass
class CopyStep:
    """Copy the buffer of ``src`` into ``out``'s (used when an assign reads its own target)."""
    out: LazyNode
    src: LazyNode

    @property
    def inputs(self) -> List[LazyNode]:
        return [self.src]


class _Restart(Exception):
    def __init__(self, node: LazyNode):
        self.node = node


@dataclass
class _Graph:
    nodes: Dict[int, LazyNode] = field(default_factory=dict)
    consumers: Dict[int, Set[int]] = field(default_factory=dict)
    order: List[LazyNode] = field(default_factory=list)   # bases, inputs before users
    # node id -> the node that computes its value instead (from the device's graph passes)
    subs: Dict[int, LazyNode] = field(default_factory=dict)

    def definition(self, node: LazyNode) -> LazyNode:
        """What computes ``node``: itself, or the node a graph pass put in its place."""
        return self.subs.get(node.id, node)


def _collect(outputs: List[LazyNode], subs: Optional[Dict[int, LazyNode]] = None) -> _Graph:
    g = _Graph(subs=subs or {})
    stack = [(o.base, False) for o in outputs]
    while stack:
        node, done = stack.pop()
        if done:
            g.order.append(node)
            continue
        if node.id in g.nodes:
            continue
        g.nodes[node.id] = node
        stack.append((node, True))
        if node.realized:
            continue
        for s in g.definition(node).srcs:
            b = s.base
            g.consumers.setdefault(b.id, set()).add(node.id)
            if b.id not in g.nodes:
                stack.append((b, False))
    return g


def _expensive(node: LazyNode, forced: Set[int], memo: Dict[int, bool]) -> bool:
    if node.realized or node.id in forced or node.op not in ops.ELEMENTWISE:
        return False
    if node.id not in memo:
        memo[node.id] = node.op in ops.TRANSCENDENTAL or any(_expensive(s.base, forced, memo) for s in node.srcs)
    return memo[node.id]


def _initial_forced(g: _Graph, outputs: List[LazyNode]) -> Set[int]:
    forced = {o.base.id for o in outputs if not o.base.realized}
    for node in g.nodes.values():
        if node.realized or node.op in ops.SOURCE:
            continue
        users = g.consumers.get(node.id, set())
        d = g.definition(node)
        if d.op in ops.LIBRARY or d.op in ("contiguous", "assign") or len(users) > 1:
            forced.add(node.id)
        if d.op in ops.LIBRARY:
            for s in d.srcs:
                if s.base.op not in ops.SOURCE:
                    forced.add(s.base.id)
        if d.op in ops.REDUCE and users:
            user = g.definition(g.nodes[next(iter(users))])
            direct = all(s is node for s in user.srcs if s.base is node)
            if not direct or user.op not in ops.ELEMENTWISE:
                forced.add(node.id)
    return forced


class _KernelBuilder:
    def __init__(self, root: LazyNode, forced: Set[int]):
        self.root, self.forced = root, forced
        self.inputs: List[LazyNode] = []
        self.index: Dict[int, int] = {}
        self.reduce: Optional[LazyNode] = None
        self.stack: List[LazyNode] = []
        self.memo: Dict[int, bool] = {}

    def buf(self, node: LazyNode) -> int:
        if node.id not in self.index:
            self.inputs.append(node)
            self.index[node.id] = len(self.inputs)
        return self.index[node.id]

    def build(self, node: LazyNode, history: tuple):
        view = View.contiguous(node.shape).compose(history)
        if view is None:
            raise _Restart(self.stack[-1])
        if node.op == "const":
            return Const(node.arg, view, node.dtype)
        is_root = node is self.root
        if not is_root and (node.realized or node.op == "buffer" or node.id in self.forced):
            return Load(self.buf(node), view, node.dtype)
        if node.op in ops.REDUCE:
            if self.reduce is not None or not view.is_contiguous or view.shape != node.shape:
                raise _Restart(node)
            self.reduce = node
            src = node.srcs[0]
            self.stack.append(node)
            expr = self.build(src.base, src.history)
            self.stack.pop()
            return Reduce(node.op, expr, node.arg, node.dtype)
        if node.op == "assign":
            value = node.srcs[1]
            return self.build(value.base, value.history)
        if node.op == "contiguous":
            src = node.srcs[0]
            return self.build(src.base, src.history + history)
        assert node.op in ops.ELEMENTWISE, node.op
        if not is_root and any(st == 0 and s > 1 for s, st in zip(view.shape, view.strides)) \
                and _expensive(node, self.forced, self.memo):
            raise _Restart(node)
        self.stack.append(node)
        srcs = tuple(self.build(s.base, s.history + history) for s in node.srcs)
        self.stack.pop()
        expr = Alu(node.op, srcs, node.dtype)
        if view.mask is not None:  # padding reads zero, not f(0)
            inside = Const(True, view, bool_)
            expr = Alu("where", (inside, expr, Const(0, View.contiguous(view.shape), node.dtype)), node.dtype)
        return expr


def _kernel_for(node: LazyNode, forced: Set[int]) -> KernelStep:
    b = _KernelBuilder(node, forced)
    scan = node.op == "cumsum"
    if scan:  # the scan's input is the kernel's expression; the scan itself is the loop
        b.stack.append(node)
        expr = b.build(node.srcs[0].base, node.srcs[0].history)
    else:
        expr = b.build(node, ())
    red = b.reduce
    k = Kernel(expr, red.srcs[0].shape if red is not None else node.shape, node.dtype,
               (node.dtype,) + tuple(i.dtype for i in b.inputs),
               reduce_axes=red.arg if red is not None else (),
               scan_axis=node.arg if scan else None,
               inplace=node.op == "assign" and node.srcs[0].id in b.index)
    return KernelStep(node, k, b.inputs)


def _safe_inplace(step: KernelStep, target: LazyNode) -> bool:
    """An assign may write in place only if it reads its target at the same index it writes."""
    idx = step.inputs.index(target) + 1
    ident = View.contiguous(target.shape)
    return all(e.view == ident for e in walk(step.kernel.root) if isinstance(e, Load) and e.buf == idx) \
        and not step.kernel.reduce_axes


def _prepare_library_inputs(g: _Graph) -> bool:
    """Copy the sources of library ops into plain buffers where the op's declaration asks for it
    (BLAS reads strided views but no padding; templates read contiguous buffers)."""
    changed = False
    for node in map(g.definition, g.nodes.values()):
        op = library_ops.BY_NAME.get(node.op)
        if node.realized or op is None:
            continue
        srcs = tuple(contiguous(s, copy=True) if op.needs_copy(node, i, s) else s for i, s in enumerate(node.srcs))
        changed |= srcs != node.srcs
        node.srcs = srcs
    return changed


def create_schedule(outputs: List[LazyNode], passes: Sequence[Callable] = ()):
    """Return the steps that realize ``outputs``; the caller allocates and runs them.

    ``passes`` are the device's graph rewrites (``Device.graph_passes``), each called with the
    graph's bases, their consumers and the ids that must stay buffers. A pass changes no node:
    it returns ``{node id: library node}`` for nodes whose value the library node computes
    instead (in their buffer: the user's nodes keep their identity and their meaning, so the
    same graph can still be realized on another device).
    """
    g = _collect(outputs)
    for rewrite in passes:
        subs = rewrite(list(g.nodes.values()), g.consumers, {o.base.id for o in outputs})
        if subs:
            assert all(n.op in library_ops.BY_NAME for n in subs.values()), "a pass may only substitute library nodes"
            g = _collect(outputs, {**g.subs, **subs})
    if _prepare_library_inputs(g):
        g = _collect(outputs, g.subs)
    forced = _initial_forced(g, outputs)
    steps, done = [], set()
    for node in g.order:
        if node.id in forced and node.id not in done and not node.realized and node.op not in ops.SOURCE:
            _emit(node, forced, steps, done, g)
    return steps


def _emit(node: LazyNode, forced: Set[int], steps: list, done: Set[int], g: _Graph) -> None:
    """Append ``node``'s steps. A kernel that cannot inline one of its inputs forces that input
    to a buffer: its steps go first (its own inputs are already done: the order is
    topological), then the kernel is built again."""
    pending = [node]
    while pending:
        current = pending[-1]
        try:
            steps.extend(_steps_for(current, forced, g.definition(current)))
        except _Restart as r:
            assert r.node.id not in forced, r.node
            forced.add(r.node.id)
            pending.append(r.node)
            continue
        done.add(current.id)
        pending.pop()


def _steps_for(node: LazyNode, forced: Set[int], definition: LazyNode):
    d = definition
    if d.op == library_ops.MATMUL.name:
        return [MatmulStep(node, d.srcs[0], d.srcs[1])]
    op = library_ops.BY_NAME.get(d.op)
    if op is not None:
        first = d.srcs[0].base if op.first_through_view else d.srcs[0]
        return [LibraryStep(node, [first] + list(d.srcs[1:]), d)]
    step = _kernel_for(node, forced)
    if node.op == "assign" and step.kernel.inplace and not _safe_inplace(step, node.srcs[0]):
        tmp = contiguous(node.srcs[1], copy=True)
        k = step.kernel
        tmp_step = KernelStep(tmp, Kernel(k.root, k.full_shape, k.out_dtype, k.buf_dtypes, k.reduce_axes), step.inputs)
        return [tmp_step, CopyStep(node, tmp)]
    return [step]
