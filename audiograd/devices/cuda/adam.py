"""CUDA source and launcher for a fused multi-tensor Adam/AdamW step.

One launch updates every CUDA tensor of a group and dtype in place: it reads each parameter,
gradient and moment once and writes the parameter and the moments once. The tensors' device
pointers travel in the kernel's argument struct (a ``__grid_constant__`` table packed on the
host, again only when a pointer changes), so a step copies nothing to the device, allocates
nothing and never waits for the GPU, and a recorded launch can be replayed, or captured into a
CUDA graph, over the same buffers. The tensors' sizes are constants of the layout's source:
each tensor is cut into chunks of ``CHUNK`` elements, one block a chunk, and a block finds its
tensor by binary search in the table of each tensor's first block. A chunk whose buffers are
all 16-byte aligned moves float4 (double2) vectors, any other one element at a time.

Thread 0 of every block reads its tensor's step count and the learning rate (a float64 device
scalar, so replays follow LR schedules) and computes the bias corrections in double for step
``t = step + 1``; the last block to finish, found with an atomic counter that it resets, then
advances every tensor's step count. More launches are made only when the pointers overflow a
kernel's argument space.

Buffers, as for the CPU kernel: for each tensor ``param, grad, exp_avg, exp_avg_sq[,
max_exp_avg_sq], step`` (step a float64 scalar), then the learning rate (a float64 scalar).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from .renderer import Launch

# threads per block
THREADS = 256
# elements per block: a power of two from MIN_CHUNK up, grown until a launch has at most
# TARGET_BLOCKS blocks or the chunk reaches MAX_CHUNK
MIN_CHUNK, MAX_CHUNK, TARGET_BLOCKS = 2048, 1 << 16, 4096
# kernel argument bytes one launch may take (CUDA 12.1+ allows 32764 on Volta and later)
MAX_ARG_BYTES = 32000
# pointers ahead of the per-tensor ones in the argument struct: counter, learning rate
HEAD = 2

TEMPLATE = r"""
struct Args { void *ptr[HEAD + NT * PER]; };
union Lanes { V v; T s[VEC]; };

__constant__ long long SIZE[NT] = {SIZES};
__constant__ int FIRST[NT + 1] = {FIRSTS};

/* One element, in torch.optim.Adam's order and rounding steps. */
static __device__ __forceinline__ void adam(T &p, T g, T &m, T &v, T &vmax, const T neg_step_size,
                                            const T bc2_sqrt, const T decay) {
  if (MAXIMIZE) g = -g;
  if (WD != 0 && !DECOUPLED) g = g + (T)WD * p;
  if (WD != 0 && DECOUPLED) p = p * decay;
  const T w = (T)(1.0 - BETA1);
  m = w < (T)0.5 ? m + w * (g - m) : g - (g - m) * ((T)1 - w);  /* lerp(m, g, w) */
  v = v * (T)BETA2 + (T)(1.0 - BETA2) * g * g;
  T vu = v;
  if (AMSGRAD) {
    vmax = (vmax > v || vmax != vmax) ? vmax : v;  /* NaN-propagating maximum */
    vu = vmax;
  }
  p = p + (neg_step_size * m) / (SQRT(vu) / bc2_sqrt + (T)EPS);
}

