#pragma once
// AuxLossKernel<cpu>: the router auxiliary losses on the host (formulas in moe/aux_loss.hpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "nexa/core/device.hpp"
#include "nexa/moe/aux_loss_fwd.hpp"

namespace nexa {

template <>
struct AuxLossKernel<cpu> {
  template <class A>
  static double load_balance(const A* probs, const std::int32_t* experts, index_t tokens, index_t n, index_t k,
                             double coef, A* d_probs) {
    std::vector<A> f(static_cast<std::size_t>(n), A(0));  // share of first choices
    for (index_t t = 0; t < tokens; ++t) f[static_cast<std::size_t>(experts[t * k])] += A(1);
    for (A& v : f) v /= static_cast<A>(tokens);
    std::vector<double> mean_p(static_cast<std::size_t>(n), 0.0);
    for (index_t t = 0; t < tokens; ++t)
      for (index_t i = 0; i < n; ++i) mean_p[static_cast<std::size_t>(i)] += probs[t * n + i];
    double loss = 0;
    for (index_t i = 0; i < n; ++i) loss += f[static_cast<std::size_t>(i)] * mean_p[static_cast<std::size_t>(i)];
    loss *= coef * static_cast<double>(n) / static_cast<double>(tokens);
    if (d_probs) {
      for (index_t t = 0; t < tokens; ++t)
        for (index_t i = 0; i < n; ++i)
          d_probs[t * n + i] += static_cast<A>(coef * static_cast<double>(n) * f[static_cast<std::size_t>(i)] /
                                               static_cast<double>(tokens));
    }
    return loss;
  }

  template <class A>
  static double z_loss(const A* logits, const A* probs, index_t tokens, index_t n, double coef, A* d_logits) {
    double loss = 0;
    for (index_t t = 0; t < tokens; ++t) {
      const A* z = logits + t * n;
      A zmax = z[0];
      for (index_t i = 1; i < n; ++i) zmax = std::max(zmax, z[i]);
      A sum = 0;
      for (index_t i = 0; i < n; ++i) sum += std::exp(z[i] - zmax);
      const A lse = zmax + std::log(sum);
      loss += static_cast<double>(lse) * static_cast<double>(lse);
      if (d_logits) {
        const A g = static_cast<A>(coef * 2.0 / static_cast<double>(tokens)) * lse;
        for (index_t i = 0; i < n; ++i) d_logits[t * n + i] += g * probs[t * n + i];
      }
    }
    return coef * loss / static_cast<double>(tokens);
  }
};

}  // namespace nexa
