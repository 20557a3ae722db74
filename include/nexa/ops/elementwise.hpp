#pragma once
// Small elementwise helpers used by composite modules (CPU; OpenMP over elements).
#include "nexa/core/parallel.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa::ops {

// y += alpha * x, elementwise; shapes must hold the same number of elements.
template <class T>
void axpy(T alpha, TensorView<const T, cpu> x, TensorView<T, cpu> y) {
  require(x.numel() == y.numel(), "axpy", "x has ", x.numel(), " elements (shape ", x.shape(), "), y has ", y.numel(),
          " (shape ", y.shape(), ")");
  const T* src = x.data();
  T* dst = y.data();
  const index_t n = x.numel();
  NEXA_PARALLEL_FOR_IF(n > parallel_grain)
  for (index_t i = 0; i < n; ++i) dst[i] += alpha * src[i];
}

// x *= alpha, elementwise.
template <class T>
void scale(T alpha, TensorView<T, cpu> x) {
  T* dst = x.data();
  const index_t n = x.numel();
  NEXA_PARALLEL_FOR_IF(n > parallel_grain)
  for (index_t i = 0; i < n; ++i) dst[i] *= alpha;
}

}  // namespace nexa::ops
