"""``conv_rows`` on tensor cores (TF32) as one implicit-GEMM kernel: every tap in one pass.

    out[n, g*O + o, t] = bias[g*O + o] + sum_{c, k} A[g, o, c, k] * X[n, g*C + c, off[k] + t]

The per-tap cuBLAS products (``conv``) read the input and read and rewrite the whole
output once per tap; on the decoder's wide, shallow layers (128 channels, 440k steps) that
traffic is most of the time. Here a block of 256 threads owns a tile of BM output channels by
BN = 128 steps and walks the input channels BC at a time (8 for wide kernels, up to 32 for one
tap): each step stages the weight for all taps (``taps x BM x BC``, pre-packed in the order the
mma fragments read it, so that staging is one contiguous copy and every fragment one 16-byte
shared load) and the input rows it needs once (``BC x (BN + reach)``, halo included) in shared
memory with ``cp.async``, two or three steps in flight, and every tap reads its window of the
staged rows at its own offset. The 8 warps (2 along channels, 4 along steps) issue
``mma.sync.m16n8k8`` TF32 products into fp32 accumulators; the output is written once, with
the bias (and optionally a tensor of the output's shape: a residual) added.

The weight is packed (and rounded to TF32, round-to-nearest like cuBLAS) by a small kernel on
every call, so a weight computed in the same program (weight norm) is always current; inputs
are rounded as their fragments are loaded. Used only in the "tf32" and "bf16" precisions:
exact fp32 stays on cuBLAS.
"""
from __future__ import annotations

import hashlib
from typing import List, Optional, Sequence

THREADS = 256
# 8-step mma tiles per warp along the steps: a block covers BN = 4 warps x 8 x WARP_N_TILES steps
# (8 tiles, 256 steps, one block per multiprocessor, measured slower on an H100)
WARP_N_TILES = 4
# the kernel is used only while the staged halo stays short
MAX_REACH = 256
# shared memory a block may take: two blocks share a multiprocessor (228 KiB)
MAX_SMEM = 110 * 1024

