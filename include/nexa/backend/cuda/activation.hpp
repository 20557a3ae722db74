#pragma once
// CUDA activation kernels: the same functions and formulas as ActivationKernel<cpu>
// (ops/activation_fwd.hpp), one thread per element in grid-stride loops, on the current
// context's stream. The functors' value/derivative are NEXA_HOST_DEVICE, so both devices
// evaluate the same expressions (device erf/exp/tanh may differ from the host's in the last ulp).
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/activation.hpp holds CUDA kernels: compile this file with nvcc"
#endif

#include <cuda_runtime.h>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/launch.hpp"
#include "nexa/ops/activation_fwd.hpp"

namespace nexa {

namespace cuda_backend {

template <class Act, class T>
__global__ void activation_forward_kernel(index_t n, const T* x, T* y) {
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) y[i] = Act::value(x[i]);
}
template <class Act, class T>
__global__ void activation_backward_kernel(index_t n, const T* x, const T* dy, T* dx) {
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) dx[i] = dy[i] * Act::derivative(x[i]);
}
template <class T>
__global__ void relu_backward_from_output_kernel(index_t n, const T* y, T* g) {
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) g[i] = y[i] > T(0) ? g[i] : T(0);
}
template <class Act, class T>
__global__ void gated_forward_kernel(index_t n, const T* a, const T* b, T* h) {
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) h[i] = Act::value(a[i]) * b[i];
}
template <class Act, class T>
__global__ void gated_backward_kernel(index_t n, const T* a, const T* b, T* dh, T* db) {
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) {
    const T g = dh[i];
    db[i] = g * Act::value(a[i]);
    dh[i] = g * b[i] * Act::derivative(a[i]);
  }
}

}  // namespace cuda_backend

template <>
struct ActivationKernel<cuda> {
  template <class Act, class T>
  static void forward(index_t n, const T* x, T* y) {
    if (n == 0) return;
    cuda_backend::activation_forward_kernel<Act>
        <<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads, 0, cuda_backend::current_stream()>>>(
            n, x, y);
    cuda_backend::check_launch("activation_forward_kernel");
  }
  template <class Act, class T>
  static void backward(index_t n, const T* x, const T* dy, T* dx) {
    if (n == 0) return;
    cuda_backend::activation_backward_kernel<Act>
        <<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads, 0, cuda_backend::current_stream()>>>(
            n, x, dy, dx);
    cuda_backend::check_launch("activation_backward_kernel");
  }
  template <class T>
  static void relu_backward_from_output(index_t n, const T* y, T* g) {
    if (n == 0) return;
    cuda_backend::relu_backward_from_output_kernel<<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads,
                                                     0, cuda_backend::current_stream()>>>(n, y, g);
    cuda_backend::check_launch("relu_backward_from_output_kernel");
  }
  template <class Act, class T>
  static void gated_forward(index_t n, const T* a, const T* b, T* h) {
    if (n == 0) return;
    cuda_backend::gated_forward_kernel<Act>
        <<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads, 0, cuda_backend::current_stream()>>>(
            n, a, b, h);
    cuda_backend::check_launch("gated_forward_kernel");
  }
  template <class Act, class T>
  static void gated_backward(index_t n, const T* a, const T* b, T* dh, T* db) {
    if (n == 0) return;
    cuda_backend::gated_backward_kernel<Act>
        <<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads, 0, cuda_backend::current_stream()>>>(
            n, a, b, dh, db);
    cuda_backend::check_launch("gated_backward_kernel");
  }
};

}  // namespace nexa
