#pragma once
// What every logit-scoring router shares: from logits [T, E] to the routing (softmax, top-k,
// optional renormalisation) plus the auxiliary losses, and back from d(weights) to d(logits).
// Routers differ only in how they compute logits (TopKRouter: W_r x; NexusRouter: x . e_i).
#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>
#include <vector>

#include "nexa/core/scalar.hpp"
#include "nexa/moe/aux_loss.hpp"
#include "nexa/moe/config.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/routing.hpp"

namespace nexa {

// The batch the auxiliary losses average over when it is larger than the rows a router saw:
// expert parallelism routes each rank's tokens apart but trains on the global batch, so it sums
// these over ranks (dist/expert_parallel.hpp).
struct AuxBatch {
  index_t tokens = 0;                        // T of the global batch
  std::vector<index_t> first_choice_counts;  // [E] its tokens whose first choice is each expert
};

template <class A, class D>
struct LogitRouting {
  Tensor<A, D> logits;  // [T, E]
  Routing<A, D> routing;
  AuxLosses aux;
  // Empty: the auxiliary losses average over these rows. Set after route (expert parallelism):
  // backward adds these rows' share of the global batch's auxiliary gradients instead.
  std::optional<AuxBatch> global_batch;
};

// These rows' share of the auxiliary losses' gradients over `batch`: the formulas of
// load_balance_loss and z_loss with the global f_i and T, rounded as they round (CPU only).
template <class A, class D>
void add_load_balance_grad(const AuxBatch& batch, double coef, Tensor<A, D>& d_probs) {
  const index_t rows = d_probs.dim(0), n = d_probs.dim(1);
  if (coef == 0.0 || rows == 0) return;
  if constexpr (!std::same_as<D, cpu>) throw Error("AuxBatch: a global auxiliary batch is CPU only so far");
  const auto total = static_cast<double>(batch.tokens);
  for (index_t i = 0; i < n; ++i) {
    const A f = static_cast<A>(batch.first_choice_counts[static_cast<std::size_t>(i)]) / static_cast<A>(batch.tokens);
    const auto g = static_cast<A>(coef * static_cast<double>(n) * f / total);
    for (index_t t = 0; t < rows; ++t) d_probs.data()[t * n + i] += g;
  }
}
template <class A, class D>
void add_z_loss_grad(const AuxBatch& batch, double coef, const Tensor<A, D>& logits, const Tensor<A, D>& probs,
                     Tensor<A, D>& d_logits) {
  const index_t rows = logits.dim(0), n = logits.dim(1);
  if (coef == 0.0 || rows == 0) return;
  if constexpr (!std::same_as<D, cpu>) throw Error("AuxBatch: a global auxiliary batch is CPU only so far");
  const auto scale = static_cast<A>(coef * 2.0 / static_cast<double>(batch.tokens));
  for (index_t t = 0; t < rows; ++t) {
    const A* z = logits.data() + t * n;
    const A zmax = *std::max_element(z, z + n);
    A sum = 0;
    for (index_t i = 0; i < n; ++i) sum += std::exp(z[i] - zmax);
    const A g = scale * (zmax + std::log(sum));
    for (index_t i = 0; i < n; ++i) d_logits.data()[t * n + i] += g * probs.data()[t * n + i];
  }
}

// Top-1 is never renormalised: its weight would be the constant 1, cutting the router off from
// the task gradient. Switch Transformers scales the expert output by the raw probability.
inline bool renormalizes(const RouterConfig& config, int k) { return config.renormalize && k > 1; }

// Fills s.routing and s.aux from s.logits.
template <class A, class D>
void route_logits(LogitRouting<A, D>& s, const RouterConfig& config, int k) {
  s.routing = ops::softmax_topk(s.logits, k, renormalizes(config, k));
  s.global_batch.reset();
  s.aux.load_balance = load_balance_loss<A>(s.routing.probs, s.routing.experts, config.load_balance_coef, nullptr);
  s.aux.z_loss = z_loss<A>(s.logits, s.routing.probs, config.z_loss_coef, nullptr);
}

// dL/dlogits from dL/dweights [T, k], including both auxiliary losses' gradients.
template <class A, class D>
[[nodiscard]] Tensor<A, D> logits_backward(const LogitRouting<A, D>& s, const RouterConfig& config, int k,
                                           TensorView<const A, D> d_weights) {
  const Routing<A, D>& r = s.routing;
  Tensor<A, D> d_probs(r.probs.shape());
  if (s.global_batch)
    add_load_balance_grad<A, D>(*s.global_batch, config.load_balance_coef, d_probs);
  else
    (void)load_balance_loss<A>(r.probs, r.experts, config.load_balance_coef, &d_probs);
  Tensor<A, D> d_logits = ops::softmax_topk_backward<A, D>(r, d_weights, d_probs.cview(), renormalizes(config, k));
  if (s.global_batch)
    add_z_loss_grad<A, D>(*s.global_batch, config.z_loss_coef, s.logits, r.probs, d_logits);
  else
    (void)z_loss<A>(s.logits, r.probs, config.z_loss_coef, &d_logits);
  return d_logits;
}

// x viewed as [rows, cols] and converted to U (a plain copy when the types agree), on x's device.
template <class U, class T, class D>
[[nodiscard]] Tensor<U, D> convert_rows(TensorView<const T, D> x) {
  auto out = Tensor<U, D>::uninitialized({x.rows(), x.cols()});
  if constexpr (std::same_as<U, T>)
    ops::copy(x, out.view().reshaped(x.shape()));
  else
    ops::cast(x, out.view().reshaped(x.shape()));
  return out;
}

// x converted to U, keeping its shape (moved through when the types agree).
template <class U, class A, class D>
[[nodiscard]] Tensor<U, D> convert(Tensor<A, D> x) {
  if constexpr (std::same_as<U, A>) {
    return x;
  } else {
    auto out = Tensor<U, D>::uninitialized(x.shape());
    ops::cast(x.cview(), out.view());
    return out;
  }
}

}  // namespace nexa
