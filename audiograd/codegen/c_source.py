"""Render a scheduled Kernel as C (OpenMP for threads and SIMD).

The renderer is written against a ``Dialect`` so a CUDA printer can share the expression and
index code and differ only in how loops, function headers and math names are spelled.
"""
from __future__ import annotations

import math
from typing import Dict, List

from ..dtypes import DType, float32, float64, int64, bool_
from ..graph.view import View
from ..graph.kernel_ir import Const, Kernel, Load, Reduce, walk
from .loops import Loop, LoopNest, build_loop_nest


# work (elements) under which a kernel runs on one thread
PARALLEL_THRESHOLD = 1 << 15


def c_literal(value, dtype: DType) -> str:
    if dtype is bool_:
        return "1" if value else "0"
    if not dtype.is_float:
        return f"{int(value)}LL" if dtype is int64 else str(int(value))
    v = float(dtype.np(value))
    if math.isnan(v):
        return f"(({dtype.ctype})AG_NAN)"
    if math.isinf(v):
        return f"(({dtype.ctype})({'-' if v < 0 else ''}AG_INF))"
    return f"{v.hex()}{'f' if dtype is float32 else ''}"


_FLOAT_FN = {"exp": "exp", "log": "log", "log1p": "log1p", "sin": "sin", "cos": "cos",
             "sqrt": "sqrt", "tanh": "tanh", "pow": "pow", "atan2": "atan2", "sigmoid": "ag_sigmoid", "erf": "erf"}


def _fn(name: str, dtype: DType) -> str:
    return _FLOAT_FN[name] + ("f" if dtype is float32 else "")


def _alu(op: str, a: List[str], dtype: DType, src_dtype: DType) -> str:
    if op in _FLOAT_FN:
        return f"{_fn(op, dtype)}({', '.join(a)})"
    binops = {"add": "+", "sub": "-", "mul": "*", "div": "/", "cmplt": "<", "cmple": "<=",
              "cmpeq": "==", "cmpne": "!=", "and": "&&", "or": "||"}
    if op in binops:
        return f"({a[0]} {binops[op]} {a[1]})"
    if op == "neg":
        return f"(-{a[0]})"
    if op == "not":
        return f"(!{a[0]})"
    if op == "recip":
        return f"(({dtype.ctype})1 / {a[0]})"
    if op == "abs":
        return f"({a[0]} < 0 ? -{a[0]} : {a[0]})" if not dtype.is_float else \
            f"__builtin_fabs{'f' if dtype is float32 else ''}({a[0]})"
    if op == "sign":
        return f"(({dtype.ctype})AG_SIGN({a[0]}))"
    if op == "maximum":
        return f"AG_MAX({a[0]}, {a[1]})"
    if op == "minimum":
        return f"AG_MIN({a[0]}, {a[1]})"
    if op == "where":
        return f"({a[0]} ? {a[1]} : {a[2]})"
    if op == "cast":
        if dtype is bool_:
            return f"(({a[0]}) != 0)"
        return f"(({dtype.ctype})({a[0]}))"
    if op == "noop":
        return a[0]
    raise NotImplementedError(f"no C rendering for op {op!r}")


def _acc_dtype(r: Reduce) -> DType:
    if r.op == "sum":
        return float64 if r.dtype.is_float else int64
    return r.dtype


