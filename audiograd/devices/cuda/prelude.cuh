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

/* One output reduced by ``nsplit`` blocks: each block passes its combined value ``v`` (valid in
   thread 0) as part ``index`` of ``parts``. The block that arrives last (counted in ``*arrived``)
   gets true in every thread, with all parts combined in a fixed order into ``v`` (valid in thread
   0), and rearms the counter for the next launch; the others get false. */
template <typename T, typename Op>
static __device__ __forceinline__ bool ag_split_reduce(T& v, T* parts, unsigned int* arrived, unsigned int nsplit,
                                                       unsigned int index, T* part, Op op, T identity) {
  __shared__ bool last;
  if (threadIdx.x == 0) {
    parts[index] = v;
    __threadfence();  /* the part is visible to every block before the count says it is there */
    last = atomicAdd(arrived, 1u) == nsplit - 1;
  }
  __syncthreads();
  if (!last) return false;
  __threadfence();
  v = identity;
  for (unsigned int i = threadIdx.x; i < nsplit; i += blockDim.x) v = op(v, ((volatile T*)parts)[i]);
  v = ag_block_reduce(v, part, op, identity);
  if (threadIdx.x == 0) *arrived = 0;
  return true;
}

/* Combine the values of threads that share a column: thread t holds column t % cols of row
   t / cols (rows * cols <= blockDim.x). Rows are paired in a fixed tree; the result is valid in
   the threads of row 0. ``smem`` is shared scratch of blockDim.x values. */
template <typename T, typename Op>
static __device__ __forceinline__ T ag_column_reduce(T v, T* smem, unsigned int cols, unsigned int rows, Op op) {
  const unsigned int row = threadIdx.x / cols;
  unsigned int half = 1;
  while (half * 2 < rows) half *= 2;
  __syncthreads();  /* the scratch may still be read by the previous reduction */
  smem[threadIdx.x] = v;
  __syncthreads();
  for (; half > 0; half >>= 1) {
    if (row < half && row + half < rows) {
      v = op(v, smem[threadIdx.x + half * cols]);
      smem[threadIdx.x] = v;
    }
    __syncthreads();
  }
  return v;
}

/* ag_split_reduce for a tile of ``cols`` outputs: the threads of row 0 pass their column's value
   ``v`` as part ``index``; in the block that arrives last every thread gets true, and row 0 the
   parts combined in a fixed order. */
template <typename T, typename Op>
static __device__ __forceinline__ bool ag_split_columns(T& v, T* parts, unsigned int* arrived, unsigned int nsplit,
                                                        unsigned int index, unsigned int cols, unsigned int rows,
                                                        T* smem, Op op, T identity) {
  __shared__ bool last;
  if (threadIdx.x < cols) parts[index * cols + threadIdx.x] = v;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(arrived, 1u) == nsplit - 1;
  __syncthreads();
  if (!last) return false;
  __threadfence();
  const unsigned int col = threadIdx.x % cols, row = threadIdx.x / cols;
  v = identity;
  if (row < rows)
    for (unsigned int i = row; i < nsplit; i += rows) v = op(v, ((volatile T*)parts)[i * cols + col]);
  v = ag_column_reduce(v, smem, cols, rows, op);
  if (threadIdx.x == 0) *arrived = 0;
  return true;
}
