#pragma once
// CPU activation kernels (ops/activation_fwd.hpp): OpenMP over elements, split by index only.
#include "nexa/core/parallel.hpp"
#include "nexa/ops/activation_fwd.hpp"

namespace nexa {

template <>
struct ActivationKernel<cpu> {
  template <class Act, class T>
  static void forward(index_t n, const T* x, T* y) {
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t i = 0; i < n; ++i) y[i] = Act::value(x[i]);
  }
  template <class Act, class T>
  static void backward(index_t n, const T* x, const T* dy, T* dx) {
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t i = 0; i < n; ++i) dx[i] = dy[i] * Act::derivative(x[i]);
  }
  template <class T>
  static void relu_backward_from_output(index_t n, const T* y, T* g) {
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t i = 0; i < n; ++i) g[i] = y[i] > T(0) ? g[i] : T(0);
  }
  template <class Act, class T>
  static void gated_forward(index_t n, const T* a, const T* b, T* h) {
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t i = 0; i < n; ++i) h[i] = Act::value(a[i]) * b[i];
  }
  template <class Act, class T>
  static void gated_backward(index_t n, const T* a, const T* b, T* dh, T* db) {
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t i = 0; i < n; ++i) {
      const T g = dh[i];
      db[i] = g * Act::value(a[i]);
      dh[i] = g * b[i] * Act::derivative(a[i]);
    }
  }
};

}  // namespace nexa
