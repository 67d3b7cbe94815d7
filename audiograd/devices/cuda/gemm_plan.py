"""Matrix products described for cuBLAS: which strided operands it can read in place, and
the GEMM calls (pure data) that compute a batched, broadcast ``out = a @ b``.

Nothing here touches a GPU, so the planning is tested on any machine; ``blas`` issues
the calls.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple

OP_N, OP_T = 0, 1
INT_MAX = 2 ** 31 - 1
# batches are split into calls of at most this many products (a grid-dimension limit in
# some cuBLAS kernels)
MAX_BATCH = 65535
# a matmul whose batch dims cannot be merged into one stride loops on the host over the rest;
# past this many calls its operands are copied to contiguous buffers instead
MAX_HOST_LOOPS = 64


@dataclass(frozen=True)
class Gemm:
    """One (strided-batched) cuBLAS product in column-major terms:
    ``C = op(A) @ op(B) + beta * C`` with C m x n, for ``batch`` products whose operands step
    by ``stride_*`` elements. ``a``, ``b``, ``c`` are (buffer index, element offset) pairs."""
    transa: int
    transb: int
    m: int
    n: int
    k: int
    a: Tuple[int, int]
    lda: int
    b: Tuple[int, int]
    ldb: int
    c: Tuple[int, int]
    ldc: int
    stride_a: int = 0
    stride_b: int = 0
    stride_c: int = 0
    batch: int = 1
    beta: float = 0.0


def blas_layout(rows: int, cols: int, s_rows: int, s_cols: int) -> Optional[Tuple[int, int]]:
    """``(op, ld)`` through which cuBLAS reads the rows x cols matrix whose elements lie
    ``s_rows`` / ``s_cols`` apart, or None when it cannot (no unit stride, overlapping or
    negative steps). A dim of extent 1 takes any stride."""
    r, c = max(1, rows), max(1, cols)
    # as stored, column-major: unit steps down each column
    sr, sc = (1 if rows <= 1 else s_rows), (r if cols <= 1 else s_cols)
    if sr == 1 and r <= sc <= INT_MAX:
        return OP_N, sc
    # transposed: the stored matrix is cols x rows, unit steps along each row
    sr, sc = (c if rows <= 1 else s_rows), (1 if cols <= 1 else s_cols)
    if sc == 1 and c <= sr <= INT_MAX:
        return OP_T, sr
    return None


def no_overlap(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether distinct indices of an array with these element strides address distinct
    elements (checked dim by dim from the smallest stride up; sufficient, not necessary)."""
    reach = 0
    for e, s in sorted(((e, s) for e, s in zip(shape, strides) if e > 1), key=lambda d: d[1]):
        if s <= reach:
            return False
        reach += (e - 1) * s
    return True


def _merge_batch(shape: Sequence[int], *strides: Sequence[int]) -> List[Tuple[int, Tuple[int, ...]]]:
    """Batch dims of extent > 1 as (extent, strides per operand), adjacent dims merged where
    every operand steps through them as one."""
    dims = [(e, tuple(s[i] for s in strides)) for i, e in enumerate(shape) if e != 1]
    merged: List[Tuple[int, Tuple[int, ...]]] = []
    for e, st in dims:
        if merged:
            pe, pst = merged[-1]
            if all(p == q * e for p, q in zip(pst, st)):
                merged[-1] = (pe * e, st)
                continue
        merged.append((e, st))
    return merged


def fold_broadcast_rows(batch, m: int, s_out, s_a, s_b):
    """Fold the innermost batch dims over which ``b`` is broadcast (stride 0) into the rows of
    ``a`` and ``out`` when both step through them by whole matrices: one product of
    ``batch * m`` rows instead of a batch of ``m``-row products (a linear layer over (B, L, C)
    input), which fills the GPU's tiles better. Returns (batch, m, s_out, s_a, s_b)."""
    batch, s_out, s_a, s_b = list(batch), list(s_out), list(s_a), list(s_b)
    while batch and m > 1:
        e, i = batch[-1], len(batch) - 1
        if not (s_b[i] == 0 and s_a[i] == m * s_a[-2] and s_out[i] == m * s_out[-2]):
            break
        batch.pop()
        m *= e
        del s_out[i], s_a[i], s_b[i]
    return batch, m, s_out, s_a, s_b


@dataclass
class MatmulPlan:
    """Either the products that compute the matmul (``gemms``; buffers 0, 1, 2 are out, a, b)
    or the operands ("out", "a", "b") to make contiguous before planning again (``copy``)."""
    gemms: Optional[List[Gemm]] = None
    copy: Tuple[str, ...] = ()


