"""Fused attention on tensor cores (TF32 ``mma.sync``), for float32 when
``config.cuda_matmul_precision`` lets products round their inputs ("tf32" or "bf16").

The layout follows FlashAttention-2: a block of four warps takes 64 queries of one batch, each
warp 16 of them, whose rows stay in registers as TF32 ``m16n8k8`` A-fragments for the whole
kernel. Keys and values are staged in shared memory a tile at a time (rounded to TF32 once,
rows padded by 4 words so that the fragments' reads hit 32 different banks). Per tile a warp
computes its 16 x BK scores with tensor cores into accumulator registers, applies scale, bias
and the end of the keys, and updates its online softmax (running maximum per row, shared by
the four lanes that hold the row; each lane keeps a partial row sum, added up once at the end).
The probabilities go straight from the accumulators into the next product as A-fragments:
an accumulator lane holds columns 2t and 2t+1 of its row, an A-fragment lane wants columns t
and t+4, so the product's k-order is taken as keys (0, 2, 4, 6, 1, 3, 5, 7) and the value rows
are read in that order. Products accumulate in fp32; exponentials are the fast ``__expf``
(their error is far below TF32's rounding of the operands).
"""
from __future__ import annotations

from typing import Optional, Tuple

from .renderer import Launch

THREADS = 128
QUERIES = 64          # per block: 4 warps x 16 rows
SHARED_BYTES = 48 * 1024
MAX_HEAD = 128        # fragments held in registers: 16 rows x head per warp

_SOURCE = r"""
typedef long long ll;

__device__ __forceinline__ unsigned to_tf32(float x) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

__device__ __forceinline__ void mma_tf32(float* c, const unsigned* a, unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

extern "C" __global__ void __launch_bounds__(128) NAME(float* __restrict__ out, const float* __restrict__ Q,
    const float* __restrict__ K, const float* __restrict__ V, const float* __restrict__ B) {
  __shared__ unsigned ks[BK][D + 4];
  __shared__ unsigned vs[BK][DV + 4];
  const float NEG_INF = __int_as_float(0xff800000);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const ll n = blockIdx.x / QTILES;
  const ll r0 = (blockIdx.x % QTILES) * 64 + warp * 16 + g, r1 = r0 + 8;   /* this lane's two query rows */
  const float* k = K + n * LK * D;
  const float* v = V + n * LK * DV;
  const float* plane = 0;
  if (HAS_BIAS) plane = B + ((BOUTER > 1 ? n / INNER : 0) * BINNER + (BINNER > 1 ? n % INNER : 0)) * BROWS * LK;

  unsigned qa[D / 8][4];
  {
    const float* q = Q + n * LQ * D;
    #pragma unroll
    for (int kk = 0; kk < D / 8; kk++) {
      const int d = kk * 8 + t;
      qa[kk][0] = to_tf32(r0 < LQ ? q[r0 * D + d] : 0.f);
      qa[kk][1] = to_tf32(r1 < LQ ? q[r1 * D + d] : 0.f);
      qa[kk][2] = to_tf32(r0 < LQ ? q[r0 * D + d + 4] : 0.f);
      qa[kk][3] = to_tf32(r1 < LQ ? q[r1 * D + d + 4] : 0.f);
    }
  }
  float o[DV / 8][4];
  #pragma unroll
  for (int j = 0; j < DV / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.f, l1 = 0.f;

  for (ll k0 = 0; k0 < LK; k0 += BK) {
    __syncthreads();   /* the previous tile is used up */
    for (int x = tid; x < BK * D; x += THREADS) {
      const int c = x / D, d = x % D;
      ks[c][d] = to_tf32(k0 + c < LK ? k[(k0 + c) * D + d] : 0.f);
    }
    for (int x = tid; x < BK * DV; x += THREADS) {
      const int c = x / DV, e = x % DV;
      vs[c][e] = to_tf32(k0 + c < LK ? v[(k0 + c) * DV + e] : 0.f);
    }
    __syncthreads();

    float s[BK / 8][4];
    #pragma unroll
    for (int j = 0; j < BK / 8; j++) {
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
      #pragma unroll
      for (int kk = 0; kk < D / 8; kk++)
        mma_tf32(s[j], qa[kk], ks[j * 8 + g][kk * 8 + t], ks[j * 8 + g][kk * 8 + t + 4]);
    }
    float mx0 = NEG_INF, mx1 = NEG_INF;
    #pragma unroll
    for (int j = 0; j < BK / 8; j++) {
      #pragma unroll
      for (int e = 0; e < 2; e++) {
        const ll c = k0 + j * 8 + 2 * t + e;
        float a = NEG_INF, b = NEG_INF;
        if (c < LK) {
          a = s[j][e] * SCALE;
          b = s[j][2 + e] * SCALE;
          if (HAS_BIAS) {
            if (r0 < LQ) a += plane[(BROWS > 1 ? r0 * LK : 0) + c];
            if (r1 < LQ) b += plane[(BROWS > 1 ? r1 * LK : 0) + c];
          }
        }
        s[j][e] = a;
        s[j][2 + e] = b;
        mx0 = fmaxf(mx0, a);
        mx1 = fmaxf(mx1, b);
      }
    }
    #pragma unroll
    for (int o_ = 1; o_ < 4; o_ <<= 1) {   /* the four lanes of a row */
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, o_));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, o_));
    }
    const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
    const float u0 = n0 == NEG_INF ? 0.f : n0, u1 = n1 == NEG_INF ? 0.f : n1;   /* all masked so far */
    const float alpha0 = __expf(m0 - u0), alpha1 = __expf(m1 - u1);
    m0 = n0;
    m1 = n1;
    float sum0 = 0.f, sum1 = 0.f;
    #pragma unroll
    for (int j = 0; j < BK / 8; j++) {
      s[j][0] = __expf(s[j][0] - u0);
      s[j][1] = __expf(s[j][1] - u0);
      s[j][2] = __expf(s[j][2] - u1);
      s[j][3] = __expf(s[j][3] - u1);
      sum0 += s[j][0] + s[j][1];
      sum1 += s[j][2] + s[j][3];
    }
    l0 = l0 * alpha0 + sum0;
    l1 = l1 * alpha1 + sum1;
    #pragma unroll
    for (int j = 0; j < DV / 8; j++) {
      o[j][0] *= alpha0;
      o[j][1] *= alpha0;
      o[j][2] *= alpha1;
      o[j][3] *= alpha1;
    }
    #pragma unroll
    for (int j = 0; j < BK / 8; j++) {
      const unsigned pa[4] = {to_tf32(s[j][0]), to_tf32(s[j][2]), to_tf32(s[j][1]), to_tf32(s[j][3])};
      #pragma unroll
      for (int e = 0; e < DV / 8; e++)
        mma_tf32(o[e], pa, vs[j * 8 + 2 * t][e * 8 + g], vs[j * 8 + 2 * t + 1][e * 8 + g]);
    }
  }
  #pragma unroll
  for (int o_ = 1; o_ < 4; o_ <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, o_);
    l1 += __shfl_xor_sync(0xffffffffu, l1, o_);
  }
  const float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
  #pragma unroll
  for (int j = 0; j < DV / 8; j++) {
    const int e = j * 8 + 2 * t;
    if (r0 < LQ) {
      out[(n * LQ + r0) * DV + e] = o[j][0] * i0;
      out[(n * LQ + r0) * DV + e + 1] = o[j][1] * i0;
    }
    if (r1 < LQ) {
      out[(n * LQ + r1) * DV + e] = o[j][2] * i1;
      out[(n * LQ + r1) * DV + e + 1] = o[j][3] * i1;
    }
  }
}
"""


