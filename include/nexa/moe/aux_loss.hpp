#pragma once
// Router auxiliary losses and their gradients, on any device (AuxLossKernel<D>).
//   Switch load balancing: L = alpha * N * sum_i f_i P_i, f_i = share of tokens whose first choice
//     is expert i (a count: no gradient), P_i = mean routing probability of expert i.
//   ST-MoE router z-loss:  L = c_z * mean_t logsumexp(logits_t)^2.
// Both are computed from sums over the batch (AuxStats): a batch split over ranks adds its
// ranks' statistics and then uses the same formulas (dist/expert_parallel.hpp).
#include <cstdint>
#include <type_traits>
#include <vector>

#include "nexa/backend/cpu/aux_loss.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/moe/aux_loss_fwd.hpp"

namespace nexa {

struct AuxLosses {
  double load_balance = 0.0;  // already multiplied by its coefficient
  double z_loss = 0.0;        // likewise
  double supervised = 0.0;    // routers trained on domain labels (SequenceClassifierRouter), likewise
  [[nodiscard]] double total() const { return load_balance + z_loss + supervised; }
};

// The sums both losses are made of. A part left empty (or 0) was not gathered: its loss is off.
struct AuxStats {
  index_t tokens = 0;                        // T
  std::vector<index_t> first_choice_counts;  // [N] tokens whose first choice is each expert
  std::vector<double> prob_sums;             // [N] sum over tokens of each expert's probability
  double logsumexp_squares = 0.0;            // sum over tokens of logsumexp(logits_t)^2
};

// Adds these rows' first-choice counts and probability sums to `stats`.
template <class A, class D>
void add_load_balance_stats(const Tensor<A, D>& probs, const Tensor<std::int32_t, D>& experts, AuxStats& stats) {
  const index_t tokens = probs.dim(0), n = probs.dim(1);
  require(experts.rank() == 2 && experts.dim(0) == tokens && experts.dim(1) >= 1, "load_balance_loss",
          "experts expected [", tokens, ", k >= 1], got ", experts.shape());
  stats.first_choice_counts.resize(static_cast<std::size_t>(n), 0);
  stats.prob_sums.resize(static_cast<std::size_t>(n), 0.0);
  if (tokens == 0) return;
  AuxLossKernel<D>::template load_balance_stats<A>(probs.data(), experts.data(), tokens, n, experts.dim(1),
                                                   stats.first_choice_counts.data(), stats.prob_sums.data());
}

// logsumexp of each row of `logits` [T, N] (kept for the z-loss gradient); adds their squares to `stats`.
template <class A, class D>
[[nodiscard]] Tensor<A, D> add_z_loss_stats(const Tensor<A, D>& logits, AuxStats& stats) {
  const index_t tokens = logits.dim(0), n = logits.dim(1);
  auto lse = Tensor<A, D>::uninitialized({tokens});
  if (tokens == 0) return lse;
  AuxLossKernel<D>::template row_logsumexp<A>(logits.data(), tokens, n, lse.data());
  for (const A v : lse.to_host()) stats.logsumexp_squares += static_cast<double>(v) * static_cast<double>(v);
  return lse;
}

// f_i in the routing's precision, as the gradient rounds it.
template <class A>
[[nodiscard]] A first_choice_share(const AuxStats& stats, std::size_t i) {
  return static_cast<A>(stats.first_choice_counts[i]) / static_cast<A>(stats.tokens);
}

template <class A>
[[nodiscard]] double load_balance_value(const AuxStats& stats, double coef) {
  if (coef == 0.0 || stats.tokens == 0) return 0.0;
  double loss = 0;
  for (std::size_t i = 0; i < stats.prob_sums.size(); ++i) loss += first_choice_share<A>(stats, i) * stats.prob_sums[i];
  return loss * (coef * static_cast<double>(stats.prob_sums.size()) / static_cast<double>(stats.tokens));
}

[[nodiscard]] inline double z_loss_value(const AuxStats& stats, double coef) {
  if (coef == 0.0 || stats.tokens == 0) return 0.0;
  return coef * stats.logsumexp_squares / static_cast<double>(stats.tokens);
}

// Adds coef * N * f_i / T (the batch's f and T) to every row of d_probs [rows, N]: these rows'
// share of the gradient.
template <class A, class D>
void add_load_balance_grad(const AuxStats& stats, double coef, Tensor<A, D>& d_probs) {
  const index_t rows = d_probs.dim(0), n = d_probs.dim(1);
  if (coef == 0.0 || rows == 0 || stats.tokens == 0) return;
  require(static_cast<index_t>(stats.first_choice_counts.size()) == n, "load_balance_loss", "statistics expected for ",
          n, " experts, got ", stats.first_choice_counts.size());
  std::vector<A> per_expert(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < per_expert.size(); ++i)
    per_expert[i] = static_cast<A>(coef * static_cast<double>(n) * first_choice_share<A>(stats, i) /
                                   static_cast<double>(stats.tokens));
  AuxLossKernel<D>::template add_per_column<A>(per_expert.data(), rows, n, d_probs.data());
}

// Adds c_z * 2 * lse_t * softmax(logits_t) / T (the batch's T) to d_logits [rows, N].
template <class A, class D>
void add_z_loss_grad(const AuxStats& stats, double coef, const Tensor<A, D>& lse, const Tensor<A, D>& probs,
                     Tensor<A, D>& d_logits) {
  const index_t rows = d_logits.dim(0), n = d_logits.dim(1);
  if (coef == 0.0 || rows == 0 || stats.tokens == 0) return;
  require(lse.numel() == rows && probs.shape() == d_logits.shape(), "z_loss", "logsumexp expected [", rows,
          "] and probs ", d_logits.shape(), ", got ", lse.shape(), " and ", probs.shape());
  const auto scale = static_cast<A>(coef * 2.0 / static_cast<double>(stats.tokens));
  AuxLossKernel<D>::template add_z_loss_grad<A>(lse.data(), probs.data(), rows, n, scale, d_logits.data());
}

// One batch's load-balancing loss; adds its gradient to d_probs when given.
template <class A, class D>
double load_balance_loss(const Tensor<A, D>& probs, const Tensor<std::int32_t, D>& experts, double coef,
                         std::type_identity_t<Tensor<A, D>>* d_probs) {
  if (coef == 0.0 || probs.dim(0) == 0) return 0.0;
  require(!d_probs || d_probs->shape() == probs.shape(), "load_balance_loss", "d_probs expected shape ", probs.shape(),
          ", got ", d_probs ? d_probs->shape() : Shape{});
  AuxStats stats;
  stats.tokens = probs.dim(0);
  add_load_balance_stats(probs, experts, stats);
  if (d_probs) add_load_balance_grad(stats, coef, *d_probs);
  return load_balance_value<A>(stats, coef);
}

// One batch's router z-loss; adds its gradient to d_logits when given.
template <class A, class D>
double z_loss(const Tensor<A, D>& logits, const Tensor<A, D>& probs, double coef,
              std::type_identity_t<Tensor<A, D>>* d_logits) {
  if (coef == 0.0 || logits.dim(0) == 0) return 0.0;
  require(probs.shape() == logits.shape(), "z_loss", "probs expected shape ", logits.shape(), ", got ", probs.shape());
  require(!d_logits || d_logits->shape() == logits.shape(), "z_loss", "d_logits expected shape ", logits.shape(),
          ", got ", d_logits ? d_logits->shape() : Shape{});
  AuxStats stats;
  stats.tokens = logits.dim(0);
  const Tensor<A, D> lse = add_z_loss_stats(logits, stats);
  if (d_logits) add_z_loss_grad(stats, coef, lse, probs, *d_logits);
  return z_loss_value(stats, coef);
}

}  // namespace nexa