extern "C" __global__ void __launch_bounds__(THREADS) NAME(const __grid_constant__ Args a) {
  int lo = 0, hi = NT - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (FIRST[mid] <= (int)blockIdx.x) lo = mid; else hi = mid - 1;
  }
  void *const *t = a.ptr + HEAD + lo * PER;
  const long long start = (long long)((int)blockIdx.x - FIRST[lo]) * CHUNK;
  const int n = (int)(SIZE[lo] - start < CHUNK ? SIZE[lo] - start : CHUNK);
  T *p = (T *)t[0] + start;
  const T *g = (const T *)t[1] + start;
  T *m = (T *)t[2] + start;
  T *v = (T *)t[3] + start;
  T *vmax = AMSGRAD ? (T *)t[4] + start : (T *)0;

  __shared__ T coef[3];
  __shared__ int last;
  if (threadIdx.x == 0) {
    const double lr = *(const double *)a.ptr[1];
    const double step = *(const double *)t[PER - 1] + 1.0;
    coef[0] = (T)(-(lr / (1.0 - pow(BETA1, step))));
    coef[1] = (T)sqrt(1.0 - pow(BETA2, step));
    coef[2] = (T)(1.0 - lr * WD);
  }
  __syncthreads();
  const T neg_step_size = coef[0], bc2_sqrt = coef[1], decay = coef[2];

  int done = 0;
  const unsigned long long addr = (unsigned long long)p | (unsigned long long)g | (unsigned long long)m |
                                  (unsigned long long)v | (unsigned long long)vmax;
  if ((addr & 15) == 0) {
    done = n / VEC * VEC;
    for (int k = threadIdx.x; k < n / VEC; k += blockDim.x) {
      Lanes P, G, M, S, X;
      P.v = ((const V *)p)[k];
      G.v = ((const V *)g)[k];
      M.v = ((const V *)m)[k];
      S.v = ((const V *)v)[k];
      if (AMSGRAD) X.v = ((const V *)vmax)[k];
#pragma unroll
      for (int q = 0; q < VEC; q++) adam(P.s[q], G.s[q], M.s[q], S.s[q], X.s[q], neg_step_size, bc2_sqrt, decay);
      ((V *)p)[k] = P.v;
      ((V *)m)[k] = M.v;
      ((V *)v)[k] = S.v;
      if (AMSGRAD) ((V *)vmax)[k] = X.v;
    }
  }
  for (int j = done + (int)threadIdx.x; j < n; j += blockDim.x) {
    T pj = p[j], mj = m[j], vj = v[j], xj = AMSGRAD ? vmax[j] : (T)0;
    adam(pj, g[j], mj, vj, xj, neg_step_size, bc2_sqrt, decay);
    p[j] = pj;
    m[j] = mj;
    v[j] = vj;
    if (AMSGRAD) vmax[j] = xj;
  }

  /* every block has read its step count before it counts itself done */
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    last = atomicAdd((unsigned *)a.ptr[0], 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (last) {
    for (int i = threadIdx.x; i < NT; i += blockDim.x) *(double *)a.ptr[HEAD + i * PER + PER - 1] += 1.0;
    if (threadIdx.x == 0) *(unsigned *)a.ptr[0] = 0u;
  }
}
"""


def chunk_for(sizes: Sequence[int]) -> int:
    """Elements per block for one launch over tensors of ``sizes`` elements."""
    chunk = MIN_CHUNK
    while chunk < MAX_CHUNK and sum(-(-int(s) // chunk) for s in sizes) > TARGET_BLOCKS:
        chunk *= 2
    return chunk


def plan_launches(n_tensors: int, per: int) -> List[Tuple[int, int]]:
    """``(first, end)`` tensor ranges, one per launch, each fitting the kernel argument space."""
    cap = max(1, (MAX_ARG_BYTES // 8 - HEAD) // per)
    return [(a, min(a + cap, n_tensors)) for a in range(0, n_tensors, cap)]


def render_adam_cuda(name: str, ctype: str, sizes: Sequence[int], *, beta1: float, beta2: float, eps: float,
                     weight_decay: float, decoupled: bool, amsgrad: bool, maximize: bool) -> Tuple[str, Launch]:
    """Source of one launch of the fused step over tensors of ``sizes`` (all non-empty) elements,
    and its launch configuration; the hyperparameters other than the learning rate are constants."""
    if ctype not in ("float", "double") or not sizes or min(sizes) < 1:
        raise ValueError(f"fused CUDA Adam needs non-empty float or double tensors, got {ctype} {list(sizes)}")
    chunk = chunk_for(sizes)
    firsts = [0]
    for s in sizes:
        firsts.append(firsts[-1] + -(-int(s) // chunk))
    vec, vtype = (4, "float4") if ctype == "float" else (2, "double2")
    defines = {"VEC": vec, "NT": len(sizes), "PER": 5 + bool(amsgrad), "HEAD": HEAD,
               "CHUNK": chunk, "THREADS": THREADS, "BETA1": repr(float(beta1)), "BETA2": repr(float(beta2)),
               "EPS": repr(float(eps)), "WD": repr(float(weight_decay)), "DECOUPLED": int(decoupled),
               "AMSGRAD": int(amsgrad), "MAXIMIZE": int(maximize), "SQRT": "sqrtf" if ctype == "float" else "sqrt"}
    head = f"typedef {ctype} T;\ntypedef {vtype} V;\n" + "".join(f"#define {k} {v}\n" for k, v in defines.items())
    body = (TEMPLATE.replace("NAME", name)
            .replace("{SIZES}", "{" + ", ".join(f"{int(s)}LL" for s in sizes) + "}")
            .replace("{FIRSTS}", "{" + ", ".join(str(f) for f in firsts) + "}"))
    return head + body, Launch(firsts[-1], THREADS)


class FusedAdamLaunches:
    """Launches a layout's kernels over the fused step's buffers (CuPy arrays, in the order the
    module docstring gives): packs their pointers into each launch's argument struct, again
    only when one has moved, and launches on the current stream."""

    def __init__(self, kernels: Sequence, ranges: Sequence[Tuple[int, int]], per: int, counters):
        self.kernels, self.ranges, self.per = list(kernels), list(ranges), per
        self.counters = counters            # one zeroed uint32 per launch, left at zero by each
        self._ptrs: tuple = ()
        self._args: list = []

    def _pack(self, ptrs: tuple) -> list:
        out = []
        for k, (a, b) in enumerate(self.ranges):
            words = np.array([self.counters.data.ptr + 4 * k, ptrs[-1]] + list(ptrs[a * self.per:b * self.per]),
                             np.uint64)
            out.append(words.view(np.dtype((np.void, words.nbytes)))[0])
        return out

    def __call__(self, bufs: Sequence) -> None:
        ptrs = tuple(b.data.ptr for b in bufs)
        if ptrs != self._ptrs:
            self._args, self._ptrs = self._pack(ptrs), ptrs
        for fn, arg in zip(self.kernels, self._args):
            fn([arg])


def fused_adam_launches(ctype: str, sizes: Sequence[int], *, beta1: float, beta2: float, eps: float,
                        weight_decay: float, decoupled: bool, amsgrad: bool, maximize: bool) -> "FusedAdamLaunches":
    """The compiled fused step over the group's buffers (per tensor: param, grad, exp_avg,
    exp_avg_sq[, max_exp_avg_sq], step; then lr), as one callable over those buffers."""
    from .device import get_device
    dev = get_device()
    per = 5 + bool(amsgrad)
    ranges = plan_launches(len(sizes), per)
    triples = []
    for k, (a, b) in enumerate(ranges):
        name = f"adam_{ctype}_{k}"
        src, launch = render_adam_cuda(name, ctype, sizes[a:b], beta1=beta1, beta2=beta2, eps=eps,
                                       weight_decay=weight_decay, decoupled=decoupled, amsgrad=amsgrad,
                                       maximize=maximize)
        triples.append((name, src, launch))
    return FusedAdamLaunches(dev.get_many(triples), ranges, per, dev.cp.zeros(len(ranges), np.uint32))
