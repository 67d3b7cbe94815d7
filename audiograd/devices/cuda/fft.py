"""Batched real FFTs on the GPU with cuFFT, in the layouts of ``devices.cpu.fft_template``.

With N = n_fft, M = N/2 + 1 bins, B batches and F frames (one frame per column):

- "rfft": x (B, N, F) -> y (B, 2, M, F). A tiled transpose copies every frame into a row of a
  scratch buffer (rows of 2M values, cuFFT's in-place layout), cuFFT's in-place real-to-complex
  transform turns each row into M complex bins, and a second transpose spreads the bins over
  the real and imaginary planes.
- "rfft_adjoint": g (B, 2, M, F) -> x (B, N, F), the transpose of "rfft":
  ``x[t] = sum_{k=0..N/2} Re(G_k exp(2 pi i k t / N))``, each bin counted once. cuFFT's
  complex-to-real transform of Z gives ``Z_0 + Z_{N/2} (-1)^t + 2 Re(sum_{0<k<N/2} Z_k exp(...))``,
  so the rows are loaded with the inner bins halved and the imaginary parts of the DC and
  Nyquist bins set to zero (they are ignored by the transpose, as in the CPU template).

Each call object owns its cuFFT plan (with its work area) and its scratch buffer, made when the
call is built; running it launches two kernels and one cuFFT execution on the current stream
and allocates nothing, so it can be captured into a CUDA graph.
"""
from __future__ import annotations

import math
from typing import Callable, List, Sequence

from ...dtypes import float32, float64
from ...graph.lazy import LazyNode
from .renderer import Launch

# side of the square tiles the transposes walk; TILE_ROWS rows of threads cover a tile
TILE = 32
TILE_ROWS = 8

_SOURCE = r"""
typedef REAL T;
typedef REAL2 C;
#define N NFFTLL
#define M (N / 2 + 1)
#define P (2 * M)   /* reals per scratch row: cuFFT's in-place layout */
#define F FRAMESLL
#define TN ((N + 31) / 32)
#define TM ((M + 31) / 32)
#define TF ((F + 31) / 32)

/* Block b of a (batch, row tile, frame tile) grid: its batch, first row and first frame. */
static __device__ __forceinline__ void ag_tile(long long tiles_rows, long long* b, long long* r0, long long* f0) {
  const long long blk = blockIdx.x;
  *f0 = (blk % TF) * 32;
  *r0 = ((blk / TF) % tiles_rows) * 32;
  *b = blk / TF / tiles_rows;
}

/* dst (cols x rows, leading dimension dld) <- the transpose of the 32 x 32 tile at (r0, c0) of
   src (rows x cols, leading dimension sld). */
static __device__ __forceinline__ void ag_transpose_tile(T* __restrict__ dst, long long dld, const T* __restrict__ src,
                                                         long long sld, long long rows, long long cols, long long r0,
                                                         long long c0) {
  __shared__ T tile[32][33];
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  for (int j = ty; j < 32; j += 8)
    if (r0 + j < rows && c0 + tx < cols) tile[j][tx] = src[(r0 + j) * sld + c0 + tx];
  __syncthreads();
  for (int j = ty; j < 32; j += 8)
    if (c0 + j < cols && r0 + tx < rows) dst[(c0 + j) * dld + r0 + tx] = tile[tx][j];
}

/* x (B, N, F) -> scratch rows (B * F, P): row b * F + f holds frame f of batch b. */
extern "C" __global__ void __launch_bounds__(256) NAME_frames_to_rows(T* __restrict__ s, const T* __restrict__ x) {
  long long b, t0, f0;
  ag_tile(TN, &b, &t0, &f0);
  ag_transpose_tile(s + b * F * P, P, x + b * N * F, F, N, F, t0, f0);
}

/* scratch rows of M complex bins -> y (B, 2, M, F), real plane then imaginary plane. */
extern "C" __global__ void __launch_bounds__(256) NAME_rows_to_planes(T* __restrict__ y, const C* __restrict__ s) {
  __shared__ T re[32][33], im[32][33];
  long long b, k0, f0;
  ag_tile(TM, &b, &k0, &f0);
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  for (int j = ty; j < 32; j += 8)
    if (f0 + j < F && k0 + tx < M) {
      const C v = s[(b * F + f0 + j) * M + k0 + tx];
      re[j][tx] = v.x;
      im[j][tx] = v.y;
    }
  __syncthreads();
  for (int j = ty; j < 32; j += 8)
    if (k0 + j < M && f0 + tx < F) {
      T* out = y + (b * 2 * M + k0 + j) * F + f0 + tx;
      out[0] = re[tx][j];
      out[M * F] = im[tx][j];
    }
}

/* g (B, 2, M, F) -> scratch rows of M complex bins, weighted for the complex-to-real transform. */
extern "C" __global__ void __launch_bounds__(256) NAME_planes_to_rows(C* __restrict__ s, const T* __restrict__ g) {
  __shared__ T re[32][33], im[32][33];
  long long b, k0, f0;
  ag_tile(TM, &b, &k0, &f0);
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  for (int j = ty; j < 32; j += 8)
    if (k0 + j < M && f0 + tx < F) {
      const T* in = g + (b * 2 * M + k0 + j) * F + f0 + tx;
      re[j][tx] = in[0];
      im[j][tx] = in[M * F];
    }
  __syncthreads();
  for (int j = ty; j < 32; j += 8) {
    const long long k = k0 + tx;
    if (f0 + j < F && k < M) {
      C v;
      if (k == 0 || k == M - 1) {
        v.x = re[tx][j];
        v.y = (T)0;
      } else {
        v.x = (T)0.5 * re[tx][j];
        v.y = (T)0.5 * im[tx][j];
      }
      s[(b * F + f0 + j) * M + k] = v;
    }
  }
}

/* scratch rows (B * F, P) -> x (B, N, F). */
extern "C" __global__ void __launch_bounds__(256) NAME_rows_to_frames(T* __restrict__ x, const T* __restrict__ s) {
  long long b, t0, f0;
  ag_tile(TN, &b, &t0, &f0);
  ag_transpose_tile(x + b * N * F, F, s + b * F * P, P, F, N, f0, t0);
}
"""


