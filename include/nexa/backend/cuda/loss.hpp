#pragma once
// CUDA loss kernels: the same functions and formulas as LossKernel<cpu> (ops/loss_fwd.hpp).
// Cross-entropy takes one warp per row (max and sum of exponentials by warp reduction); squared
// errors one thread per element. Queued on the current context's stream.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/loss.hpp holds CUDA kernels: compile this file with nvcc"
#endif

#include <cuda_runtime.h>

#include <cstdint>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/launch.hpp"
#include "nexa/ops/loss_fwd.hpp"

namespace nexa {

namespace cuda_backend {

template <class T, class A>
__global__ void cross_entropy_rows_kernel(index_t n, index_t c, const T* x, const std::int32_t* targets,
                                          std::int32_t ignore_index, A inv, T* g, A* row_loss) {
  const unsigned lane = launch::lane();
  for (index_t i = launch::warp_index(); i < n; i += launch::warp_stride()) {
    const T* xi = x + i * c;
    T* gi = g + i * c;
    const std::int32_t t = targets[i];
    if (t == ignore_index) {
      for (index_t j = lane; j < c; j += launch::warp) gi[j] = T(0);
      if (lane == 0) row_loss[i] = A(0);
      continue;
    }
    A mx = A(xi[0]);
    for (index_t j = lane; j < c; j += launch::warp) mx = A(xi[j]) > mx ? A(xi[j]) : mx;
    mx = launch::warp_max(mx);
    A sum = 0;
    for (index_t j = lane; j < c; j += launch::warp) sum += exp(A(xi[j]) - mx);
    const A log_sum = log(launch::warp_sum(sum));
    if (lane == 0) row_loss[i] = log_sum - (A(xi[t]) - mx);
    for (index_t j = lane; j < c; j += launch::warp) {
      const A p = exp(A(xi[j]) - mx - log_sum);
      gi[j] = static_cast<T>((p - (j == t ? A(1) : A(0))) * inv);
    }
  }
}

template <class T>
__global__ void squared_errors_kernel(index_t n, const T* p, const T* y, double scale, T* g, double* sq) {
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) {
    const double d = static_cast<double>(p[i]) - static_cast<double>(y[i]);
    sq[i] = d * d;
    g[i] = static_cast<T>(scale * d);
  }
}

}  // namespace cuda_backend

template <>
struct LossKernel<cuda> {
  template <class T, class A>
  static void cross_entropy_rows(index_t n, index_t c, const T* x, const std::int32_t* targets,
                                 std::int32_t ignore_index, A inv, T* g, A* row_loss) {
    if (n == 0) return;
    cuda_backend::
        cross_entropy_rows_kernel<<<cuda_backend::launch::blocks_for(n, cuda_backend::launch::warps_per_block),
                                    cuda_backend::launch::threads, 0, cuda_backend::current_stream()>>>(
            n, c, x, targets, ignore_index, inv, g, row_loss);
    cuda_backend::check_launch("cross_entropy_rows_kernel");
  }
  template <class T>
  static void squared_errors(index_t n, const T* p, const T* y, double scale, T* g, double* sq) {
    if (n == 0) return;
    cuda_backend::squared_errors_kernel<<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads, 0,
                                          cuda_backend::current_stream()>>>(n, p, y, scale, g, sq);
    cuda_backend::check_launch("squared_errors_kernel");
  }
};

}  // namespace nexa
