"""C source for fused attention on the CPU: ``softmax(q @ k^T * scale + bias) @ v`` per batch.

The work is split into (batch, block of queries) tasks spread over OpenMP threads. A task
computes its block of scores (QB x Lk) with one BLAS product into a buffer of its thread, adds
the bias, turns each row into exponentials of its distance to the row's maximum (the row sums
kept aside), multiplies the block by V with a second BLAS product and divides each output row by
its sum. The whole score matrix never exists: a thread holds one block of it, small enough to
stay in its cache between the two products.

The BLAS is the one numpy's products run on, found in the process (``numpy_blas``) and reached
through ``dlopen``/``dlsym`` when the kernel first runs; each OpenMP thread asks it for one
thread of its own while it works, so the two levels of threads do not multiply. Where that
BLAS is not found, plain loops compute the same products.

A row whose scores are all -inf (a fully masked query) gives zeros, as PyTorch does.
"""
from __future__ import annotations

import ctypes
import functools
from typing import NamedTuple, Optional

from .prelude import PRELUDE

TEMPLATE = r"""
#include <dlfcn.h>
#include <stdlib.h>
typedef REAL real;
typedef long long ll;
typedef void (*ag_gemm_t)(int, int, int, BINT, BINT, BINT, real, const real*, BINT, const real*, BINT, real,
                          real*, BINT);
typedef int (*ag_threads_t)(int);
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

static ag_gemm_t ag_gemm;
static ag_threads_t ag_threads_local;
static int ag_resolved;

/* the BLAS product and the per-thread thread count, looked up once (both or neither) */
static void ag_resolve(void) {
  if (__atomic_load_n(&ag_resolved, __ATOMIC_ACQUIRE)) return;
#if USE_BLAS
  void* h = dlopen(BLAS_PATH, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
  if (h) {
    ag_gemm_t g = (ag_gemm_t)dlsym(h, GEMM_SYMBOL);
    ag_threads_t t = (ag_threads_t)dlsym(h, THREADS_SYMBOL);
    if (g && t) { ag_gemm = g; ag_threads_local = t; }
  }
#endif
  __atomic_store_n(&ag_resolved, 1, __ATOMIC_RELEASE);
}

/* s (rows x LK) = scale * q (rows x D) @ k^T (k: LK x D) */
static void ag_scores(real* restrict s, const real* restrict q, const real* restrict k, ll rows) {
  if (ag_gemm) {
    ag_gemm(ROW_MAJOR, NO_TRANS, TRANS, rows, LK, D, (real)SCALE, q, D, k, D, (real)0, s, LK);
    return;
  }
  for (ll i = 0; i < rows; i++)
    for (ll j = 0; j < LK; j++) {
      real acc = 0;
      #pragma omp simd reduction(+:acc)
      for (ll d = 0; d < D; d++) acc += q[i * D + d] * k[j * D + d];
      s[i * LK + j] = (real)SCALE * acc;
    }
}

/* o (rows x DV) = p (rows x LK) @ v (LK x DV) */
static void ag_values(real* restrict o, const real* restrict p, const real* restrict v, ll rows) {
  if (ag_gemm) {
    ag_gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, rows, DV, LK, (real)1, p, LK, v, DV, (real)0, o, DV);
    return;
  }
  for (ll i = 0; i < rows; i++) {
    real* restrict oi = o + i * DV;
    for (ll e = 0; e < DV; e++) oi[e] = 0;
    for (ll j = 0; j < LK; j++) {
      const real pij = p[i * LK + j];
      #pragma omp simd
      for (ll e = 0; e < DV; e++) oi[e] += pij * v[j * DV + e];
    }
  }
}

/* one row of scores -> its exponentials (max subtracted); returns 1 / their sum (0 for a row
   with no finite score, whose exponentials are all zero) */
static inline real ag_softmax_row(real* restrict row, const real* restrict bias) {
  real m = -AG_INF;
  if (bias) {
    #pragma omp simd reduction(max:m)
    for (ll j = 0; j < LK; j++) { row[j] += bias[j]; m = row[j] > m ? row[j] : m; }
  } else {
    #pragma omp simd reduction(max:m)
    for (ll j = 0; j < LK; j++) m = row[j] > m ? row[j] : m;
  }
  if (m == -AG_INF) m = 0;
  real sum = 0;
  #pragma omp simd reduction(+:sum)
  for (ll j = 0; j < LK; j++) { const real e = EXP(row[j] - m); row[j] = e; sum += e; }
  return sum > 0 ? (real)1 / sum : (real)0;
}

void NAME(char** restrict bufs) {
  real* restrict out = (real*)bufs[0];
  const real* restrict Q = (const real*)bufs[1];
  const real* restrict K = (const real*)bufs[2];
  const real* restrict V = (const real*)bufs[3];
  const real* restrict B = HAS_BIAS ? (const real*)bufs[4] : 0;
  ag_resolve();
  /* BLAS runs single-threaded inside the parallel region. Some OpenBLAS builds make this
     setting global rather than per thread, so only this thread saves and restores it: saved
     by each worker, the values would race and could leave BLAS on one thread for good. */
  const int prev = ag_gemm ? ag_threads_local(1) : 0;
  #pragma omp parallel num_threads(NTHREADS)
  {
    if (ag_gemm) ag_threads_local(1);
    real* s = (real*)malloc(sizeof(real) * QB * LK);
    real inv[QB];
    #pragma omp for schedule(dynamic, 1)
    for (ll task = 0; task < N * NB; task++) {
      const ll n = task / NB, i0 = (task % NB) * QB;
      const ll rows = LQ - i0 < QB ? LQ - i0 : QB;
      real* o = out + (n * LQ + i0) * DV;
      if (!s) {  /* no memory for the block: its outputs read NaN rather than garbage */
        for (ll x = 0; x < rows * DV; x++) o[x] = AG_NAN;
        continue;
      }
      ag_scores(s, Q + (n * LQ + i0) * D, K + n * LK * D, rows);
      const real* plane = 0;
      if (HAS_BIAS) plane = B + ((BOUTER > 1 ? n / INNER : 0) * BINNER + (BINNER > 1 ? n % INNER : 0)) * BROWS * LK;
      for (ll r = 0; r < rows; r++)
        inv[r] = ag_softmax_row(s + r * LK, HAS_BIAS ? plane + (BROWS > 1 ? (i0 + r) * LK : 0) : 0);
      ag_values(o, s, V + n * LK * DV, rows);
      for (ll r = 0; r < rows; r++) {
        #pragma omp simd
        for (ll e = 0; e < DV; e++) o[r * DV + e] *= inv[r];
      }
    }
    free(s);
  }
  if (ag_gemm) ag_threads_local(prev);
}
"""


