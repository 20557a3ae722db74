#pragma once
// AuxLossKernel<cpu>: the router auxiliary losses' statistics and gradients on the host
// (formulas in moe/aux_loss.hpp).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "nexa/core/device.hpp"
#include "nexa/moe/aux_loss_fwd.hpp"

namespace nexa {

template <>
struct AuxLossKernel<cpu> {
  template <class A>
  static void load_balance_stats(const A* probs, const std::int32_t* experts, index_t tokens, index_t n, index_t k,
                                 index_t* counts, double* sums) {
    for (index_t t = 0; t < tokens; ++t) ++counts[experts[t * k]];
    for (index_t t = 0; t < tokens; ++t)
      for (index_t i = 0; i < n; ++i) sums[i] += probs[t * n + i];
  }

  template <class A>
  static void add_per_column(const A* per_column, index_t rows, index_t n, A* d) {
    for (index_t t = 0; t < rows; ++t)
      for (index_t i = 0; i < n; ++i) d[t * n + i] += per_column[i];
  }

  template <class A>
  static void row_logsumexp(const A* logits, index_t tokens, index_t n, A* lse) {
    for (index_t t = 0; t < tokens; ++t) {
      const A* z = logits + t * n;
      const A zmax = *std::max_element(z, z + n);
      A sum = 0;
      for (index_t i = 0; i < n; ++i) sum += std::exp(z[i] - zmax);
      lse[t] = zmax + std::log(sum);
    }
  }

  template <class A>
  static void add_z_loss_grad(const A* lse, const A* probs, index_t tokens, index_t n, A scale, A* d) {
    for (index_t t = 0; t < tokens; ++t) {
      const A g = scale * lse[t];
      for (index_t i = 0; i < n; ++i) d[t * n + i] += g * probs[t * n + i];
    }
  }
};

}  // namespace nexa
