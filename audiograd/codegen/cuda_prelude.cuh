/* audiograd CUDA kernel prelude: scalar helpers and block reductions for generated kernels. */
/* CUDA's device math library spells expf/sinf/logf/... (and the double versions) like libm. */
#define AG_INF __longlong_as_double(0x7ff0000000000000LL)
#define AG_NAN __longlong_as_double(0x7ff8000000000000LL)
#define AG_MAX(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define AG_MIN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))
#define AG_SIGN(a) ((a) > 0 ? 1 : ((a) < 0 ? -1 : (a)))
static __device__ __forceinline__ float ag_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
static __device__ __forceinline__ double ag_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

template <typename T> static __device__ __forceinline__ T ag_shfl_down(T v, int off) {
  return __shfl_down_sync(0xffffffffu, v, off);
}
template <> __device__ __forceinline__ unsigned char ag_shfl_down(unsigned char v, int off) {
  return (unsigned char)__shfl_down_sync(0xffffffffu, (int)v, off);
}
struct AgSum { template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; } };
struct AgMax { template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return AG_MAX(a, b); } };

/* Combine one value per thread of the block (blockDim.x a multiple of 32, at most 1024);
   the result is valid in thread 0. ``part`` is shared scratch of 32 values. */
template <typename T, typename Op>
static __device__ __forceinline__ T ag_block_reduce(T v, T* part, Op op, T identity) {
  for (int off = 16; off > 0; off >>= 1) v = op(v, ag_shfl_down(v, off));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  /* the scratch may still be read by the previous reduction */
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (int)(blockDim.x >> 5) ? part[lane] : identity;
    for (int off = 16; off > 0; off >>= 1) v = op(v, ag_shfl_down(v, off));
  }
  return v;
}
