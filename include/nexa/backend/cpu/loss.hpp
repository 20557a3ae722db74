#pragma once
// CPU loss kernels (ops/loss_fwd.hpp): rows (elements) in parallel, split by index only.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "nexa/core/parallel.hpp"
#include "nexa/ops/loss_fwd.hpp"

namespace nexa {

template <>
struct LossKernel<cpu> {
  template <class T, class A>
  static void cross_entropy_rows(index_t n, index_t c, const T* x, const std::int32_t* targets,
                                 std::int32_t ignore_index, A inv, T* g, A* row_loss) {
    NEXA_PARALLEL_FOR_IF(n * c > parallel_grain)
    for (index_t i = 0; i < n; ++i) {
      const T* xi = x + i * c;
      T* gi = g + i * c;
      const std::int32_t t = targets[i];
      if (t == ignore_index) {
        std::fill_n(gi, c, T(0));
        row_loss[i] = A(0);
        continue;
      }
      A mx = A(xi[0]);
      for (index_t j = 1; j < c; ++j) mx = std::max(mx, A(xi[j]));
      A sum = 0;
      for (index_t j = 0; j < c; ++j) sum += std::exp(A(xi[j]) - mx);
      const A log_sum = std::log(sum);
      // loss_i = logsumexp(x_i) - x_i[t]; d/dx_ij = (softmax_ij - [j == t]) / valid.
      row_loss[i] = log_sum - (A(xi[t]) - mx);
      for (index_t j = 0; j < c; ++j) {
        const A p = std::exp(A(xi[j]) - mx - log_sum);
        gi[j] = static_cast<T>((p - (j == t ? A(1) : A(0))) * inv);
      }
    }
  }

  template <class T>
  static void squared_errors(index_t n, const T* p, const T* y, double scale, T* g, double* sq) {
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(p[i]) - static_cast<double>(y[i]);
      sq[i] = d * d;
      g[i] = static_cast<T>(scale * d);
    }
  }
};

}  // namespace nexa
