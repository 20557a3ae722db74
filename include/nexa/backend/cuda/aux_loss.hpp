#pragma once
// AuxLossKernel<cuda>: the router auxiliary losses' statistics and gradients on the GPU (formulas
// in moe/aux_loss.hpp), with no float atomics, so values are reproducible from run to run:
//   load_balance_stats  first-choice counts by an integer histogram (exact in any order) and
//                       per-expert probability sums in double (one block per expert, a fixed
//                       tree), copied to the host (the call waits for the stream);
//   add_per_column      adds one host value per expert to every row;
//   row_logsumexp       one warp per token; add_z_loss_grad adds scale * lse[t] * probs[t, i].
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/aux_loss.hpp holds CUDA kernels: compile this file with nvcc"
#endif

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "nexa/backend/cuda/buffer.hpp"
#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/launch.hpp"
#include "nexa/core/device.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/moe/aux_loss_fwd.hpp"

namespace nexa {

namespace cuda_backend {

// counts[i] = tokens whose first choice (experts[t * k]) is i. One block; integer atomics into
// shared memory, so the result does not depend on their order. (A template, as every kernel in
// these headers: a plain __global__ function defined in a header would be defined once per unit.)
template <class Index>
__global__ void first_choice_count_kernel(const Index* experts, index_t tokens, index_t k, int n, Index* counts) {
  extern __shared__ std::int32_t shared_counts[];
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) shared_counts[i] = 0;
  __syncthreads();
  for (index_t t = threadIdx.x; t < tokens; t += blockDim.x) {
    const Index e = experts[t * k];
    if (e >= 0 && e < n) atomicAdd(&shared_counts[e], 1);
  }
  __syncthreads();
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) counts[i] = shared_counts[i];
}

// sums[i] = sum over t of probs[t, i] in double: block i, a fixed strided split and a fixed tree.
template <class A>
__global__ void column_sum_kernel(const A* probs, index_t tokens, int n, double* sums) {
  __shared__ double partial[launch::threads];
  const int i = static_cast<int>(blockIdx.x);
  double acc = 0;
  for (index_t t = threadIdx.x; t < tokens; t += launch::threads) acc += static_cast<double>(probs[t * n + i]);
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (unsigned stride = launch::threads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) sums[i] = partial[0];
}

// d[t, i] += per_column[i].
template <class A>
__global__ void add_per_column_kernel(const A* per_column, index_t rows, int n, A* d) {
  const index_t total = rows * n;
  for (index_t j = launch::thread_index(); j < total; j += launch::thread_stride()) d[j] += per_column[j % n];
}

// lse[t] = logsumexp(logits[t, :]); one warp per token.
template <class A>
__global__ void row_logsumexp_kernel(const A* logits, index_t tokens, int n, A* lse) {
  const int lane = static_cast<int>(launch::lane());
  for (index_t t = launch::warp_index(); t < tokens; t += launch::warp_stride()) {
    const A* z = logits + t * n;
    A zmax = -static_cast<A>(INFINITY);
    for (int i = lane; i < n; i += static_cast<int>(launch::warp)) zmax = z[i] > zmax ? z[i] : zmax;
    zmax = launch::warp_max(zmax);
    A sum = 0;
    for (int i = lane; i < n; i += static_cast<int>(launch::warp)) sum += launch::device_exp(z[i] - zmax);
    sum = launch::warp_sum(sum);
    if (lane == 0) lse[t] = zmax + log(sum);
  }
}

// d_logits[t, i] += (scale * lse[t]) * probs[t, i], the CPU's expression.
template <class A>
__global__ void z_loss_grad_kernel(const A* lse, const A* probs, index_t tokens, int n, A scale, A* d_logits) {
  const index_t total = tokens * n;
  for (index_t j = launch::thread_index(); j < total; j += launch::thread_stride())
    d_logits[j] += scale * lse[j / n] * probs[j];
}

}  // namespace cuda_backend

template <>
struct AuxLossKernel<cuda> {
  template <class A>
  static void load_balance_stats(const A* probs, const std::int32_t* experts, index_t tokens, index_t n, index_t k,
                                 index_t* counts, double* sums) {
    using namespace cuda_backend;
    require(n <= 1 << 14, "load_balance_loss", "at most 16384 experts on the GPU, got ", n);
    const cudaStream_t stream = current_stream();
    auto device_counts = Tensor<std::int32_t, cuda>::uninitialized({n});
    auto device_sums = Tensor<double, cuda>::uninitialized({n});
    const int experts_n = static_cast<int>(n);
    first_choice_count_kernel<std::int32_t>
        <<<1, launch::threads, static_cast<std::size_t>(n) * sizeof(std::int32_t), stream>>>(
            experts, tokens, k, experts_n, device_counts.data());
    check_launch("first_choice_count_kernel");
    column_sum_kernel<A>
        <<<static_cast<unsigned>(n), launch::threads, 0, stream>>>(probs, tokens, experts_n, device_sums.data());
    check_launch("column_sum_kernel");
    const std::vector<std::int32_t> count = device_counts.to_host();
    const std::vector<double> sum = device_sums.to_host();
    for (std::size_t i = 0; i < count.size(); ++i) {
      counts[i] += count[i];
      sums[i] += sum[i];
    }
  }

  template <class A>
  static void add_per_column(const A* per_column, index_t rows, index_t n, A* d) {
    using namespace cuda_backend;
    require(n <= std::numeric_limits<int>::max(), "load_balance_loss", "at most 2^31 - 1 experts, got ", n);
    const auto values = Tensor<A, cuda>::from_host({n}, std::vector<A>(per_column, per_column + n));
    add_per_column_kernel<A><<<launch::blocks_for(rows * n), launch::threads, 0, current_stream()>>>(
        values.data(), rows, static_cast<int>(n), d);
    check_launch("add_per_column_kernel");
    NEXA_CUDA_CHECK(cudaStreamSynchronize(current_stream()));  // `values` is freed on return
  }

  template <class A>
  static void row_logsumexp(const A* logits, index_t tokens, index_t n, A* lse) {
    using namespace cuda_backend;
    require(n <= std::numeric_limits<int>::max(), "z_loss", "at most 2^31 - 1 experts, got ", n);
    row_logsumexp_kernel<A>
        <<<launch::blocks_for(tokens, launch::warps_per_block), launch::threads, 0, current_stream()>>>(
            logits, tokens, static_cast<int>(n), lse);
    check_launch("row_logsumexp_kernel");
  }

  template <class A>
  static void add_z_loss_grad(const A* lse, const A* probs, index_t tokens, index_t n, A scale, A* d) {
    using namespace cuda_backend;
    z_loss_grad_kernel<A><<<launch::blocks_for(tokens * n), launch::threads, 0, current_stream()>>>(
        lse, probs, tokens, static_cast<int>(n), scale, d);
    check_launch("z_loss_grad_kernel");
  }
};

}  // namespace nexa
