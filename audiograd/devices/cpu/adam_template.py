"""C source for a fused multi-tensor Adam/AdamW step.

One kernel updates every parameter of a group in place: it reads each parameter, its
gradient and its two moment buffers once and writes the parameter and the moments once
(28 bytes per float32 parameter, the least an Adam step can move). The per-tensor step
counts are incremented and the bias corrections computed in double precision before the
parallel region; the elements of all tensors are then split evenly over the threads as one
long range, so small tensors cost nothing extra and big ones are shared.

Buffers: for each tensor ``param, grad, exp_avg, exp_avg_sq[, max_exp_avg_sq], step`` (step
is a float64 scalar), then the learning rate (a float64 scalar).
"""
from __future__ import annotations

from typing import Sequence

from .prelude import PRELUDE

TEMPLATE = r"""
#include <math.h>
static const long long SIZE[NT] = {SIZES};
static const long long START[NT] = {STARTS};
#define PER (5 + AMSGRAD)

static inline void update(T *restrict p, const T *restrict g, T *restrict m, T *restrict v,
                          T *restrict vmax, long long lo, long long hi,
                          const T step_size, const T bc2_sqrt, const T decay) {
  #pragma omp simd
  for (long long j = lo; j < hi; j++) {
    T gj = MAXIMIZE ? -g[j] : g[j];
    T pj = p[j];
    if (WD != 0 && !DECOUPLED) gj += (T)WD * pj;
    if (WD != 0 && DECOUPLED) pj *= decay;
    const T mj = m[j] + (gj - m[j]) * (T)(1.0 - BETA1);
    const T vj = v[j] * (T)BETA2 + (T)(1.0 - BETA2) * gj * gj;
    m[j] = mj;
    v[j] = vj;
    T vu = vj;
    if (AMSGRAD) { vu = vmax[j] > vj ? vmax[j] : vj; vmax[j] = vu; }
    p[j] = pj - step_size * (mj / (SQRT(vu) / bc2_sqrt + (T)EPS));
  }
}

void NAME(char **restrict bufs) {
  const double lr = *(const double *)bufs[NT * PER];
  T step_size[NT], bc2_sqrt[NT];
  for (int i = 0; i < NT; i++) {
    double *step = (double *)bufs[i * PER + PER - 1];
    const double t = *step + 1.0;
    *step = t;
    step_size[i] = (T)(lr / (1.0 - pow(BETA1, t)));
    bc2_sqrt[i] = (T)sqrt(1.0 - pow(BETA2, t));
  }
  const T decay = (T)(1.0 - lr * WD);
  #pragma omp parallel num_threads(NTHREADS)
  {
    const long long nth = omp_get_num_threads(), tid = omp_get_thread_num();
    const long long lo = TOTAL * tid / nth, hi = TOTAL * (tid + 1) / nth;
    for (int i = 0; i < NT; i++) {
      const long long a = lo > START[i] ? lo - START[i] : 0;
      const long long b = hi < START[i] + SIZE[i] ? hi - START[i] : SIZE[i];
      if (a >= b) continue;
      char **t = bufs + i * PER;
      update((T *)t[0], (const T *)t[1], (T *)t[2], (T *)t[3], AMSGRAD ? (T *)t[4] : 0, a, b,
             step_size[i], bc2_sqrt[i], decay);
    }
  }
}
"""


def render_adam(name: str, ctype: str, sizes: Sequence[int], *, beta1: float, beta2: float, eps: float,
                weight_decay: float, decoupled: bool, amsgrad: bool, maximize: bool, nthreads: int) -> str:
    """Source of one fused Adam step over tensors of ``sizes`` elements; the hyperparameters
    other than the learning rate are compile-time constants."""
    starts, total = [], 0
    for s in sizes:
        starts.append(total)
        total += int(s)
    defines = {"NT": len(sizes), "TOTAL": f"{total}LL", "BETA1": repr(float(beta1)), "BETA2": repr(float(beta2)),
               "EPS": repr(float(eps)), "WD": repr(float(weight_decay)), "DECOUPLED": int(decoupled),
               "AMSGRAD": int(amsgrad), "MAXIMIZE": int(maximize), "NTHREADS": nthreads}
    defines["SQRT"] = "sqrtf" if ctype == "float" else "sqrt"
    head = f"#include <omp.h>\ntypedef {ctype} T;\n" + "".join(f"#define {k} {v}\n" for k, v in defines.items())
    body = (TEMPLATE.replace("NAME", name)
            .replace("{SIZES}", "{" + ", ".join(f"{int(s)}LL" for s in sizes) + "}")
            .replace("{STARTS}", "{" + ", ".join(f"{s}LL" for s in starts) + "}"))
    return PRELUDE + head + body