def fft_source(name: str, n_fft: int, frames: int, double: bool) -> str:
    """CUDA source of the four layout kernels (``{name}_frames_to_rows``, ``_rows_to_planes``,
    ``_planes_to_rows``, ``_rows_to_frames``) for one transform size and frame count."""
    real, real2 = ("double", "double2") if double else ("float", "float2")
    src = _SOURCE.replace("REAL2", real2).replace("REAL", real).replace("NFFT", str(n_fft))
    return src.replace("FRAMES", str(frames)).replace("NAME", name)


def _tiles(rows: int, frames: int) -> int:
    return -(-rows // TILE) * -(-frames // TILE)


class FFTCall:
    """One batched real FFT (``adjoint``: its transpose) over device buffers ``[out, in]``."""

    def __init__(self, adjoint: bool, n_fft: int, batch: int, frames: int, double: bool):
        from .device import get_device
        from cupy.cuda import cufft
        if n_fft < 4 or n_fft & (n_fft - 1):
            raise ValueError(f"cuda fft: n_fft must be a power of two >= 4, got {n_fft}")
        self.adjoint, self.n, self.batch, self.frames = adjoint, n_fft, batch, frames
        self.rows = batch * frames
        if self.rows == 0:
            return
        m = n_fft // 2 + 1
        if self.rows * 2 * m >= 2 ** 31:
            raise ValueError(f"cuda fft: {self.rows} frames of {n_fft} samples are too many for one cuFFT plan")
        dev = get_device()
        # the launch (grid) is kept with the kernel, so the name carries everything it depends on
        name = f"ag_fft_{batch}_{n_fft}_{frames}_{'d' if double else 'f'}"
        src = fft_source(name, n_fft, frames, double)
        threads = TILE * TILE_ROWS
        by_bins = Launch(batch * _tiles(m, frames), threads)
        by_samples = Launch(batch * _tiles(n_fft, frames), threads)
        if adjoint:
            kinds = [("planes_to_rows", by_bins), ("rows_to_frames", by_samples)]
            fft_type = cufft.CUFFT_Z2D if double else cufft.CUFFT_C2R
            layout = ((m,), m, (2 * m,), 2 * m)
            self.direction = cufft.CUFFT_INVERSE
        else:
            kinds = [("frames_to_rows", by_samples), ("rows_to_planes", by_bins)]
            fft_type = cufft.CUFFT_D2Z if double else cufft.CUFFT_R2C
            layout = ((2 * m,), 2 * m, (m,), m)
            self.direction = cufft.CUFFT_FORWARD
        self.pre, self.post = dev.get_many([(f"{name}_{k}", src, launch) for k, launch in kinds])
        inembed, idist, onembed, odist = layout
        last = n_fft if adjoint else m
        self.plan = cufft.PlanNd((n_fft,), inembed, 1, idist, onembed, 1, odist, fft_type, self.rows, "C", -1, last)
        self.scratch = dev.empty((self.rows * 2 * m,), float64.np if double else float32.np)

    def __call__(self, bufs: List) -> None:
        """Transform ``bufs[1]`` into ``bufs[0]`` on the current stream."""
        if self.rows == 0:
            return
        out, src = bufs[0], bufs[1]
        self.pre([self.scratch, src])
        self.plan.fft(self.scratch, self.scratch, self.direction)
        self.post([out, self.scratch])


def fft_call(node: LazyNode, inputs: Sequence[LazyNode]) -> Callable[[List], None]:
    """The GPU version of an "rfft" or "rfft_adjoint" library node (see ``schedule.fuse._fft_step``):
    a callable over the device buffers ``[out, in]``."""
    if node.dtype not in (float32, float64):
        raise NotImplementedError(f"{node.op}: cuda fft supports float32 and float64, not {node.dtype.name}")
    adjoint = node.op == "rfft_adjoint"
    n_fft = node.arg
    frames = node.shape[-1]
    batch = math.prod(node.shape[:-2] if adjoint else node.shape[:-3])
    return FFTCall(adjoint, n_fft, batch, frames, node.dtype is float64)
