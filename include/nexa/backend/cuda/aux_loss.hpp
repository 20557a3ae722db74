#pragma once
// AuxLossKernel<cuda>: the router auxiliary losses on the GPU, with the CPU kernel's formulas
// (moe/aux_loss.hpp) and no float atomics, so values are reproducible from run to run:
//   load_balance  first-choice counts by an integer histogram (exact in any order), per-expert
//                 probability sums in double (one block per expert, fixed tree), then the loss
//                 on the host from n counts and n sums; the gradient adds one value per expert.
//   z_loss        logsumexp per row (one warp per token), summed on the host in token order as
//                 the CPU does; the gradient adds g_t * probs[t, i].
// Both wait for the stream: the loss value is returned on the host.
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
#include "nexa/backend/cuda/routing.hpp"
#include "nexa/core/device.hpp"
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
  __shared__ double partial[block_threads];
  const int i = static_cast<int>(blockIdx.x);
  double acc = 0;
  for (index_t t = threadIdx.x; t < tokens; t += block_threads) acc += static_cast<double>(probs[t * n + i]);
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = block_threads / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) sums[i] = partial[0];
}

// d[t, i] += per_column[i].
template <class A>
__global__ void add_per_column_kernel(const A* per_column, index_t rows, int n, A* d) {
  const index_t total = rows * n;
  for (index_t j = global_thread(); j < total; j += thread_count()) d[j] += per_column[j % n];
}

// lse[t] = logsumexp(logits[t, :]); one warp per token.
template <class A>
__global__ void row_logsumexp_kernel(const A* logits, index_t tokens, int n, A* lse) {
  const int lane = static_cast<int>(threadIdx.x % warp_size);
  for (index_t t = global_warp(); t < tokens; t += warp_count()) {
    const A* z = logits + t * n;
    A zmax = -static_cast<A>(INFINITY);
    for (int i = lane; i < n; i += warp_size) zmax = z[i] > zmax ? z[i] : zmax;
    zmax = warp_max(zmax);
    A sum = 0;
    for (int i = lane; i < n; i += warp_size) sum += device_exp(z[i] - zmax);
    sum = warp_sum(sum);
    if (lane == 0) lse[t] = zmax + log(sum);
  }
}

// d_logits[t, i] += (scale * lse[t]) * probs[t, i], the CPU's expression.
template <class A>
__global__ void z_loss_grad_kernel(const A* lse, const A* probs, index_t tokens, int n, A scale, A* d_logits) {
  const index_t total = tokens * n;
  for (index_t j = global_thread(); j < total; j += thread_count()) d_logits[j] += scale * lse[j / n] * probs[j];
}

}  // namespace cuda_backend

template <>
struct AuxLossKernel<cuda> {
  template <class A>
  static double load_balance(const A* probs, const std::int32_t* experts, index_t tokens, index_t n, index_t k,
                             double coef, A* d_probs) {
    using namespace cuda_backend;
    require(n <= 1 << 14, "load_balance_loss", "at most 16384 experts on the GPU, got ", n);
    const cudaStream_t stream = current_stream();
    Tensor<std::int32_t, cuda> counts = Tensor<std::int32_t, cuda>::uninitialized({n});
    Tensor<double, cuda> sums = Tensor<double, cuda>::uninitialized({n});
    const int experts_n = static_cast<int>(n);
    first_choice_count_kernel<std::int32_t>
        <<<1, block_threads, static_cast<std::size_t>(n) * sizeof(std::int32_t), stream>>>(experts, tokens, k,
                                                                                           experts_n, counts.data());
    check_launch("first_choice_count_kernel");
    column_sum_kernel<A><<<static_cast<unsigned>(n), block_threads, 0, stream>>>(probs, tokens, experts_n, sums.data());
    check_launch("column_sum_kernel");
    const std::vector<std::int32_t> count = counts.to_host();
    const std::vector<double> mean_p = sums.to_host();

    std::vector<A> f(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<A>(count[i]) / static_cast<A>(tokens);
    double loss = 0;
    for (std::size_t i = 0; i < f.size(); ++i) loss += f[i] * mean_p[i];
    loss *= coef * static_cast<double>(n) / static_cast<double>(tokens);
    if (d_probs) {
      std::vector<A> per_expert(f.size());
      for (std::size_t i = 0; i < f.size(); ++i)
        per_expert[i] = static_cast<A>(coef * static_cast<double>(n) * f[i] / static_cast<double>(tokens));
      const auto g = Tensor<A, cuda>::from_host({n}, per_expert);
      add_per_column_kernel<A>
          <<<grid_for(tokens * n, block_threads), block_threads, 0, stream>>>(g.data(), tokens, experts_n, d_probs);
      check_launch("add_per_column_kernel");
      NEXA_CUDA_CHECK(cudaStreamSynchronize(stream));  // `g` is freed on return
    }
    return loss;
  }

  template <class A>
  static double z_loss(const A* logits, const A* probs, index_t tokens, index_t n, double coef, A* d_logits) {
    using namespace cuda_backend;
    require(n <= std::numeric_limits<int>::max(), "z_loss", "at most 2^31 - 1 experts, got ", n);
    const cudaStream_t stream = current_stream();
    auto lse = Tensor<A, cuda>::uninitialized({tokens});
    const int experts_n = static_cast<int>(n);
    row_logsumexp_kernel<A>
        <<<grid_for(tokens, warps_per_block), block_threads, 0, stream>>>(logits, tokens, experts_n, lse.data());
    check_launch("row_logsumexp_kernel");
    if (d_logits) {
      const A scale = static_cast<A>(coef * 2.0 / static_cast<double>(tokens));
      z_loss_grad_kernel<A><<<grid_for(tokens * n, block_threads), block_threads, 0, stream>>>(
          lse.data(), probs, tokens, experts_n, scale, d_logits);
      check_launch("z_loss_grad_kernel");
    }
    double loss = 0;
    for (const A v : lse.to_host()) loss += static_cast<double>(v) * static_cast<double>(v);  // token order
    return coef * loss / static_cast<double>(tokens);
  }
};

}  // namespace nexa
