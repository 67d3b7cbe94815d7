"""Render a scheduled Kernel as C (OpenMP for threads and SIMD).

The renderer is written against a ``Dialect`` so a CUDA printer can share the expression and
index code and differ only in how loops, function headers and math names are spelled.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List

from ..dtypes import DType, float32, float64, int64, bool_
from ..graph.view import View
from ..schedule.kernel_ast import Alu, Const, Kernel, Load, Reduce, walk
from .loops import LoopNest, build_loop_nest

PRELUDE = (Path(__file__).with_name("prelude.h")).read_text()

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
             "sqrt": "sqrt", "tanh": "tanh", "pow": "pow", "sigmoid": "ag_sigmoid"}


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
    if op == "max":
        return f"AG_MAX({a[0]}, {a[1]})"
    if op == "min":
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

    def __init__(self, kernel: Kernel, nthreads: int):
        self.k = kernel
        self.nest: LoopNest = build_loop_nest(kernel)
        self.nthreads = nthreads
        self.lines: List[str] = []
        self.names: Dict[object, str] = {}
        self.counter = 0

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
                if lo > 0:
                    conds.append(f"{loop.var} >= {lo}")
                if hi < size:
                    conds.append(f"{loop.var} < {hi}")
        return (" + ".join(terms) or "0"), " && ".join(conds)

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
                code = f"({cond} ? {val} : {zero})" if cond else val
            if isinstance(e, Const) and not code.startswith("("):
                self.names[e] = code
                return code
        else:
            args = [self.expr(s, indent) for s in e.srcs]
            code = _alu(e.op, args, e.dtype, e.srcs[0].dtype)
        name = f"v{self.counter}"
        self.counter += 1
        self.lines.append(f"{indent}const {e.dtype.ctype} {name} = {code};")
        self.names[e] = name
        return name

    # ---- loops -----------------------------------------------------------------------------
    def render(self, name: str) -> str:
        k, nest = self.k, self.nest
        total = math.prod(k.full_shape)
        out_loops = [l for l in nest.loops if not l.reduce]
        red_loops = [l for l in nest.loops if l.reduce]
        out_total = math.prod(l.size for l in out_loops)
        red_total = math.prod(l.size for l in red_loops)
        parallel = self.nthreads > 1 and total >= PARALLEL_THRESHOLD
        # with few outputs and a long reduction, split the reduction across threads instead
        split_reduce = parallel and k.scan_axis is None and red_loops and out_total < 4 * self.nthreads
        reduce = next((e for e in walk(k.root) if isinstance(e, Reduce)), None)

        header = [PRELUDE, f"void {name}(char** restrict bufs) {{"]
        for i, dt in enumerate(k.buf_dtypes):
            qual = "" if (i == 0 or k.inplace) else "const "
            restrict = "" if k.inplace else " restrict"
            header.append(f"  {qual}{dt.ctype}*{restrict} b{i} = ({qual}{dt.ctype}*)bufs[{i}];")
        body: List[str] = []
        depth = 1
        ind = lambda: "  " * depth
        # output loops
        n_par = 0
        if parallel and not split_reduce and out_loops:
            # collapse enough leading loops to give every thread several chunks
            work = 1
            for l in out_loops:
                n_par += 1
                work *= l.size
                if work >= 8 * self.nthreads:
                    break
        for n, l in enumerate(out_loops):
            innermost = n == len(out_loops) - 1 and not red_loops
            if n == 0 and n_par:
                coll = f" collapse({n_par})" if n_par > 1 else ""
                simd = " simd" if innermost or (n_par == len(out_loops) and not red_loops) else ""
                body.append(f"{ind()}#pragma omp parallel for{simd}{coll} schedule(static)")
            elif innermost and n >= n_par:
                body.append(f"{ind()}#pragma omp simd")
            body.append(f"{ind()}for (long long {l.var} = 0; {l.var} < {l.size}; {l.var}++) {{")
            depth += 1
        out_idx = " + ".join(f"{l.var}*{st}" if st != 1 else l.var
                             for l, st in zip(nest.loops, nest.out_strides) if st) or "0"
        if k.scan_axis is not None:
            self._emit_scan(body, depth, red_loops, out_idx)
        elif reduce is not None:
            acc_t = _acc_dtype(reduce)
            init = c_literal(0, acc_t) if reduce.op == "sum" else c_literal(-math.inf, acc_t) \
                if acc_t.is_float else ("(-9223372036854775807LL-1)" if acc_t is int64 else "(-2147483647-1)")
            body.append(f"{ind()}{acc_t.ctype} acc = {init};")
            clause = "reduction(+:acc)" if reduce.op == "sum" else "reduction(agmax:acc)"
            if reduce.op == "max":
                header.insert(1, f"#pragma omp declare reduction(agmax: {acc_t.ctype}: "
                                 f"omp_out = AG_MAX(omp_out, omp_in)) initializer(omp_priv = {init})")
            for n, l in enumerate(red_loops):
                if n == 0 and split_reduce:
                    coll = f" collapse({len(red_loops)})" if len(red_loops) > 1 else ""
                    body.append(f"{ind()}#pragma omp parallel for{coll} {clause} schedule(static)")
                elif n == len(red_loops) - 1 and not split_reduce:
                    body.append(f"{ind()}#pragma omp simd {clause}")
                body.append(f"{ind()}for (long long {l.var} = 0; {l.var} < {l.size}; {l.var}++) {{")
                depth += 1
            self.lines = []
            v = self.expr(reduce.src, ind())
            body.extend(self.lines)
            if reduce.op == "sum":
                body.append(f"{ind()}acc += {v};")
            else:
                body.append(f"{ind()}acc = AG_MAX(acc, ({acc_t.ctype}){v});")
            for _ in red_loops:
                depth -= 1
                body.append(f"{ind()}}}")
            self.names[reduce] = f"(({reduce.dtype.ctype})acc)"
            self.lines = []
            v = self.expr(k.root, ind())
            body.extend(self.lines)
            body.append(f"{ind()}b0[{out_idx}] = {v};")
        else:
            self.lines = []
            v = self.expr(k.root, ind())
            body.extend(self.lines)
            body.append(f"{ind()}b0[{out_idx}] = {v};")
        for _ in out_loops:
            depth -= 1
            body.append(f"{ind()}}}")
        return "\n".join(header + body + ["}", ""])

    def _emit_scan(self, body, depth, red_loops, out_idx):
        ind = "  " * depth
        acc_t = float64 if self.k.out_dtype.is_float else int64
        body.append(f"{ind}{acc_t.ctype} acc = 0;")
        (l,) = red_loops
        body.append(f"{ind}for (long long {l.var} = 0; {l.var} < {l.size}; {l.var}++) {{")
        self.lines = []
        v = self.expr(self.k.root, ind + "  ")
        body.extend(self.lines)
        body.append(f"{ind}  acc += {v};")
        body.append(f"{ind}  b0[{out_idx}] = ({self.k.out_dtype.ctype})acc;")
        body.append(f"{ind}}}")


def kernel_name(k: Kernel) -> str:
    kind = "r" if k.reduce_axes else ("s" if k.scan_axis is not None else "e")
    return f"{kind}_" + "_".join(str(s) for s in k.full_shape) if k.full_shape else f"{kind}_scalar"


def render_c(k: Kernel, nthreads: int) -> (str, str):
    """Return (function name, C source) for a kernel."""
    name = kernel_name(k)
    return name, CRenderer(k, nthreads).render(name)