_SOURCE = r"""
#define O_CH OCHLL
#define C_CH CCHLL
#define GROUPS GROUPSLL
#define T_LEN TLENLL
#define L_ROW LROWLL
#define NTAP NTAPLL
#define BM BMLL
#define BN BNLL
#define BC BCLL
#define STAGES STAGESLL
#define MT (BM / 32)                       /* 16-row mma tiles per warp (2 warps along channels) */
#define NT NTILESLL                        /* 8-step mma tiles per warp (4 warps along steps) */
#define KK (BC / 8)                        /* mma k-steps per tap and stage */
#define XW (BN + REACHLL)                  /* input steps a tile reads, halo included */
#define XW4 ((XW + 3) / 4 * 4)
#define SX ((XW4 + 31) / 32 * 32 + 8)      /* shared row stride of the input: 8 mod 32, no conflicts */
#define A_STAGE (NTAP * BM * BC)           /* weight floats per stage, in fragment order */
#define X_STAGE (BC * SX)
#define O_TILES ((O_CH + BM - 1) / BM)
#define C_TILES ((C_CH + BC - 1) / BC)

static __device__ __forceinline__ unsigned ag_tf32(float x) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

static __device__ __forceinline__ void ag_cp16(void* dst, const void* src, int bytes) {
  const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(d), "l"(src), "r"(bytes));
}

static __device__ __forceinline__ void ag_mma(float* d, const unsigned* a, const unsigned* b) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
               "{%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* The weight A[g, o, c, tap] (element strides SG, SO, SC, SK) rounded to TF32, in the order
   the mma fragments read it: [g][o tile][c tile][tap][k step][16-row tile][lane][4], zero
   outside the channels. Lane (r, q) = (lane / 4, lane % 4) holds rows r, r + 8 and columns
   q, q + 4 of its 16 x 8 tile as elements (r, q), (r + 8, q), (r, q + 4), (r + 8, q + 4). */
extern "C" __global__ void __launch_bounds__(256) NAME_pack(float* __restrict__ wp, const float* __restrict__ w) {
  const long long i = blockIdx.x * 256LL + threadIdx.x;
  if (i >= (long long)GROUPS * O_TILES * C_TILES * A_STAGE) return;
  long long r = i;
  const int e = r % 4; r /= 4;
  const int lane = r % 32; r /= 32;
  const int mt = r % (BM / 16); r /= BM / 16;
  const int kk = r % KK; r /= KK;
  const int k = r % NTAP; r /= NTAP;
  const int ct = r % C_TILES; r /= C_TILES;
  const int ot = r % O_TILES;
  const long long g = r / O_TILES;
  const int o = ot * BM + mt * 16 + (lane >> 2) + 8 * (e & 1);
  const int c = ct * BC + kk * 8 + (lane & 3) + 4 * (e >> 1);
  float v = 0.0f;
  if (o < O_CH && c < C_CH) v = w[g * (SGLL) + o * (long long)(SOLL) + c * (long long)(SCLL) + k * (long long)(SKLL)];
  wp[i] = __uint_as_float(ag_tf32(v));
}

extern "C" __global__ void __launch_bounds__(256, 2)
NAME(float* __restrict__ out, const float* __restrict__ wp, const float* __restrict__ x,
     const float* __restrict__ bias, const float* __restrict__ addend) {
  extern __shared__ float4 ag_smem[];
  float* const smem = (float*)ag_smem;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 2, wn = warp & 3, lg = lane >> 2, lt = lane & 3;
  const long long t0 = (long long)blockIdx.x * BN;
  const int ot = blockIdx.y;
  const long long ng = blockIdx.z;                 /* n * GROUPS + g */
  const long long g = ng % GROUPS;
  const float* const xrows = x + ng * C_CH * (long long)L_ROW;
  const float* const wtile = wp + (g * O_TILES + ot) * (long long)C_TILES * A_STAGE;

  float acc[MT][NT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  /* stage s <- weight and input rows of channel tile ct (an empty group past the last tile) */
  auto load = [&](int s, int ct) {
    if (ct < C_TILES) {
      float* as = smem + s * (A_STAGE + X_STAGE);
      float* xs = as + A_STAGE;
      const float* wsrc = wtile + (long long)ct * A_STAGE;
      for (int q = tid; q < A_STAGE / 4; q += 256) ag_cp16(as + q * 4, wsrc + q * 4, 16);
      for (int q = tid; q < BC * (XW4 / 4); q += 256) {
        const int c = q / (XW4 / 4), j = (q % (XW4 / 4)) * 4;
        const int cg = ct * BC + c;
        const long long col = t0 + j;
        const bool ok = cg < C_CH && col < L_ROW;   /* rows hold a multiple of 4 steps */
        ag_cp16(xs + c * SX + j, ok ? (const void*)(xrows + cg * (long long)L_ROW + col) : (const void*)x,
                ok ? 16 : 0);
      }
    }
    asm volatile("cp.async.commit_group;");
  };

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) load(s, s);
  for (int ct = 0; ct < C_TILES; ++ct) {
    asm volatile("cp.async.wait_group %0;" :: "n"(STAGES - 2));
    __syncthreads();
    load((ct + STAGES - 1) % STAGES, ct + STAGES - 1);   /* the slot computed last iteration */
    const float* as = smem + (ct % STAGES) * (A_STAGE + X_STAGE);
    const float* xs = as + A_STAGE;
#define TAP(k, off)                                                                        \
    _Pragma("unroll") for (int kk = 0; kk < KK; ++kk) {                                    \
      unsigned a[MT][4], b[NT][2];                                                         \
      _Pragma("unroll") for (int i = 0; i < MT; ++i) {                                     \
        const float4 v = *(const float4*)(as + ((((k) * KK + kk) * (BM / 16) + wm * MT + i) * 32 + lane) * 4); \
        a[i][0] = __float_as_uint(v.x);                                                    \
        a[i][1] = __float_as_uint(v.y);                                                    \
        a[i][2] = __float_as_uint(v.z);                                                    \
        a[i][3] = __float_as_uint(v.w);                                                    \
      }                                                                                    \
      _Pragma("unroll") for (int j = 0; j < NT; ++j) {                                     \
        const float* q = xs + (kk * 8 + lt) * SX + (off) + wn * NT * 8 + j * 8 + lg;       \
        b[j][0] = ag_tf32(q[0]);                                                           \
        b[j][1] = ag_tf32(q[4 * SX]);                                                      \
      }                                                                                    \
      _Pragma("unroll") for (int i = 0; i < MT; ++i)                                       \
        _Pragma("unroll") for (int j = 0; j < NT; ++j) ag_mma(acc[i][j], a[i], b[j]);     \
    }
TAPS
#undef TAP
  }
  asm volatile("cp.async.wait_group 0;");

  /* out[n, g*O + o, t] = acc (+ bias) (+ addend) */
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int o = ot * BM + wm * (BM / 2) + i * 16 + lg + 8 * h;
      if (o >= O_CH) continue;
      const float bo = HAS_BIAS ? bias[g * O_CH + o] : 0.0f;
      const long long row = (ng * O_CH + o) * (long long)T_LEN;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        const long long t = t0 + wn * NT * 8 + j * 8 + 2 * lt;
        float v0 = acc[i][j][2 * h] + bo, v1 = acc[i][j][2 * h + 1] + bo;
        if (T_LEN % 2 == 0 && t + 1 < T_LEN) {
          if (HAS_ADDEND) {
            const float2 r = *(const float2*)(addend + row + t);
            v0 += r.x;
            v1 += r.y;
          }
          *(float2*)(out + row + t) = make_float2(v0, v1);
        } else {
          if (t < T_LEN) out[row + t] = v0 + (HAS_ADDEND ? addend[row + t] : 0.0f);
          if (t + 1 < T_LEN) out[row + t + 1] = v1 + (HAS_ADDEND ? addend[row + t + 1] : 0.0f);
        }
      }
    }
}
"""