class CRenderer:
    """Produces the source of one kernel; ``render`` is deterministic (the cache key is the text)."""

    # how one element-wise op is spelled (a dialect may override single ops)
    alu = staticmethod(_alu)

    def __init__(self, kernel: Kernel, nthreads: int):
        self.k = kernel
        self.nest: LoopNest = build_loop_nest(kernel)
        self.nthreads = nthreads
        self.lines: List[str] = []
        self.names: Dict[object, str] = {}
        self.counter = 0
        self.region = None   # (loop var, start, stop) of the peeled piece being rendered

    # ---- expressions -----------------------------------------------------------------------
    def index(self, view: View) -> (str, str):
        v = self.nest.views[view]
        terms = [str(v.offset)] if v.offset else []
        conds = []
        for loop, st, size, m in zip(self.nest.loops, v.strides, v.shape, v.mask or [None] * len(v.shape)):
            if st and size > 1:
                terms.append(loop.var if st == 1 else f"{loop.var}*{st}")
            if m is not None:
                lo, hi = m
                # inside a peeled range [a, b) of this loop the bound is known to hold or fail
                a, b = self.region[1:] if self.region and self.region[0] == loop.var else (0, size)
                if lo > 0 and a < lo:
                    conds.append("0" if b <= lo else f"{loop.var} >= {lo}")
                if hi < size and b > hi:
                    conds.append("0" if a >= hi else f"{loop.var} < {hi}")
        if "0" in conds:
            return (" + ".join(terms) or "0"), "0"
        return (" + ".join(terms) or "0"), " && ".join(conds)

    def breakpoints(self, loop: Loop) -> List[int]:
        """Where some mask on ``loop`` switches: peeling the loop there leaves no condition
        inside each piece, so the main piece vectorizes."""
        i = self.nest.loops.index(loop)
        points = {0, loop.size}
        for v in self.nest.views.values():
            if v.mask is not None and v.shape[i] > 1:
                points.update(b for b in v.mask[i] if 0 < b < loop.size)
        return sorted(points)

    def expr(self, e, indent: str) -> str:
        if e in self.names:
            return self.names[e]
        if isinstance(e, Reduce):
            return self.names[e]  # rendered by the loop emitter before use
        if isinstance(e, (Load, Const)):
            zero = c_literal(0, e.dtype)
            if e.view.fully_masked:
                code = zero
            else:
                if isinstance(e, Load):
                    idx, cond = self.index(e.view)
                    val = f"b{e.buf}[{idx}]"
                else:
                    _, cond = self.index(e.view)
                    val = c_literal(e.value, e.dtype)
                code = zero if cond == "0" else f"({cond} ? {val} : {zero})" if cond else val
            if isinstance(e, Const) and not code.startswith("("):
                self.names[e] = code
                return code
        else:
            args = [self.expr(s, indent) for s in e.srcs]
            code = self.alu(e.op, args, e.dtype, e.srcs[0].dtype)
        name = f"v{self.counter}"
        self.counter += 1
        self.lines.append(f"{indent}const {e.dtype.ctype} {name} = {code};")
        self.names[e] = name
        return name

    # ---- loops -----------------------------------------------------------------------------
    def _stmts(self, e, indent: str) -> (List[str], str):
        """Statements computing expression ``e`` and the name holding its value."""
        self.lines = []
        v = self.expr(e, indent)
        return self.lines, v

    def _column_reduce(self, reduce, out_loops, red_loops) -> bool:
        """True when the reduced data is contiguous along the output, not along the reduction
        (e.g. a sum over rows): then a tile of outputs accumulates together, row by row."""
        if not out_loops or not red_loops:
            return False
        io, ir = self.nest.loops.index(out_loops[-1]), self.nest.loops.index(red_loops[-1])
        votes = 0
        for e in walk(reduce.src):
            if isinstance(e, Load):
                st = self.nest.views[e.view].strides
                votes += (abs(st[io]) == 1) - (abs(st[ir]) == 1)
        return votes > 0

    def _transpose_pair(self, out_loops):
        """For a copy that reads across rows while writing along them (a transpose), the two
        loops to walk in square blocks so both sides stay in cache; None otherwise."""
        if len(out_loops) < 2:
            return None
        inner = out_loops[-1]
        ii = self.nest.loops.index(inner)
        for e in walk(self.k.root):
            if not isinstance(e, Load):
                continue
            st = self.nest.views[e.view].strides
            if abs(st[ii]) > 1:
                for other in out_loops[:-1]:
                    if abs(st[self.nest.loops.index(other)]) == 1 and other.size > 1:
                        return [other, inner]
        return None

    def render(self, name: str) -> str:
        k, nest = self.k, self.nest
        out_loops = [l for l in nest.loops if not l.reduce]
        red_loops = [l for l in nest.loops if l.reduce]
        out_total = math.prod(l.size for l in out_loops)
        parallel = self.nthreads > 1 and math.prod(k.full_shape) >= PARALLEL_THRESHOLD
        reduce = next((e for e in walk(k.root) if isinstance(e, Reduce)), None)
        # with few outputs and a long reduction, split the reduction across threads instead
        split = bool(parallel and reduce is not None and out_total < 4 * self.nthreads)
        tiled = reduce is not None and not split and self._column_reduce(reduce, out_loops, red_loops)
        blocked = None
        if tiled:
            last = out_loops[-1]
            tile = Loop(last.var + "t", -(-last.size // TILE), False)
            par_loops = out_loops[:-1] + [tile]
        elif reduce is None and k.scan_axis is None and (blocked := self._transpose_pair(out_loops)):
            par_loops = [Loop(l.var + "t", -(-l.size // BLOCK), False) if l in blocked else l for l in out_loops]
        else:
            par_loops = out_loops

        lines = []
        if reduce is not None and reduce.op == "max":
            acc_t = _acc_dtype(reduce)
            lines.append(f"#pragma omp declare reduction(agmax: {acc_t.ctype}: omp_out = AG_MAX(omp_out, omp_in)) "
                         f"initializer(omp_priv = {_acc_init(reduce)})")
        lines.append(f"void {name}(char** restrict bufs) {{")
        for i, dt in enumerate(k.buf_dtypes):
            qual = "" if (i == 0 or k.inplace) else "const "
            restrict = "" if k.inplace else " restrict"
            lines.append(f"  {qual}{dt.ctype}*{restrict} b{i} = ({qual}{dt.ctype}*)bufs[{i}];")
        body = _Block(lines, 1)
        # collapse enough leading output loops to give every thread several chunks
        n_par, work = 0, 1
        if parallel and not split:
            for l in par_loops:
                n_par += 1
                work *= l.size
                if work >= 8 * self.nthreads:
                    break
        elementwise = reduce is None and k.scan_axis is None and blocked is None
        pieces = self.breakpoints(par_loops[-1]) if elementwise and len(par_loops) > max(n_par, 1) else []
        if len(pieces) > 2:  # peel the inner loop at its mask bounds
            par_loops, peeled = par_loops[:-1], par_loops[-1]
            elementwise = False  # the pieces carry their own simd pragmas
        for n, l in enumerate(par_loops):
            innermost = elementwise and n == len(par_loops) - 1
            pragma = ""
            if n == 0 and n_par:
                simd = " simd" if elementwise and n_par == len(par_loops) else ""
                coll = f" collapse({n_par})" if n_par > 1 else ""
                pragma = f"parallel for{simd}{coll} schedule(static) num_threads({self.nthreads})"
            elif innermost and n >= n_par:
                pragma = "simd"
            body.loop(l, pragma)
        out_idx = " + ".join(f"{l.var}*{st}" if st != 1 else l.var
                             for l, st in zip(nest.loops, nest.out_strides) if st) or "0"
        if k.scan_axis is not None:
            self._emit_scan(body, red_loops, out_idx)
        elif tiled:
            self._emit_tiled(body, reduce, red_loops, out_loops[-1], tile, out_idx)
        elif reduce is not None:
            self._emit_reduce(body, reduce, red_loops, split, out_idx)
        elif blocked is not None:
            for n, l in enumerate(blocked):
                body.add(f"const long long {l.var}_len = {l.size} - {l.var}t * {BLOCK} < {BLOCK} ? "
                         f"{l.size} - {l.var}t * {BLOCK} : {BLOCK};")
                if n == 1:
                    body.add("#pragma omp simd")
                body.open(f"for (long long {l.var}_in = 0; {l.var}_in < {l.var}_len; {l.var}_in++) {{")
                body.add(f"const long long {l.var} = {l.var}t * {BLOCK} + {l.var}_in;")
            stmts, v = self._stmts(k.root, body.indent)
            body.add(*stmts, f"b0[{out_idx}] = {v};")
        elif len(pieces) > 2:
            for a, b in zip(pieces, pieces[1:]):
                self.region, self.names = (peeled.var, a, b), {}
                body.add("#pragma omp simd")
                body.open(f"for (long long {peeled.var} = {a}; {peeled.var} < {b}; {peeled.var}++) {{")
                stmts, v = self._stmts(k.root, body.indent)
                body.add(*stmts, f"b0[{out_idx}] = {v};")
                body.close_all(body.depth - 1)
            self.region = None
        else:
            stmts, v = self._stmts(k.root, body.indent)
            body.add(*stmts, f"b0[{out_idx}] = {v};")
        body.close_all(1)
        return "\n".join(lines + ["}", ""])

    def _emit_reduce(self, body, reduce, red_loops, split, out_idx):
        acc_t = _acc_dtype(reduce)
        body.add(f"{acc_t.ctype} acc = {_acc_init(reduce)};")
        clause = "reduction(+:acc)" if reduce.op == "sum" else "reduction(agmax:acc)"
        depth = body.depth
        for n, l in enumerate(red_loops):
            pragma = ""
            if n == 0 and split:
                coll = f" collapse({len(red_loops)})" if len(red_loops) > 1 else ""
                pragma = f"parallel for{coll} {clause} schedule(static) num_threads({self.nthreads})"
            elif n == len(red_loops) - 1 and not split:
                pragma = f"simd {clause}"
            body.loop(l, pragma)
        stmts, v = self._stmts(reduce.src, body.indent)
        body.add(*stmts, _accumulate("acc", v, reduce, acc_t))
        body.close_all(depth)
        self.names[reduce] = f"(({reduce.dtype.ctype})acc)"
        stmts, v = self._stmts(self.k.root, body.indent)
        body.add(*stmts, f"b0[{out_idx}] = {v};")

    def _emit_tiled(self, body, reduce, red_loops, inner: Loop, tile: Loop, out_idx):
        acc_t = _acc_dtype(reduce)
        depth = body.depth
        body.add(f"const long long {inner.var}_base = {tile.var} * {TILE};",
                 f"const long long {inner.var}_len = {inner.size} - {inner.var}_base < {TILE} ? "
                 f"{inner.size} - {inner.var}_base : {TILE};",
                 f"{acc_t.ctype} acc[{TILE}];",
                 f"for (int j = 0; j < {TILE}; j++) acc[j] = {_acc_init(reduce)};")
        for l in red_loops:
            body.loop(l)
        body.add("#pragma omp simd")
        body.open(f"for (long long j = 0; j < {inner.var}_len; j++) {{")
        body.add(f"const long long {inner.var} = {inner.var}_base + j;")
        stmts, v = self._stmts(reduce.src, body.indent)
        body.add(*stmts, _accumulate("acc[j]", v, reduce, acc_t))
        body.close_all(depth)
        body.open(f"for (long long j = 0; j < {inner.var}_len; j++) {{")
        body.add(f"const long long {inner.var} = {inner.var}_base + j;")
        self.names[reduce] = f"(({reduce.dtype.ctype})acc[j])"
        stmts, v = self._stmts(self.k.root, body.indent)
        body.add(*stmts, f"b0[{out_idx}] = {v};")
        body.close_all(depth)

    def _emit_scan(self, body, red_loops, out_idx):
        acc_t = float64 if self.k.out_dtype.is_float else int64
        body.add(f"{acc_t.ctype} acc = 0;")
        (l,) = red_loops
        body.loop(l)
        stmts, v = self._stmts(self.k.root, body.indent)
        body.add(*stmts, f"acc += {v};", f"b0[{out_idx}] = ({self.k.out_dtype.ctype})acc;")


# outputs accumulated together by a column reduction
TILE = 64
# side of the square blocks a transposing copy walks in
BLOCK = 32


def _acc_init(r: Reduce) -> str:
    acc_t = _acc_dtype(r)
    if r.op == "sum":
        return c_literal(0, acc_t)
    if acc_t.is_float:
        return c_literal(-math.inf, acc_t)
    return "(-9223372036854775807LL-1)" if acc_t is int64 else "(-2147483647-1)"


def _accumulate(acc: str, v: str, r: Reduce, acc_t: DType) -> str:
    if r.op == "sum":
        return f"{acc} += {v};"
    return f"{acc} = AG_MAX({acc}, ({acc_t.ctype}){v});"


class _Block:
    """Appends indented lines and tracks open braces."""

    def __init__(self, lines: List[str], depth: int):
        self.lines, self.depth = lines, depth

    @property
    def indent(self) -> str:
        return "  " * self.depth

    def add(self, *lines: str) -> None:
        self.lines.extend(self.indent + l.lstrip() for l in lines)

    def open(self, line: str) -> None:
        self.add(line)
        self.depth += 1

    def loop(self, l: Loop, pragma: str = "") -> None:
        if pragma:
            self.add(f"#pragma omp {pragma}")
        self.open(f"for (long long {l.var} = 0; {l.var} < {l.size}; {l.var}++) {{")

    def close_all(self, depth: int) -> None:
        while self.depth > depth:
            self.depth -= 1
            self.add("}")


def kernel_name(k: Kernel) -> str:
    kind = "r" if k.reduce_axes else ("s" if k.scan_axis is not None else "e")
    return f"{kind}_" + "_".join(str(s) for s in k.full_shape) if k.full_shape else f"{kind}_scalar"


def render_c(k: Kernel, nthreads: int) -> (str, str):
    """Return (function name, C source) for a kernel; the source expects the CPU prelude's
    helpers (AG_MAX, vector math declarations) to be defined before it."""
    name = kernel_name(k)
    return name, CRenderer(k, nthreads).render(name)
