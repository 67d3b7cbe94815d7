"""C source for the shifted-row matrix product behind convolutions.

    out[n, g*O + o, t] = bias[g*O + o] + sum_{c, k} A[g, o, c, k] * X[n, g*C + c, off[k] + t]

for t < T. With ``off[k] = k * dilation`` this is a stride-1 convolution read straight from the
padded input (no column copy); a strided convolution first splits its input into phases so
that every tap again reads a contiguous row. A register-blocked micro-kernel keeps an
MR x NR block of outputs in vector registers while it walks the channels and taps, so each
input vector is reused MR times and each weight NR times. A is read through its strides
(the weight's own layout, or a transposed view of it): its scalars are broadcast one by one,
so no repacking is needed.
"""
from __future__ import annotations

from typing import Sequence

from .prelude import PRELUDE

TEMPLATE = r"""
#if defined(__AVX512F__)
#define VW 16
#define MR 12
#else
#define VW 8
#define MR 6
#endif
#define NR (2 * VW)
typedef float vf __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4)));

static const long long OFF[K] = {OFFSETS};

/* one block of outputs: rows o0 .. o0+mr, columns t0 .. t0+ncols (ncols <= NR; input rows
   carry NR spare elements, so full vectors are always read) */
static inline __attribute__((always_inline)) void block(float* restrict out, const float* restrict a,
    const float* restrict x, const float* restrict bias, long long t0, int o0, const int mr, int ncols) {
  vf acc[MR][2];
  for (int r = 0; r < MR; r++) { acc[r][0] = (vf){0}; acc[r][1] = (vf){0}; }
  const float* ar = a + (long long)o0 * ASO;
  for (int c = 0; c < C; c++) {
    const float* xr = x + (long long)c * LROW + t0;
    for (int k = 0; k < K; k++) {
      const vf b0 = *(const vfu*)(xr + OFF[k]);
      const vf b1 = *(const vfu*)(xr + OFF[k] + VW);
      const float* ak = ar + (long long)c * ASC + (long long)k * ASK;
      for (int r = 0; r < mr; r++) {
        acc[r][0] += ak[(long long)r * ASO] * b0;
        acc[r][1] += ak[(long long)r * ASO] * b1;
      }
    }
  }
  for (int r = 0; r < mr; r++) {
    const float b = bias ? bias[o0 + r] : 0.0f;
    float* dst = out + (long long)(o0 + r) * T + t0;
    if (ncols == NR) {
      *(vfu*)dst = acc[r][0] + b;
      *(vfu*)(dst + VW) = acc[r][1] + b;
    } else {
      float tmp[NR];
      *(vfu*)tmp = acc[r][0] + b;
      *(vfu*)(tmp + VW) = acc[r][1] + b;
      for (int j = 0; j < ncols; j++) dst[j] = tmp[j];
    }
  }
}

void NAME(char** restrict bufs) {
  float* restrict y = (float*)bufs[0];
  const float* restrict A = (const float*)bufs[1];
  const float* restrict X = (const float*)bufs[2];
  const float* restrict B = HAS_BIAS ? (const float*)bufs[3] : 0;
  const long long tiles = (T + NR - 1) / NR;
  const long long chunks = (tiles + TILES_PER_CHUNK - 1) / TILES_PER_CHUNK;
  const int oblocks = (O + MR - 1) / MR;
  #pragma omp parallel for collapse(3) schedule(dynamic) num_threads(NTHREADS)
  for (long long ng = 0; ng < N * G; ng++) {
    for (long long ch = 0; ch < chunks; ch++) {
      for (int ob = 0; ob < oblocks; ob++) {
        const long long n = ng / G, g = ng % G;
        const float* a = A + AOFF + g * ASG;
        const float* x = X + (n * G + g) * C * LROW;
        const float* bias = HAS_BIAS ? B + g * O : 0;
        float* out = y + (n * G + g) * O * T;
        const int o0 = ob * MR;
        const long long tend = (ch + 1) * TILES_PER_CHUNK < tiles ? (ch + 1) * TILES_PER_CHUNK : tiles;
        for (long long tt = ch * TILES_PER_CHUNK; tt < tend; tt++) {
          const int ncols = T - tt * NR < NR ? (int)(T - tt * NR) : NR;
          if (o0 + MR <= O) block(out, a, x, bias, tt * NR, o0, MR, ncols);
          else block(out, a, x, bias, tt * NR, o0, O - o0, ncols);
        }
      }
    }
  }
}
"""

# spare elements every input row must carry past its last read (one full block of columns)
ROW_SLACK = 32


def render_conv(name: str, n: int, g: int, c: int, k: int, o: int, t: int, lrow: int,
                offsets: Sequence[int], a_strides: Sequence[int], a_offset: int, has_bias: bool,
                nthreads: int) -> str:
    """Source of one shifted-row product kernel; every size and stride is a compile-time
    constant. ``a_strides`` are A's element strides over (group, out, in, tap)."""
    sg, so, sc, sk = a_strides
    defines = {"N": n, "G": g, "C": c, "K": k, "O": o, "T": t, "LROW": lrow, "ASG": sg, "ASO": so, "ASC": sc,
               "ASK": sk, "AOFF": a_offset, "HAS_BIAS": int(has_bias), "NTHREADS": nthreads,
               "TILES_PER_CHUNK": 8}
    head = "".join(f"#define {key} {val}LL\n" for key, val in defines.items())
    body = TEMPLATE.replace("NAME", name).replace("{OFFSETS}", "{" + ", ".join(f"{v}LL" for v in offsets) + "}")
    return PRELUDE + head + body
