"""Fused attention on the GPU, flash-attention style: ``softmax(q @ k^T * scale + bias) @ v``
without ever writing the score matrix.

One thread block computes BQ queries of one batch: it keeps their rows in shared memory and
walks the keys in tiles of BK. For each tile it stages the keys and values in shared memory,
computes the BQ x BK scores (scale and bias applied, keys past the end at -inf), and updates an
online softmax per query: the running maximum m and sum l, the exponentials of the tile taken
against the new maximum, and the accumulated outputs (held in registers, spread over the block's
threads) rescaled by exp(m_old - m_new) before the tile's probabilities times its values are
added. At the end each output row is divided by its sum. Math is in the operands' precision
(fp32 or fp64) with accurate exponentials. Each tile's probabilities times values are summed on
their own before being added to the running output, which keeps fp32 rounding near PyTorch's.
When ``cuda_matmul_precision`` lets float32 products round their inputs, ``attention_tc``'s
tensor-core kernel runs instead.

A query whose keys are all masked (-inf) keeps m = -inf and l = 0 and gives zeros, as PyTorch
does. Tiles are sized so the static shared memory stays within 48 KiB.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

from ...config import config
from ...graph.lazy import LazyNode
from .attention_tc import attention_tc_source, key_tile
from .renderer import Launch

THREADS = 128
SHARED_BYTES = 48 * 1024
# (queries, keys) per tile, largest first
_TILES = ((64, 64), (64, 32), (32, 32), (32, 16), (16, 16), (16, 8), (8, 8), (4, 4), (2, 2), (1, 1))

_SOURCE = r"""
typedef REAL T;
typedef long long ll;
#define NT THREADS_LL
#define NWARPS (NT / 32)
#define OPT ((BQ * DV + NT - 1) / NT)   /* outputs each thread accumulates */

