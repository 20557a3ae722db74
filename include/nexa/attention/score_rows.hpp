#pragma once
// Row operations every attention policy shares: the masked softmax of one score row and the
// deterministic reduction of per-(batch, head) relative-bias gradients.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa {

namespace attention_detail {

// In-place softmax of one row, computed in acc_t<T>. For float and double the exponentials are
// Eigen's vectorised ones; weights below the smallest normal (masked keys among them) are exactly
// 0, as std::exp would give up to a subnormal.
template <class T>
void softmax_row(T* row, index_t n) {
  using A = acc_t<T>;
  if constexpr (std::same_as<T, A>) {
    using Array = Eigen::Array<A, Eigen::Dynamic, 1>;
    Eigen::Map<Array> r(row, n);
    // exp first, vectorised (a select around exp() would evaluate it one element at a time),
    // then flush what lies below the smallest normal: Eigen's exp clamps its argument, so a
    // masked score would otherwise come out as a tiny positive weight instead of 0.
    r -= r.maxCoeff();
    r = r.exp();
    for (index_t j = 0; j < n; ++j)
      if (row[j] < std::numeric_limits<A>::min()) row[j] = A(0);
    r *= A(1) / r.sum();
    return;
  }
  A mx = A(row[0]);
  for (index_t j = 1; j < n; ++j) mx = std::max(mx, A(row[j]));
  A sum = 0;
  for (index_t j = 0; j < n; ++j) {
    const A e = std::exp(A(row[j]) - mx);
    row[j] = static_cast<T>(e);
    sum += e;
  }
  const A inv = A(1) / sum;
  for (index_t j = 0; j < n; ++j) row[j] = static_cast<T>(A(row[j]) * inv);
}

// Sums per-(batch, head) partial relative-bias gradients [B * heads, 2S - 1] into d_bias
// [heads, 2S - 1] in batch order: deterministic whatever the thread count.
template <class T>
void reduce_bias_grad(const std::vector<T>& partial, index_t B, index_t H, index_t S, T* d_bias) {
  const index_t R = 2 * S - 1;
  for (index_t h = 0; h < H; ++h)
    for (index_t b = 0; b < B; ++b) {
      const T* src = partial.data() + (b * H + h) * R;
      for (index_t r = 0; r < R; ++r) d_bias[h * R + r] += src[r];
    }
}

}  // namespace attention_detail

}  // namespace nexa
