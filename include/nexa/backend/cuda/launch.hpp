#pragma once
// Launch shapes and warp/block helpers shared by nexa's elementwise, norm, dropout, loss and
// optimizer kernels. Kernels loop grid-stride (or warp-stride) over their work, so any grid
// size is correct; blocks_for only caps the grid.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/launch.hpp holds CUDA device code: compile this file with nvcc"
#endif

#include <cuda_runtime.h>

#include <algorithm>

#include "nexa/core/shape.hpp"

namespace nexa::cuda_backend::launch {

inline constexpr unsigned threads = 256;  // per block
inline constexpr unsigned warp = 32;
inline constexpr unsigned warps_per_block = threads / warp;
inline constexpr unsigned full_mask = 0xffffffffu;
inline constexpr index_t max_blocks = 65535;  // grid-stride loops cover the rest

// Blocks for `items` work items at `per_block` items per block: at least 1, at most max_blocks.
inline unsigned blocks_for(index_t items, index_t per_block = threads) {
  return static_cast<unsigned>(std::clamp<index_t>((items + per_block - 1) / per_block, 1, max_blocks));
}

// Threads for one block working along a row of `width` elements: whole warps, at most `threads`.
inline unsigned threads_for_row(index_t width) {
  return static_cast<unsigned>(std::clamp<index_t>((width + warp - 1) / warp * warp, warp, threads));
}

__device__ inline float device_exp(float x) { return expf(x); }
__device__ inline double device_exp(double x) { return exp(x); }

__device__ inline index_t thread_index() { return static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline index_t thread_stride() { return static_cast<index_t>(gridDim.x) * blockDim.x; }
// The global warp index and warp count (warp-uniform) of a launch whose blocks are whole warps.
__device__ inline index_t warp_index() { return thread_index() / warp; }
__device__ inline index_t warp_stride() { return thread_stride() / warp; }
__device__ inline unsigned lane() { return threadIdx.x % warp; }

// Butterfly sum and max: every lane ends with the same bits, and the summation order is fixed,
// so a row reduced by a warp gives the same result on every run.
template <class A>
__device__ A warp_sum(A v) {
  for (unsigned offset = warp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(full_mask, v, offset);
  return v;
}
template <class A>
__device__ A warp_max(A v) {
  for (unsigned offset = warp / 2; offset > 0; offset /= 2) {
    const A other = __shfl_xor_sync(full_mask, v, offset);
    v = other > v ? other : v;
  }
  return v;
}

}  // namespace nexa::cuda_backend::launch
