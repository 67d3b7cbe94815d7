"""C source for batched real FFTs of power-of-two length, laid out for spectrograms.

The input holds one frame per column: ``x[b, t, f]`` is sample ``t`` of frame ``f``. The
output stacks real and imaginary planes in ``torch.stft``'s (frequency, frame) order:
``y[b, 0, k, f] + i*y[b, 1, k, f] = sum_t x[b, t, f] * exp(-2*pi*i*k*t/n)`` for
``k <= n/2``. A block of VW neighbouring frames is transformed at once, one frame per vector
lane, so every butterfly is a vector operation and the block stays in cache for all passes.

A real FFT of length n is a complex FFT of length n/2 over ``z[j] = x[2j] + i*x[2j+1]``
(radix-2, decimation in time) followed by a split step that separates the even and odd
samples' spectra. The adjoint kernel (the gradient of the forward one with respect to its
input) runs the same steps transposed: the split step's adjoint, the inverse FFT, and the
unpacking of ``z``.
"""
from __future__ import annotations

from .prelude import PRELUDE

TEMPLATE = r"""
#include <math.h>
#include <stdlib.h>
#define H (NFFT / 2)   /* complex length */
#define M (H + 1)      /* frequency bins */
#if defined(__AVX512F__)
#define VW (64 / (int)sizeof(T))
#else
#define VW (32 / (int)sizeof(T))
#endif

static T TW_RE[H / 2], TW_IM[H / 2];   /* exp(-2 pi i j / H) */
static T SP_RE[M], SP_IM[M];           /* exp(-2 pi i k / NFFT) */
static int REV[H];

/* exp(-2 pi i k / n) for 0 <= k <= n/2, exact at the quarter and half turn (so the Nyquist
   bin's imaginary part is exactly zero, as in other FFTs: its angle is 0 or pi, not -pi) */
static void unit_root(int k, int n, T *re, T *im) {
  if (4 * k == n) { *re = 0; *im = -1; return; }
  if (2 * k == n) { *re = -1; *im = 0; return; }
  *re = (T)cos(2.0 * M_PI * k / n);
  *im = (T)-sin(2.0 * M_PI * k / n);
}

__attribute__((constructor)) static void init_tables(void) {
  for (int j = 0; j < H / 2; j++) unit_root(j, H, &TW_RE[j], &TW_IM[j]);
  for (int k = 0; k < M; k++) unit_root(k, NFFT, &SP_RE[k], &SP_IM[k]);
  int bits = 0;
  while ((1 << bits) < H) bits++;
  for (int j = 0; j < H; j++) {
    int r = 0;
    for (int b = 0; b < bits; b++) r |= ((j >> b) & 1) << (bits - 1 - b);
    REV[j] = r;
  }
}

/* in-place radix-2 passes over bit-reversed data; sign -1 forward, +1 inverse */
static inline void passes(T (*restrict zr)[VW], T (*restrict zi)[VW], const T sign) {
  for (int len = 2; len <= H; len <<= 1) {
    const int half = len / 2, step = H / len;
    for (int i = 0; i < H; i += len) {
      for (int j = 0; j < half; j++) {
        const T wr = TW_RE[j * step], wi = -sign * TW_IM[j * step];
        T *restrict ar = zr[i + j], *restrict ai = zi[i + j];
        T *restrict br = zr[i + j + half], *restrict bi = zi[i + j + half];
        #pragma omp simd
        for (int l = 0; l < VW; l++) {
          const T tr = br[l] * wr - bi[l] * wi;
          const T ti = br[l] * wi + bi[l] * wr;
          br[l] = ar[l] - tr; bi[l] = ai[l] - ti;
          ar[l] += tr; ai[l] += ti;
        }
      }
    }
  }
}

/* forward: x (B, NFFT, F) -> y (B, 2, M, F) */
static void block_forward(const T *restrict x, T *restrict y, long long c0, int w,
                          T (*restrict zr)[VW], T (*restrict zi)[VW]) {
  for (int j = 0; j < H; j++) {
    const T *er = x + (long long)(2 * REV[j]) * F + c0, *od = er + F;
    if (w == VW) {
      #pragma omp simd
      for (int l = 0; l < VW; l++) { zr[j][l] = er[l]; zi[j][l] = od[l]; }
    } else {
      for (int l = 0; l < VW; l++) { zr[j][l] = l < w ? er[l] : 0; zi[j][l] = l < w ? od[l] : 0; }
    }
  }
  passes(zr, zi, (T)-1);
  for (int k = 0; k < M; k++) {
    const int a = k % H, b = (H - k) % H;
    const T wr = SP_RE[k], wi = SP_IM[k];
    T *restrict outr = y + (long long)k * F + c0, *restrict outi = y + (long long)(M + k) * F + c0;
    T tr[VW] __attribute__((aligned(64))), ti[VW] __attribute__((aligned(64)));
    #pragma omp simd
    for (int l = 0; l < VW; l++) {
      /* even part E = (Z[a] + conj Z[b]) / 2, odd part O = (Z[a] - conj Z[b]) / 2i */
      const T er = (zr[a][l] + zr[b][l]) * (T)0.5, ei = (zi[a][l] - zi[b][l]) * (T)0.5;
      const T or_ = (zi[a][l] + zi[b][l]) * (T)0.5, oi = (zr[b][l] - zr[a][l]) * (T)0.5;
      tr[l] = er + wr * or_ - wi * oi;
      ti[l] = ei + wr * oi + wi * or_;
    }
    if (w == VW) {
      #pragma omp simd
      for (int l = 0; l < VW; l++) { outr[l] = tr[l]; outi[l] = ti[l]; }
    } else {
      for (int l = 0; l < w; l++) { outr[l] = tr[l]; outi[l] = ti[l]; }
    }
  }
}

/* adjoint: g (B, 2, M, F) -> x (B, NFFT, F). The split step is X[k] = A_k Z[k] + B_k conj Z[H-k]
   with A_k = (1 - i s_k)/2, B_k = (1 + i s_k)/2, s_k = exp(-2 pi i k / NFFT), so its adjoint is
   dZ[r] = conj(A_r) G_r + B_{H-r} conj(G_{H-r}), plus B_0 conj(G_0) + conj(A_H) G_H for r = 0. */
static void block_adjoint(const T *restrict g, T *restrict x, long long c0, int w,
                          T (*restrict zr)[VW], T (*restrict zi)[VW]) {
  for (int j = 0; j < H; j++) {
    const int r = REV[j], q = H - r;   /* the FFT reads its input bit-reversed */
    const T *gr = g + (long long)r * F + c0, *gi = g + (long long)(M + r) * F + c0;
    const T *hr = g + (long long)q * F + c0, *hi = g + (long long)(M + q) * F + c0;
    const T car = (T)0.5 * (1 + SP_IM[r]), cai = (T)0.5 * SP_RE[r];
    const T bqr = (T)0.5 * (1 - SP_IM[q]), bqi = (T)0.5 * SP_RE[q];
    int l = 0;
    for (; l < w; l++) {
      zr[j][l] = car * gr[l] - cai * gi[l] + bqr * hr[l] + bqi * hi[l];
      zi[j][l] = car * gi[l] + cai * gr[l] + bqi * hr[l] - bqr * hi[l];
    }
    for (; l < VW; l++) { zr[j][l] = 0; zi[j][l] = 0; }
    if (r == 0) {
      const T b0r = (T)0.5 * (1 - SP_IM[0]), b0i = (T)0.5 * SP_RE[0];
      const T ahr = (T)0.5 * (1 + SP_IM[H]), ahi = (T)0.5 * SP_RE[H];
      for (l = 0; l < w; l++) {
        zr[j][l] += b0r * gr[l] + b0i * gi[l] + ahr * hr[l] - ahi * hi[l];
        zi[j][l] += b0i * gr[l] - b0r * gi[l] + ahr * hi[l] + ahi * hr[l];
      }
    }
  }
  passes(zr, zi, (T)1);
  for (int j = 0; j < H; j++) {
    T *restrict er = x + (long long)(2 * j) * F + c0, *restrict od = er + F;
    for (int l = 0; l < w; l++) { er[l] = zr[j][l]; od[l] = zi[j][l]; }
  }
}

void NAME(char **restrict bufs) {
  T *restrict out = (T *)bufs[0];
  const T *restrict in = (const T *)bufs[1];
  const long long blocks = (F + VW - 1) / VW;
  #pragma omp parallel num_threads(NTHREADS)
  {
    T (*zr)[VW] = aligned_alloc(64, sizeof(T) * VW * H);
    T (*zi)[VW] = aligned_alloc(64, sizeof(T) * VW * H);
    #pragma omp for collapse(2) schedule(static)
    for (long long b = 0; b < BATCH; b++) {
      for (long long blk = 0; blk < blocks; blk++) {
        const long long c0 = blk * VW;
        const int w = F - c0 < VW ? (int)(F - c0) : VW;
        BODY;
      }
    }
    free(zr);
    free(zi);
  }
}
"""


def render_fft(name: str, adjoint: bool, n_fft: int, batch: int, frames: int, ctype: str, nthreads: int) -> str:
    """Source of one batched real-FFT kernel (``adjoint``: its transpose) for power-of-two
    ``n_fft >= 4`` over ``batch`` groups of ``frames`` columns."""
    if n_fft < 4 or n_fft & (n_fft - 1):
        raise ValueError(f"fft template: n_fft must be a power of two >= 4, got {n_fft}")
    if adjoint:
        body = "block_adjoint(in + b * 2LL * M * F, out + b * (long long)NFFT * F, c0, w, zr, zi)"
    else:
        body = "block_forward(in + b * (long long)NFFT * F, out + b * 2LL * M * F, c0, w, zr, zi)"
    head = f"typedef {ctype} T;\n#define NFFT {n_fft}\n#define F {frames}LL\n#define BATCH {batch}LL\n" \
           f"#define NTHREADS {nthreads}\n"
    return PRELUDE + head + TEMPLATE.replace("NAME", name).replace("BODY", body)
