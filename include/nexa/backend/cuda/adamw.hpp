#pragma once
// CUDA AdamW update: train::adamw_update's formula, one thread per element in a grid-stride loop,
// with the step's coefficients rounded to T on the host exactly as for the CPU
// (train::AdamWCoefficients). Queued on the current context's stream.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/adamw.hpp holds CUDA kernels: compile this file with nvcc"
#endif

#include <cuda_runtime.h>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/launch.hpp"
#include "nexa/ops/adamw_fwd.hpp"

namespace nexa {

namespace cuda_backend {

// C = train::AdamWCoefficients<T>, passed by value (a few scalars).
template <class T, class C>
__global__ void adamw_kernel(T* w, const T* g, T* m, T* v, index_t n, C c, bool apply_decay) {
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) {
    T wi = w[i];
    const T gi = g[i];
    if (apply_decay) wi *= c.decay;
    const T mi = m[i] + c.one_minus_beta1 * (gi - m[i]);
    const T vi = v[i] * c.beta2 + c.one_minus_beta2 * gi * gi;
    const T denom = sqrt(vi) / c.bias_correction2_sqrt + c.eps;
    m[i] = mi;
    v[i] = vi;
    w[i] = wi + c.neg_step * (mi / denom);
  }
}

}  // namespace cuda_backend

template <>
struct AdamWKernel<cuda> {
  template <class T, class Coefficients>
  static void update(T* w, const T* g, T* m, T* v, index_t n, const Coefficients& c, bool apply_decay) {
    if (n == 0) return;
    cuda_backend::adamw_kernel<<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads, 0,
                                 cuda_backend::current_stream()>>>(w, g, m, v, n, c, apply_decay);
    cuda_backend::check_launch("adamw_kernel");
  }
};

}  // namespace nexa
