#pragma once
// CPU elementwise kernels (ops/elementwise_fwd.hpp): OpenMP over elements, split by index only.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "nexa/core/half.hpp"
#include "nexa/core/parallel.hpp"
#include "nexa/ops/elementwise_fwd.hpp"

namespace nexa {

namespace cpu_backend {
// half and bfloat16 convert from float only; wider types go through float (as torch's .to does).
template <class To, class From>
To convert(From x) {
  if constexpr (std::is_same_v<To, half> || std::is_same_v<To, bfloat16>)
    return To(static_cast<float>(x));
  else
    return static_cast<To>(x);
}
}  // namespace cpu_backend

template <>
struct ElementwiseKernel<cpu> {
  template <class T>
  static void axpy(index_t n, T alpha, const T* x, T* y) {
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t i = 0; i < n; ++i) y[i] += alpha * x[i];
  }
  template <class T>
  static void scale(index_t n, T alpha, T* x) {
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t i = 0; i < n; ++i) x[i] *= alpha;
  }
  template <class T>
  static void fill(index_t n, T value, T* x) {
    std::fill_n(x, n, value);
  }
  template <class T>
  static void copy(index_t n, const T* src, T* dst) {
    std::copy_n(src, n, dst);
  }
  template <class T>
  static void broadcast_rows(index_t rows, index_t cols, const T* row, T* y) {
    for (index_t r = 0; r < rows; ++r) std::copy_n(row, cols, y + r * cols);
  }
  template <class T>
  static void add_row(index_t rows, index_t cols, const T* row, T* y) {
    NEXA_PARALLEL_FOR_IF(rows * cols > parallel_grain)
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < cols; ++c) y[r * cols + c] += row[c];
  }
  template <class T>
  static void sum_rows(index_t rows, index_t cols, const T* x, T* acc) {
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < cols; ++c) acc[c] += x[r * cols + c];
  }
  template <class T>
  static bool all_finite(index_t n, const T* x) {
    bool finite = true;
    for (index_t i = 0; i < n && finite; ++i) finite = std::isfinite(x[i]);
    return finite;
  }
  template <class From, class To>
  static void cast(index_t n, const From* src, To* dst) {
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t i = 0; i < n; ++i) dst[i] = cpu_backend::convert<To>(src[i]);
  }
};

}  // namespace nexa
