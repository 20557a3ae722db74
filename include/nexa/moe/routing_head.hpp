#pragma once
// What every logit-scoring router shares: from logits [T, E] to the routing (softmax, top-k,
// optional renormalisation) plus the auxiliary losses, and back from d(weights) to d(logits).
// Routers differ only in how they compute logits (TopKRouter: W_r x; NexusRouter: x . e_i).
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "nexa/core/scalar.hpp"
#include "nexa/moe/aux_loss.hpp"
#include "nexa/moe/config.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/routing.hpp"

namespace nexa {

template <class A, class D>
struct LogitRouting {
  Tensor<A, D> logits;  // [T, E]
  Routing<A, D> routing;
  AuxLosses aux;
  // The batch the auxiliary losses average over: these rows after route, the global batch
  // under expert parallelism (dist/expert_parallel.hpp), which backward then takes its share of.
  AuxStats aux_stats;
  Tensor<A, D> logsumexp;  // [T], for the z-loss gradient (empty when the z-loss is off)
};

// Top-1 is never renormalised: its weight would be the constant 1, cutting the router off from
// the task gradient. Switch Transformers scales the expert output by the raw probability.
inline bool renormalizes(const RouterConfig& config, int k) { return config.renormalize && k > 1; }

// Gathers the auxiliary losses' statistics over these rows and sets s.aux from them (after the
// routing is final: a sequence router's overrides change the first choices).
template <class A, class D>
void compute_aux_losses(LogitRouting<A, D>& s, const RouterConfig& config) {
  s.aux_stats = AuxStats{};
  s.aux_stats.tokens = s.logits.dim(0);
  s.logsumexp = Tensor<A, D>();
  if (config.load_balance_coef != 0.0) add_load_balance_stats(s.routing.probs, s.routing.experts, s.aux_stats);
  if (config.z_loss_coef != 0.0) s.logsumexp = add_z_loss_stats(s.logits, s.aux_stats);
  s.aux.load_balance = load_balance_value<A>(s.aux_stats, config.load_balance_coef);
  s.aux.z_loss = z_loss_value(s.aux_stats, config.z_loss_coef);
}

// Fills s.routing and s.aux from s.logits.
template <class A, class D>
void route_logits(LogitRouting<A, D>& s, const RouterConfig& config, int k) {
  s.routing = ops::softmax_topk(s.logits, k, renormalizes(config, k));
  compute_aux_losses(s, config);
}

// dL/dlogits from dL/dweights [T, k], including these rows' share of both auxiliary losses' gradients.
template <class A, class D>
[[nodiscard]] Tensor<A, D> logits_backward(const LogitRouting<A, D>& s, const RouterConfig& config, int k,
                                           TensorView<const A, D> d_weights) {
  const Routing<A, D>& r = s.routing;
  Tensor<A, D> d_probs(r.probs.shape());
  add_load_balance_grad(s.aux_stats, config.load_balance_coef, d_probs);
  Tensor<A, D> d_logits = ops::softmax_topk_backward<A, D>(r, d_weights, d_probs.cview(), renormalizes(config, k));
  add_z_loss_grad(s.aux_stats, config.z_loss_coef, s.logsumexp, r.probs, d_logits);
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