extern "C" __global__ void __launch_bounds__(NT) NAME(T* __restrict__ out, const T* __restrict__ Q,
    const T* __restrict__ K, const T* __restrict__ V, const T* __restrict__ B) {
  __shared__ T qs[BQ][D + 1];
  __shared__ T ks[BK][D + 1];
  __shared__ T vs[BK][DV];
  __shared__ T ss[BQ][BK + 1];
  __shared__ T row_m[BQ], row_l[BQ], row_alpha[BQ];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const ll n = blockIdx.x / QTILES, q0 = (blockIdx.x % QTILES) * BQ;
  const T* q = Q + (n * LQ + q0) * D;
  const T* k = K + n * LK * D;
  const T* v = V + n * LK * DV;
  const T* plane = 0;
  if (HAS_BIAS) plane = B + ((BOUTER > 1 ? n / INNER : 0) * BINNER + (BINNER > 1 ? n % INNER : 0)) * BROWS * LK;

  for (int x = tid; x < BQ * D; x += NT) {
    const int r = x / D, d = x % D;
    qs[r][d] = q0 + r < LQ ? q[(ll)r * D + d] : (T)0;
  }
  for (int r = tid; r < BQ; r += NT) { row_m[r] = -CUDART_INF_T; row_l[r] = 0; }
  T acc[OPT];
  #pragma unroll
  for (int i = 0; i < OPT; i++) acc[i] = 0;

  for (ll k0 = 0; k0 < LK; k0 += BK) {
    __syncthreads();  /* the previous tile is used up (and the queries are in place) */
    for (int x = tid; x < BK * D; x += NT) {
      const int c = x / D, d = x % D;
      ks[c][d] = k0 + c < LK ? k[(k0 + c) * D + d] : (T)0;
    }
    for (int x = tid; x < BK * DV; x += NT) {
      const int c = x / DV, e = x % DV;
      vs[c][e] = k0 + c < LK ? v[(k0 + c) * DV + e] : (T)0;
    }
    __syncthreads();
    for (int x = tid; x < BQ * BK; x += NT) {
      const int r = x / BK, c = x % BK;
      T s = -CUDART_INF_T;
      if (k0 + c < LK) {
        T dot = 0;
        #pragma unroll 8
        for (int d = 0; d < D; d++) dot = fma(qs[r][d], ks[c][d], dot);
        s = dot * (T)SCALE;
        if (HAS_BIAS && q0 + r < LQ) s += plane[(BROWS > 1 ? (q0 + r) * LK : 0) + k0 + c];
      }
      ss[r][c] = s;
    }
    __syncthreads();
    for (int r = warp; r < BQ; r += NWARPS) {   /* one warp per query row: the online softmax */
      T m = -CUDART_INF_T;
      for (int c = lane; c < BK; c += 32) m = fmax(m, ss[r][c]);
      #pragma unroll
      for (int o = 16; o > 0; o >>= 1) m = fmax(m, __shfl_xor_sync(0xffffffffu, m, o));
      const T m_old = row_m[r];
      const T m_new = fmax(m_old, m);
      const T m_use = m_new == -CUDART_INF_T ? (T)0 : m_new;
      T sum = 0;
      for (int c = lane; c < BK; c += 32) {
        const T p = EXP(ss[r][c] - m_use);
        ss[r][c] = p;
        sum += p;
      }
      #pragma unroll
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      __syncwarp();
      if (lane == 0) {
        const T alpha = EXP(m_old - m_use);
        row_alpha[r] = alpha;
        row_l[r] = row_l[r] * alpha + sum;
        row_m[r] = m_new;
      }
    }
    __syncthreads();
    #pragma unroll
    for (int i = 0; i < OPT; i++) {
      const int o = tid + i * NT;
      if (o < BQ * DV) {
        const int r = o / DV, e = o % DV;
        T a = 0;
        for (int c = 0; c < BK; c++) a = fma(ss[r][c], vs[c][e], a);
        acc[i] = fma(acc[i], row_alpha[r], a);
      }
    }
  }
  #pragma unroll
  for (int i = 0; i < OPT; i++) {
    const int o = tid + i * NT;
    if (o < BQ * DV) {
      const int r = o / DV, e = o % DV;
      if (q0 + r < LQ) {
        const T l = row_l[r];
        out[(n * LQ + q0 + r) * DV + e] = l > 0 ? acc[i] / l : (T)0;
      }
    }
  }
}
"""


def tiles(d: int, dv: int, itemsize: int) -> Optional[Tuple[int, int]]:
    """(queries, keys) per tile whose shared memory fits, or None for heads too wide."""
    for bq, bk in _TILES:
        if itemsize * (bq * (d + 1) + bk * (d + 1) + bk * dv + bq * (bk + 1) + 3 * bq) <= SHARED_BYTES:
            return bq, bk
    return None


def attention_source(name: str, double: bool, n: int, lq: int, lk: int, d: int, dv: int, scale: float, inner: int,
                     bias_shape: Optional[tuple]) -> Tuple[str, Launch]:
    """CUDA source of one attention kernel (every size a constant) and its launch; ValueError
    for a head too wide for the tiles."""
    tile = tiles(d, dv, 8 if double else 4)
    if tile is None:
        raise ValueError(f"attention on CUDA: head dims {d} and {dv} are too wide for its shared-memory tiles")
    bq, bk = tile
    bo, bi, br, _ = bias_shape or (1, 1, 1, lk)
    qtiles = -(-lq // bq)
    defines = {"N": n, "LQ": lq, "LK": lk, "D": d, "DV": dv, "BQ": bq, "BK": bk, "QTILES": qtiles, "INNER": inner,
               "HAS_BIAS": int(bias_shape is not None), "BOUTER": bo, "BINNER": bi, "BROWS": br}
    head = "".join(f"#define {key} {val}\n" for key, val in defines.items())
    head += (f"#define REAL {'double' if double else 'float'}\n#define EXP {'exp' if double else 'expf'}\n"
             f"#define CUDART_INF_T ((T)__int_as_float(0x7f800000))\n#define SCALE {float(scale).hex()}\n")
    src = head + _SOURCE.replace("THREADS_LL", str(THREADS)).replace("NAME", name)
    return src, Launch(n * qtiles, THREADS)


class AttentionCall:
    """Runs one ``attention`` node over its device buffers [out, q, k, v, (bias)]."""

    def __init__(self, node: LazyNode):
        from .device import get_device
        self.bias = len(node.srcs) > 3
        scale, inner, (n, lq, lk, d, dv) = node.arg
        double = node.dtype.name == "float64"
        bias_shape = node.srcs[3].shape if self.bias else None
        tag = "x".join(map(str, bias_shape)) if bias_shape else "none"
        name = f"ag_attention_{n}_{lq}_{lk}_{d}_{dv}_b{tag}_i{inner}"
        if not double and config.cuda_matmul_precision in ("tf32", "bf16") and key_tile(d, dv) is not None:
            src, launch = attention_tc_source(name + "_tf32", n, lq, lk, d, dv, scale, inner, bias_shape)
            name += "_tf32"
        else:
            name += "_d" if double else "_f"
            src, launch = attention_source(name, double, n, lq, lk, d, dv, scale, inner, bias_shape)
        self.empty = n * lq * dv == 0
        self.kernel = None if self.empty else get_device().get_many([(name, src, launch)])[0]

    def __call__(self, bufs: List) -> None:
        if self.empty:
            return
        args = list(bufs[:4]) + [bufs[4] if self.bias else bufs[1]]   # an unused bias pointer reads q's
        self.kernel(args)


def attention_call(node: LazyNode, inputs: Sequence[LazyNode]) -> Callable[[List], None]:
    """The GPU implementation of an ``attention`` node over [out, q, k, v, (bias)] device buffers."""
    if node.dtype.name not in ("float32", "float64"):
        raise NotImplementedError(f"attention on CUDA takes float32 or float64, got {node.dtype.name}")
    return AttentionCall(node)