def block_steps() -> int:
    """Output steps one block covers."""
    return 32 * WARP_N_TILES


def stage_channels(taps: int) -> int:
    """Input channels staged per step: 8 for wide kernels, more for one to three taps, so that
    every stage holds a similar amount of work."""
    return 8 if taps >= 4 else 16 if taps >= 2 else 32


def smem_bytes(bm: int, taps: int, reach: int, stages: int = 0) -> int:
    """Dynamic shared memory of one block (``stages`` 0: the number ``pipeline_stages`` picks)."""
    bc = stage_channels(taps)
    xw4 = -(-(block_steps() + reach) // 4) * 4
    sx = -(-xw4 // 32) * 32 + 8
    stage = 4 * (taps * bm * bc + bc * sx)
    return (stages or pipeline_stages(bm, taps, reach)) * stage


def pipeline_stages(bm: int, taps: int, reach: int) -> int:
    """Copy stages in flight: as many as fit (up to 4), at least two."""
    return next((s for s in (4, 3) if smem_bytes(bm, taps, reach, s) <= MAX_SMEM), 2)


def block_rows(o: int, taps: int, reach: int = 0) -> Optional[int]:
    """Output channels per block for ``o`` channels (None: the weight tile does not fit)."""
    for bm in (128, 64, 32):
        if (bm == 32 or o > bm // 2) and smem_bytes(bm, taps, reach, 2) <= MAX_SMEM:
            return bm
    return None


def conv_tc_source(name: str, n: int, g: int, o: int, c: int, t: int, lrow: int, offsets: Sequence[int],
                   w_strides: Sequence[int], bm: int, has_bias: bool, has_addend: bool = False) -> str:
    """CUDA source of ``{name}_pack`` and ``{name}`` for one convolution's sizes."""
    sg, so, sc, sk = w_strides
    taps, reach = len(offsets), max(offsets)
    subs = {"OCH": o, "CCH": c, "GROUPS": g, "TLEN": t, "LROW": lrow, "NTAP": taps, "BM": bm, "BN": block_steps(),
            "NTILES": WARP_N_TILES,
            "BC": stage_channels(taps), "STAGES": pipeline_stages(bm, taps, reach), "REACH": reach,
            "SG": sg, "SO": so, "SC": sc, "SK": sk}
    src = _SOURCE
    for key, value in subs.items():
        src = src.replace(key + "LL", str(value))
    src = src.replace("TAPS", "\n".join(f"    TAP({k}, {off})" for k, off in enumerate(offsets)))
    src = src.replace("HAS_BIAS", str(has_bias).lower()).replace("HAS_ADDEND", str(has_addend).lower())
    return src.replace("NAME", name)


class TensorCoreConv:
    """The implicit-GEMM kernel for one ``conv_rows`` node; call it with the device buffers
    [out, weight base, x, (bias), (addend)] (float32; the weight is read at ``w_offset`` with
    element strides ``w_strides``)."""

    def __init__(self, n: int, g: int, o: int, c: int, t: int, lrow: int, offsets: Sequence[int], w_offset: int,
                 w_strides: Sequence[int], has_bias: bool, has_addend: bool = False):
        from .device import get_device
        from .renderer import Launch
        if not usable(o, c, t, lrow, offsets):
            raise ValueError(f"conv_rows: no tensor-core kernel for {o}x{c} channels, {t} steps, offsets {offsets}")
        self.dev = get_device()
        taps, reach = len(offsets), max(offsets)
        self.bm = block_rows(o, taps, reach)
        self.w_offset, self.has_bias, self.has_addend = w_offset, has_bias, has_addend
        o_tiles, c_tiles = -(-o // self.bm), -(-c // stage_channels(taps))
        self.packed_size = g * o_tiles * c_tiles * taps * self.bm * stage_channels(taps)
        self.packed = self.dev.empty((self.packed_size,), "float32")
        self.grid = (-(-t // block_steps()), o_tiles, n * g)
        self.smem = smem_bytes(self.bm, taps, reach)
        key = "_".join(str(v) for v in (n, g, o, c, t, lrow, self.bm, WARP_N_TILES, *offsets, *w_strides, has_bias,
                                         has_addend))
        name = f"ag_convtc_{hashlib.sha1(key.encode()).hexdigest()[:16]}"
        src = conv_tc_source(name, n, g, o, c, t, lrow, offsets, w_strides, self.bm, has_bias, has_addend)
        self.pack, self.conv = self.dev.get_many([(f"{name}_pack", src, Launch(-(-self.packed_size // 256), 256)),
                                                  (name, src, Launch(0, THREADS))])
        self.conv.fn.max_dynamic_shared_size_bytes = self.smem

    def __call__(self, bufs: List) -> None:
        out, w, x = bufs[:3]
        self.pack.fn((self.pack.grid,), (256,), (self.packed, w.data + 4 * self.w_offset))
        rest = list(bufs[3:])
        bias = rest.pop(0) if self.has_bias else out
        addend = rest.pop(0) if self.has_addend else out
        self.conv.fn(self.grid, (THREADS,), (out, self.packed, x, bias, addend), shared_mem=self.smem)


def usable(o: int, c: int, t: int, lrow: int, offsets: Sequence[int]) -> bool:
    """Whether the kernel serves these sizes: offsets within ``MAX_REACH``, rows holding a
    multiple of 4 steps (16-byte copies) and a weight tile that fits shared memory."""
    return (min(offsets) >= 0 and max(offsets) <= MAX_REACH and lrow % 4 == 0 and min(o, c, t) > 0
            and block_rows(o, len(offsets), max(offsets)) is not None)
