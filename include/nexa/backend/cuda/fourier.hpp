#pragma once
// CUDA Fourier features of m/z: the formula of FourierKernel<cpu> (ops/fourier_fwd.hpp), one
// thread per (token, frequency) writing its sin and cos, in double. Queued on the current
// context's stream.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/fourier.hpp holds CUDA kernels: compile this file with nvcc"
#endif

#include <cuda_runtime.h>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/launch.hpp"
#include "nexa/ops/fourier_fwd.hpp"

namespace nexa {

namespace cuda_backend {

template <class T>
__global__ void fourier_features_kernel(index_t n, index_t F, const T* mz, const double* angular, T* out) {
  for (index_t i = launch::thread_index(); i < n * F; i += launch::thread_stride()) {
    const index_t t = i / F, k = i % F;
    const double a = static_cast<double>(mz[t]) * angular[k];
    T* row = out + t * 2 * F;
    row[k] = static_cast<T>(sin(a));
    row[F + k] = static_cast<T>(cos(a));
  }
}

}  // namespace cuda_backend

template <>
struct FourierKernel<cuda> {
  template <class T>
  static void features(index_t n, index_t F, const T* mz, const double* angular, T* out) {
    if (n == 0 || F == 0) return;
    cuda_backend::fourier_features_kernel<<<cuda_backend::launch::blocks_for(n * F), cuda_backend::launch::threads, 0,
                                            cuda_backend::current_stream()>>>(n, F, mz, angular, out);
    cuda_backend::check_launch("fourier_features_kernel");
  }
};

}  // namespace nexa
