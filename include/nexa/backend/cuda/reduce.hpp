#pragma once
// Deterministic column sums on the device: acc[c] += T(sum over rows r of term(r, c)), the sum
// taken in A. Stage 1: block (x, y) sums the rows of chunk y for a tile of columns into
// partial[y, c], each thread walking its column's rows in order. Stage 2: one thread per column
// adds the chunks' partials in chunk order. No atomics, and the chunking depends only on the
// row count, so the result has the same bits on every run and GPU.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/reduce.hpp holds CUDA kernels: compile this file with nvcc"
#endif

#include <cuda_runtime.h>

#include <algorithm>

#include "nexa/backend/cuda/buffer.hpp"
#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/launch.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa::cuda_backend {

inline constexpr index_t min_chunk_rows = 64;
inline constexpr index_t max_row_chunks = 1024;  // well under the 65535 limit of gridDim.y

template <class A, class Term>
__global__ void column_partial_kernel(index_t rows, index_t cols, index_t chunk_rows, Term term, A* partial) {
  const index_t chunk = blockIdx.y;
  const index_t r0 = chunk * chunk_rows;
  const index_t r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
  for (index_t c = launch::thread_index(); c < cols; c += launch::thread_stride()) {
    A sum = 0;
    for (index_t r = r0; r < r1; ++r) sum += term(r, c);
    partial[chunk * cols + c] = sum;
  }
}

template <class A, class T>
__global__ void column_finish_kernel(index_t chunks, index_t cols, const A* partial, T* acc) {
  for (index_t c = launch::thread_index(); c < cols; c += launch::thread_stride()) {
    A sum = 0;
    for (index_t k = 0; k < chunks; ++k) sum += partial[k * cols + c];
    acc[c] += static_cast<T>(sum);
  }
}

// term: a device functor, A operator()(index_t r, index_t c) const.
template <class A, class T, class Term>
void column_sums_accumulate(index_t rows, index_t cols, Term term, T* acc) {
  if (rows == 0 || cols == 0) return;
  const index_t chunk_rows = std::max(min_chunk_rows, (rows + max_row_chunks - 1) / max_row_chunks);
  const index_t chunks = (rows + chunk_rows - 1) / chunk_rows;
  auto partial = Tensor<A, cuda>::uninitialized({chunks, cols});
  const cudaStream_t stream = current_stream();
  const dim3 grid(launch::blocks_for(cols), static_cast<unsigned>(chunks));
  column_partial_kernel<A><<<grid, launch::threads, 0, stream>>>(rows, cols, chunk_rows, term, partial.data());
  check_launch("column_partial_kernel");
  column_finish_kernel<<<launch::blocks_for(cols), launch::threads, 0, stream>>>(chunks, cols, partial.data(), acc);
  check_launch("column_finish_kernel");
}

}  // namespace nexa::cuda_backend