def key_tile(d: int, dv: int) -> Optional[int]:
    """Keys per shared-memory tile for heads of ``d`` / ``dv``, or None where the tensor-core
    kernel does not apply (head sizes not multiples of 8, or wider than ``MAX_HEAD``)."""
    if d % 8 or dv % 8 or not 0 < d <= MAX_HEAD or not 0 < dv <= MAX_HEAD:
        return None
    for bk in (64, 32, 16):
        if 4 * bk * (d + 4 + dv + 4) <= SHARED_BYTES:
            return bk
    return None


def attention_tc_source(name: str, n: int, lq: int, lk: int, d: int, dv: int, scale: float, inner: int,
                        bias_shape: Optional[tuple]) -> Tuple[str, Launch]:
    """CUDA source of one tensor-core attention kernel (every size a constant) and its launch."""
    bk = key_tile(d, dv)
    if bk is None:
        raise ValueError(f"tensor-core attention needs head dims that are multiples of 8 up to {MAX_HEAD}, "
                         f"got {d} and {dv}")
    bo, bi, br, _ = bias_shape or (1, 1, 1, lk)
    qtiles = -(-lq // QUERIES)
    defines = {"THREADS": THREADS, "LQ": f"{lq}LL", "LK": f"{lk}LL", "D": d, "DV": dv, "BK": bk, "QTILES": qtiles, "INNER": inner,
               "HAS_BIAS": int(bias_shape is not None), "BOUTER": bo, "BINNER": bi, "BROWS": br,
               "SCALE": f"{float(scale)!r}f"}
    head = "".join(f"#define {key} {val}\n" for key, val in defines.items())
    return head + _SOURCE.replace("NAME", name), Launch(n * qtiles, THREADS)