class Blas(NamedTuple):
    """The BLAS library numpy's products run on: its path, the symbol of the cblas product for
    one dtype's letter (``gemm.format("s")``), the width of its integers, and the symbol that
    sets the calling thread's own thread count."""
    path: str
    gemm: str
    int_bits: int
    threads_local: str


# (cblas product symbol pattern, integer width), most specific first; a symbol whose integer
# width its name does not state is not used
_GEMM_SYMBOLS = (("scipy_cblas_{}gemm64_", 64), ("cblas_{}gemm64_", 64), ("scipy_cblas_{}gemm", 32))
_THREADS_SYMBOLS = ("openblas_set_num_threads_local", "scipy_openblas_set_num_threads_local64_",
                    "scipy_openblas_set_num_threads_local")


@functools.lru_cache(maxsize=None)
def numpy_blas() -> Optional[Blas]:
    """The OpenBLAS that numpy loaded into this process (read from the process's mappings), or
    None where it cannot be found or lacks a symbol the kernel needs."""
    import numpy  # noqa: F401  (numpy loads its BLAS when imported)
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        threads = next((t for t in _THREADS_SYMBOLS if hasattr(lib, t)), None)
        for pattern, bits in _GEMM_SYMBOLS:
            if threads and hasattr(lib, pattern.format("s")) and hasattr(lib, pattern.format("d")):
                return Blas(path, pattern, bits, threads)
    return None


def query_block(lq: int, batches: int = 1, nthreads: int = 1) -> int:
    """Rows of a task's query block: up to 128 (larger blocks spread the products' packing of
    K and V over more rows), fewer while that leaves under four tasks per thread; every block of
    a batch gets about the same number."""
    target = 128
    while target > 16 and batches * -(-lq // target) < 4 * nthreads:
        target //= 2
    blocks = max(1, -(-lq // target))
    return -(-lq // blocks)


def render_attention(name: str, ctype: str, n: int, lq: int, lk: int, d: int, dv: int, scale: float, inner: int,
                     bias_shape: Optional[tuple], nthreads: int, blas: Optional[Blas]) -> str:
    """Source of one attention kernel, every size a compile-time constant. ``bias_shape`` is the
    bias's (outer, inner, rows, Lk), or None without a bias; ``blas`` None computes the products
    with plain loops."""
    qb = query_block(lq, n, nthreads)
    bo, bi, br, _ = bias_shape or (1, 1, 1, lk)
    letter = "d" if ctype == "double" else "s"
    defines = {"N": n, "LQ": lq, "LK": lk, "D": d, "DV": dv, "INNER": inner, "HAS_BIAS": int(bias_shape is not None),
               "BOUTER": bo, "BINNER": bi, "BROWS": br, "QB": qb, "NB": -(-lq // qb), "NTHREADS": nthreads}
    head = "".join(f"#define {key} {val}LL\n" for key, val in defines.items())
    head += f"#define REAL {ctype}\n#define EXP {'exp' if ctype == 'double' else 'expf'}\n"
    head += f"#define SCALE {float(scale).hex()}\n#define USE_BLAS {int(blas is not None)}\n"
    if blas is not None:
        head += (f"#define BINT {'long long' if blas.int_bits == 64 else 'int'}\n"
                 f"#define BLAS_PATH {_c_string(blas.path)}\n#define GEMM_SYMBOL \"{blas.gemm.format(letter)}\"\n"
                 f"#define THREADS_SYMBOL \"{blas.threads_local}\"\n")
    else:
        head += "#define BINT long long\n"
    return PRELUDE + head + TEMPLATE.replace("NAME", name)


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
