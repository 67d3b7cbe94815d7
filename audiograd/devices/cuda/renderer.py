"""Render a scheduled Kernel as CUDA C, sharing the C renderer's expression and index code.

Thread mapping (correct first; tuning comes later):
- element-wise kernels: one thread per output element (or per 4 neighbouring float outputs,
  stored as one float4) over a grid-stride loop, the flat index decomposed into the loop
  nest's variables, in 32-bit arithmetic wherever every index fits;
- reductions: when the reduced data is contiguous along the innermost output loop (a sum
  over rows, say), a block takes a tile of up to 32 neighbouring outputs so that every warp
  reads whole rows; otherwise one block per output (a block-wide tree reduction with warp
  shuffles) when the reduction is long, one thread per output with a serial loop when it is
  short. Float sums accumulate in double, like the C path. When a few outputs (or tiles) would
  leave most of the GPU idle, each one's reduction is split over several blocks: every block
  stores its part in a scratch array of the module, and the block that finishes last (counted
  with an atomic it resets for the next launch) combines the parts in a fixed order and writes
  the output, so results are the same on every run and the kernel stays one launch, with no
  allocation, that a CUDA graph can capture;
- cumulative sums: one thread per row, scanning it serially.
Kernels are ``extern "C" __global__`` and take one pointer argument per buffer (0 is the output).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

from ...dtypes import DType, float32
from ...graph.kernel_ir import Kernel, Reduce, walk
from ...codegen.c_source import CRenderer, _Block, _acc_dtype, _acc_init, _accumulate, _alu, kernel_name
from ...codegen.loops import Loop

CUDA_PRELUDE = (Path(__file__).with_name("prelude.cuh")).read_text()

# threads per block
THREADS = 256
# neighbouring float outputs one thread of an element-wise kernel computes and stores at once
VEC = 4
# most blocks launched; grid-stride loops cover the rest
MAX_BLOCKS = 1 << 16
# reductions at least this long get a block per output, shorter ones a thread per output
BLOCK_REDUCE_MIN = 256
# blocks a split reduction aims for (a few resident blocks on each SM of a large GPU)
SPLIT_BLOCKS = 1024
# elements each block of a split reduction reads at least
SPLIT_MIN = 4096


@dataclass(frozen=True)
class Launch:
    """Grid and block sizes (1-D) a kernel is launched with."""
    grid: int
    block: int


def _cuda_alu(op: str, a: List[str], dtype: DType, src_dtype: DType) -> str:
    """The C spelling of an op, except where CUDA device code spells it differently."""
    if op == "abs" and dtype.is_float:
        return f"fabs{'f' if dtype is float32 else ''}({a[0]})"
    return _alu(op, a, dtype, src_dtype)


def _reduce_parts(reduce: Reduce) -> Tuple[DType, str, str]:
    """The accumulator type of ``reduce``, the prelude's combining functor and the initial
    value (cast to the accumulator type)."""
    acc_t = _acc_dtype(reduce)
    return acc_t, ("AgSum()" if reduce.op == "sum" else "AgMax()"), f"({acc_t.ctype}){_acc_init(reduce)}"


def split_factor(n_out: int, n_red: int) -> int:
    """Blocks sharing each output of a block reduction: more than one when a block per output
    would leave the GPU idle and each block still gets a long stretch of the reduction."""
    return max(1, min(SPLIT_BLOCKS // max(n_out, 1), n_red // SPLIT_MIN))


def column_split_factor(tiles: int, cols: int, n_red: int) -> int:
    """Blocks sharing each tile of ``cols`` outputs of a column reduction (see ``split_factor``)."""
    return max(1, min(SPLIT_BLOCKS // tiles, cols * n_red // SPLIT_MIN, -(-n_red // (THREADS // cols))))


def _threads_for(n: int) -> int:
    """A block size for ``n`` independent work items: whole warps, at most THREADS."""
    return max(32, min(THREADS, -(-n // 32) * 32))


class CudaRenderer(CRenderer):
    """Produces the CUDA source of one kernel and its launch configuration."""

    alu = staticmethod(_cuda_alu)

    def __init__(self, kernel: Kernel):
        super().__init__(kernel, nthreads=1)

    def _decompose(self, body: _Block, flat: str, loops: List[Loop], narrow: bool = False) -> None:
        """Declare each loop's variable from the flat index ``flat`` (the last loop varies fastest);
        ``narrow``: in 32 bits (an unsigned ``flat``), where every index fits."""
        stride, suffix, var_t = 1, ("u" if narrow else "LL"), ("int" if narrow else "long long")
        for n, l in enumerate(reversed(loops)):
            q = flat if stride == 1 else f"({flat} / {stride}{suffix})"
            code = q if n == len(loops) - 1 else f"{q} % {l.size}{suffix}"
            body.add(f"const {var_t} {l.var} = {code};")
            stride *= l.size

    def _fits_32_bits(self, n_out: int) -> bool:
        """Whether the output count and every buffer index of the kernel stay below 2^31."""
        reach = [n_out]
        for v in self.nest.views.values():
            lo = v.offset + sum((size - 1) * st for size, st in zip(v.shape, v.strides) if st < 0)
            hi = v.offset + sum((size - 1) * st for size, st in zip(v.shape, v.strides) if st > 0)
            reach += [hi, -lo]
        return max(reach) < 2 ** 31 - VEC

    def _emit_elementwise(self, body: _Block, out_loops: List[Loop], n_out: int, out_idx: str) -> int:
        """One thread per output (or per VEC neighbouring float outputs, stored at once), 32-bit
        indices where they fit; returns the number of work items."""
        k, inner = self.k, out_loops[-1] if out_loops else None
        narrow = self._fits_32_bits(n_out)
        vec = (narrow and k.out_dtype is float32 and inner is not None and inner.size % VEC == 0
               and self.nest.out_strides[len(out_loops) - 1] == 1)
        items = n_out // VEC if vec else n_out
        if narrow:
            body.open(f"for (unsigned g = blockIdx.x * blockDim.x + threadIdx.x; g < {items}u; "
                      f"g += gridDim.x * blockDim.x) {{")
        else:
            self._grid_stride(body, "g", items)
        if not vec:
            self._decompose(body, "g", out_loops, narrow)
            stmts, v = self._stmts(k.root, body.indent)
            body.add(*stmts, f"b0[{out_idx}] = {v};")
            return items
        groups = out_loops[:-1] + [Loop(inner.var + "_v", inner.size // VEC, False)]
        self._decompose(body, "g", groups, narrow=True)
        body.add(f"float ag_v[{VEC}];", "#pragma unroll")
        body.open(f"for (int ag_j = 0; ag_j < {VEC}; ++ag_j) {{")
        body.add(f"const int {inner.var} = {inner.var}_v * {VEC} + ag_j;")
        stmts, v = self._stmts(k.root, body.indent)
        body.add(*stmts, f"ag_v[ag_j] = {v};")
        body.close_all(body.depth - 1)
        body.add(f"const int {inner.var} = {inner.var}_v * {VEC};",
                 f"*(float{VEC}*)(b0 + {out_idx}) = make_float{VEC}(ag_v[0], ag_v[1], ag_v[2], ag_v[3]);")
        return items

    def _grid_stride(self, body: _Block, var: str, total: int) -> None:
        body.open(f"for (long long {var} = (long long)blockIdx.x * blockDim.x + threadIdx.x; {var} < {total}LL; "
                  f"{var} += (long long)gridDim.x * blockDim.x) {{")

    def render_cuda(self, name: str) -> Tuple[str, Launch]:
        """The kernel's CUDA source and how to launch it."""
        k, nest = self.k, self.nest
        out_loops = [l for l in nest.loops if not l.reduce]
        red_loops = [l for l in nest.loops if l.reduce]
        n_out = math.prod(l.size for l in out_loops)
        n_red = math.prod(l.size for l in red_loops)
        reduce = next((e for e in walk(k.root) if isinstance(e, Reduce)), None)
        block_reduce = reduce is not None and n_red >= BLOCK_REDUCE_MIN
        column = block_reduce and self._column_reduce(reduce, out_loops, red_loops)
        threads = THREADS if block_reduce else _threads_for(n_out)
        if column:
            cols = min(32, out_loops[-1].size)
            tiles = n_out // out_loops[-1].size * -(-out_loops[-1].size // cols)
            split = column_split_factor(tiles, cols, n_red)
            slots, counters = tiles * split * cols, tiles
        else:
            split = split_factor(n_out, n_red) if block_reduce else 1
            slots, counters = n_out * split, n_out
        lines = [CUDA_PRELUDE]
        if split > 1:
            lines += [f"__device__ {_acc_dtype(reduce).ctype} ag_parts[{slots}];",
                      f"__device__ unsigned int ag_arrived[{counters}];"]
        lines.append(f'extern "C" __global__ void __launch_bounds__({threads}) {name}(')
        params = []
        for i, dt in enumerate(k.buf_dtypes):
            qual = "" if (i == 0 or k.inplace) else "const "
            restrict = "" if k.inplace else " __restrict__"
            params.append(f"    {qual}{dt.ctype}*{restrict} b{i}")
        lines.append(",\n".join(params) + ") {")
        body = _Block(lines, 1)
        out_idx = " + ".join(f"{l.var}*{st}" if st != 1 else l.var
                             for l, st in zip(nest.loops, nest.out_strides) if st) or "0"
        if column:
            self._emit_column_reduce(body, reduce, out_loops, red_loops, n_red, cols, tiles, split, out_idx)
            grid = min(tiles, MAX_BLOCKS) * split
        elif split > 1:
            self._emit_split_reduce(body, reduce, out_loops, red_loops, n_red, split, out_idx)
            grid = n_out * split
        elif block_reduce:
            self._emit_block_reduce(body, reduce, out_loops, red_loops, n_out, n_red, out_idx)
            grid = min(n_out, MAX_BLOCKS)
        else:
            items = n_out
            if k.scan_axis is None and reduce is None:
                items = self._emit_elementwise(body, out_loops, n_out, out_idx)
            else:
                self._grid_stride(body, "g", n_out)
                self._decompose(body, "g", out_loops)
                if k.scan_axis is not None:
                    self._emit_scan(body, red_loops, out_idx)
                else:
                    self._emit_thread_reduce(body, reduce, red_loops, out_idx)
            grid = min(-(-items // threads), MAX_BLOCKS)
        body.close_all(1)
        return "\n".join(lines + ["}", ""]), Launch(max(grid, 1), threads)

    def _emit_thread_reduce(self, body: _Block, reduce: Reduce, red_loops: List[Loop], out_idx: str) -> None:
        acc_t = _acc_dtype(reduce)
        body.add(f"{acc_t.ctype} acc = {_acc_init(reduce)};")
        depth = body.depth
        for l in red_loops:
            body.loop(l)
        stmts, v = self._stmts(reduce.src, body.indent)
        body.add(*stmts, _accumulate("acc", v, reduce, acc_t))
        body.close_all(depth)
        self._emit_epilogue(body, reduce, out_idx)

    def _accumulate_terms(self, body: _Block, reduce: Reduce, red_loops, acc_t: DType, depth: int) -> None:
        """Inside the loop over the flat reduction index ``r``: declare the reduced loops'
        variables, add the term to ``acc`` and close the loops back to ``depth``."""
        self._decompose(body, "r", red_loops)
        stmts, v = self._stmts(reduce.src, body.indent)
        body.add(*stmts, _accumulate("acc", v, reduce, acc_t))
        body.close_all(depth)

    def _emit_block_reduce(self, body: _Block, reduce: Reduce, out_loops, red_loops, n_out: int, n_red: int,
                           out_idx: str) -> None:
        acc_t, op, init = _reduce_parts(reduce)
        body.add(f"__shared__ {acc_t.ctype} ag_part[32];")
        body.open(f"for (long long o = blockIdx.x; o < {n_out}LL; o += gridDim.x) {{")
        self._decompose(body, "o", out_loops)
        body.add(f"{acc_t.ctype} acc = {init};")
        depth = body.depth
        body.open(f"for (long long r = threadIdx.x; r < {n_red}LL; r += blockDim.x) {{")
        self._accumulate_terms(body, reduce, red_loops, acc_t, depth)
        body.add(f"acc = ag_block_reduce(acc, ag_part, {op}, {init});")
        body.open("if (threadIdx.x == 0) {")
        self._emit_epilogue(body, reduce, out_idx)
        body.close_all(depth - 1)

    def _emit_split_reduce(self, body: _Block, reduce: Reduce, out_loops, red_loops, n_red: int, split: int,
                           out_idx: str) -> None:
        """Block ``o * split + s`` reduces every ``split``-th stretch of THREADS elements of output
        ``o``, starting at stretch ``s``; the last of the ``split`` blocks writes the output."""
        acc_t, op, init = _reduce_parts(reduce)
        body.add(f"__shared__ {acc_t.ctype} ag_part[32];",
                 f"const long long o = blockIdx.x / {split}u;",
                 f"const unsigned int s = blockIdx.x % {split}u;")
        self._decompose(body, "o", out_loops)
        body.add(f"{acc_t.ctype} acc = {init};")
        depth = body.depth
        body.add("#pragma unroll 4")
        body.open(f"for (long long r = (long long)s * blockDim.x + threadIdx.x; r < {n_red}LL; "
                  f"r += {split}LL * blockDim.x) {{")
        self._accumulate_terms(body, reduce, red_loops, acc_t, depth)
        body.add(f"acc = ag_block_reduce(acc, ag_part, {op}, {init});")
        body.open(f"if (ag_split_reduce(acc, ag_parts + o * {split}, ag_arrived + o, {split}u, s, ag_part, {op}, "
                  f"{init}) && threadIdx.x == 0) {{")
        self._emit_epilogue(body, reduce, out_idx)
        body.close_all(depth)

    def _emit_column_reduce(self, body: _Block, reduce: Reduce, out_loops, red_loops, n_red: int, cols: int,
                            tiles: int, split: int, out_idx: str) -> None:
        """For data contiguous along the innermost output loop: a block takes a tile of ``cols``
        neighbouring outputs, thread ``t`` accumulates output ``t % cols`` over every
        (THREADS // cols)-th step of the reduction, so each warp reads whole rows; with
        ``split`` > 1, ``split`` blocks share a tile and the last of them writes it."""
        acc_t, op, init = _reduce_parts(reduce)
        inner, rows = out_loops[-1], THREADS // cols
        per_row = -(-inner.size // cols)
        body.add(f"__shared__ {acc_t.ctype} ag_cols[{THREADS}];",
                 f"const unsigned int tx = threadIdx.x % {cols}u, ty = threadIdx.x / {cols}u;",
                 f"const unsigned int s = blockIdx.x % {split}u;")
        body.open(f"for (long long tile = blockIdx.x / {split}u; tile < {tiles}LL; tile += gridDim.x / {split}u) {{")
        depth = body.depth
        self._decompose(body, f"(tile / {per_row}LL)", out_loops[:-1])
        body.add(f"const long long {inner.var} = (tile % {per_row}LL) * {cols} + tx;",
                 f"{acc_t.ctype} acc = {init};")
        body.open(f"if (ty < {rows}u && {inner.var} < {inner.size}LL) {{")
        body.add("#pragma unroll 4")
        body.open(f"for (long long r = (long long)s * {rows} + ty; r < {n_red}LL; r += {split * rows}LL) {{")
        self._accumulate_terms(body, reduce, red_loops, acc_t, depth)
        body.add(f"acc = ag_column_reduce(acc, ag_cols, {cols}u, {rows}u, {op});")
        last = "1"
        if split > 1:
            last = (f"ag_split_columns(acc, ag_parts + tile * {split * cols}, ag_arrived + tile, {split}u, s, "
                    f"{cols}u, {rows}u, ag_cols, {op}, {init})")
        body.open(f"if ({last} && ty == 0 && {inner.var} < {inner.size}LL) {{")
        self._emit_epilogue(body, reduce, out_idx)
        body.close_all(depth - 1)

    def _emit_epilogue(self, body: _Block, reduce: Reduce, out_idx: str) -> None:
        self.names[reduce] = f"(({reduce.dtype.ctype})acc)"
        stmts, v = self._stmts(self.k.root, body.indent)
        body.add(*stmts, f"b0[{out_idx}] = {v};")


def render_cuda(k: Kernel) -> Tuple[str, str, Launch]:
    """Return (function name, CUDA source, launch configuration) for a kernel."""
    name = kernel_name(k)
    src, launch = CudaRenderer(k).render_cuda(name)
    return name, src, launch
