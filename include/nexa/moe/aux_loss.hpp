#pragma once
// Router auxiliary losses and their gradients.
//   Switch load balancing: L = alpha * N * sum_i f_i P_i, f_i = share of tokens whose first choice
//     is expert i (a count: no gradient), P_i = mean routing probability of expert i.
//   ST-MoE router z-loss:  L = c_z * mean_t logsumexp(logits_t)^2.
#include <cmath>
#include <cstdint>
#include <vector>

#include "nexa/core/tensor.hpp"

namespace nexa {

struct AuxLosses {
  double load_balance = 0.0;  // already multiplied by its coefficient
  double z_loss = 0.0;        // likewise
  double supervised = 0.0;    // routers trained on domain labels (SequenceClassifierRouter), likewise
  [[nodiscard]] double total() const { return load_balance + z_loss + supervised; }
};

// f_i: fraction of tokens whose first choice (experts[t, 0]) is i.
template <class A>
std::vector<A> first_choice_fractions(const Tensor<std::int32_t, cpu>& experts, index_t num_experts) {
  std::vector<A> f(static_cast<std::size_t>(num_experts), A(0));
  const index_t tokens = experts.dim(0), k = experts.dim(1);
  for (index_t t = 0; t < tokens; ++t) f[static_cast<std::size_t>(experts.data()[t * k])] += A(1);
  for (A& v : f) v /= static_cast<A>(tokens > 0 ? tokens : 1);
  return f;
}

// Adds coef * N * f_i / T to d_probs[t, i] and returns the loss value.
template <class A>
double load_balance_loss(const Tensor<A, cpu>& probs, const Tensor<std::int32_t, cpu>& experts, double coef,
                         Tensor<A, cpu>* d_probs) {
  const index_t tokens = probs.dim(0), n = probs.dim(1);
  if (coef == 0.0 || tokens == 0) return 0.0;
  const std::vector<A> f = first_choice_fractions<A>(experts, n);
  std::vector<double> mean_p(static_cast<std::size_t>(n), 0.0);
  for (index_t t = 0; t < tokens; ++t)
    for (index_t i = 0; i < n; ++i) mean_p[static_cast<std::size_t>(i)] += probs.data()[t * n + i];
  double loss = 0;
  for (index_t i = 0; i < n; ++i) loss += f[static_cast<std::size_t>(i)] * mean_p[static_cast<std::size_t>(i)];
  loss *= coef * static_cast<double>(n) / static_cast<double>(tokens);
  if (d_probs) {
    for (index_t t = 0; t < tokens; ++t)
      for (index_t i = 0; i < n; ++i)
        d_probs->data()[t * n + i] += static_cast<A>(coef * static_cast<double>(n) * f[static_cast<std::size_t>(i)] /
                                                     static_cast<double>(tokens));
  }
  return loss;
}

// Adds c_z * 2 * z_t * softmax(logits_t) / T to d_logits[t] and returns the loss value.
template <class A>
double z_loss(const Tensor<A, cpu>& logits, const Tensor<A, cpu>& probs, double coef, Tensor<A, cpu>* d_logits) {
  const index_t tokens = logits.dim(0), n = logits.dim(1);
  if (coef == 0.0 || tokens == 0) return 0.0;
  double loss = 0;
  for (index_t t = 0; t < tokens; ++t) {
    const A* z = logits.data() + t * n;
    A zmax = z[0];
    for (index_t i = 1; i < n; ++i) zmax = std::max(zmax, z[i]);
    A sum = 0;
    for (index_t i = 0; i < n; ++i) sum += std::exp(z[i] - zmax);
    const A lse = zmax + std::log(sum);
    loss += static_cast<double>(lse) * static_cast<double>(lse);
    if (d_logits) {
      const A g = static_cast<A>(coef * 2.0 / static_cast<double>(tokens)) * lse;
      for (index_t i = 0; i < n; ++i) d_logits->data()[t * n + i] += g * probs.data()[t * n + i];
    }
  }
  return coef * loss / static_cast<double>(tokens);
}

}  // namespace nexa