def plan_matmul(out_shape: Sequence[int], k: int, s_out: Sequence[int], s_a: Sequence[int],
                s_b: Sequence[int]) -> Optional[MatmulPlan]:
    """Plan ``out = a @ b`` for ``out`` of shape (*batch, M, N), ``a`` (*batch, M, K) and ``b``
    (*batch, K, N) (batch already broadcast; strides in elements). None when cuBLAS cannot
    take the sizes (K of 0, or over 32 bits)."""
    *batch, m, n = out_shape
    if min(m, n) < 1 or any(e < 1 for e in batch):
        return MatmulPlan(gemms=[])
    batch, m, s_out, s_a, s_b = fold_broadcast_rows(batch, m, s_out, s_a, s_b)
    if not 1 <= k <= INT_MAX or max(m, n) > INT_MAX:
        return None
    (sam, sak), (sbk, sbn), (scm, scn) = s_a[-2:], s_b[-2:], s_out[-2:]
    options = []
    # out^T = b^T a^T in cuBLAS's column-major terms (row-major out), or out = a b (column-major out)
    for swap in (True, False) if no_overlap(out_shape, s_out) else ():
        if swap:
            lc = blas_layout(n, m, scn, scm)
            l1, l2 = blas_layout(n, k, sbn, sbk), blas_layout(k, m, sak, sam)
        else:
            lc = blas_layout(m, n, scm, scn)
            l1, l2 = blas_layout(m, k, sam, sak), blas_layout(k, n, sbk, sbn)
        if lc is not None and lc[0] == OP_N:
            options.append((swap, lc[1], l1, l2))
    need = []
    if not options:  # out gets a contiguous stand-in, so the row-major plan follows
        need.append("out")
        options.append((True, n, blas_layout(n, k, sbn, sbk), blas_layout(k, m, sak, sam)))
    swap, ldc, l1, l2 = min(options, key=lambda o: (o[2] is None) + (o[3] is None))
    need += [name for name, lay in zip(("b", "a") if swap else ("a", "b"), (l1, l2)) if lay is None]
    dims = _merge_batch(batch, s_out[:-2], s_a[:-2], s_b[:-2])
    need += [name for i, name in ((1, "a"), (2, "b")) if name not in need and any(st[i] < 0 for _, st in dims)]
    if need:
        return MatmulPlan(copy=tuple(need))
    if dims:
        inner = max(range(len(dims)), key=lambda i: dims[i][0])
        count, (sc, sa, sb) = dims[inner]
        loops = [d for i, d in enumerate(dims) if i != inner]
    else:
        count, (sc, sa, sb), loops = 1, (0, 0, 0), []
    n_loops = math.prod(e for e, _ in loops)
    if n_loops > MAX_HOST_LOOPS:  # copy the operands whose own batch dims do not merge
        own = zip(("out", "a", "b"), (s_out, s_a, s_b))
        return MatmulPlan(copy=tuple(name for name, s in own if len(_merge_batch(batch, s[:-2])) > 1))

    if swap:  # cuBLAS's A is our b
        base = Gemm(l1[0], l2[0], n, m, k, (2, 0), l1[1], (1, 0), l2[1], (0, 0), ldc, sb, sa, sc, count)
    else:
        base = Gemm(l1[0], l2[0], m, n, k, (1, 0), l1[1], (2, 0), l2[1], (0, 0), ldc, sa, sb, sc, count)
    gemms = []
    for idx in itertools.product(*(range(e) for e, _ in loops)):
        oc = sum(i * st[0] for i, (_, st) in zip(idx, loops))
        oa = sum(i * st[1] for i, (_, st) in zip(idx, loops))
        ob = sum(i * st[2] for i, (_, st) in zip(idx, loops))
        off_a, off_b = (ob, oa) if swap else (oa, ob)
        gemms.extend(split_batch(replace(base, a=(base.a[0], off_a), b=(base.b[0], off_b), c=(0, oc))))
    return MatmulPlan(gemms=gemms)


def split_batch(g: Gemm) -> List[Gemm]:
    """``g`` as calls of at most MAX_BATCH products each."""
    if g.batch <= MAX_BATCH:
        return [g]
    out = []
    for start in range(0, g.batch, MAX_BATCH):
        out.append(replace(g, a=(g.a[0], g.a[1] + start * g.stride_a), b=(g.b[0], g.b[1] + start * g.stride_b),
                           c=(g.c[0], g.c[1] + start * g.stride_c), batch=min(MAX_BATCH, g.batch - start)))
    return out


# ---- running -----------------------------------------------------------------------------------
