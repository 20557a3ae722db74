#pragma once
// What every logit-scoring router shares: from logits [T, E] to the routing (softmax, top-k,
// optional renormalisation) plus the auxiliary losses, and back from d(weights) to d(logits).
// Routers differ only in how they compute logits (TopKRouter: W_r x; NexusRouter: x . e_i).
#include <type_traits>

#include "nexa/core/scalar.hpp"
#include "nexa/moe/aux_loss.hpp"
#include "nexa/moe/config.hpp"
#include "nexa/ops/routing.hpp"

namespace nexa {

template <class A, class D>
struct LogitRouting {
  Tensor<A, D> logits;  // [T, E]
  Routing<A, D> routing;
  AuxLosses aux;
};

// Top-1 is never renormalised: its weight would be the constant 1, cutting the router off from
// the task gradient. Switch Transformers scales the expert output by the raw probability.
inline bool renormalizes(const RouterConfig& config, int k) { return config.renormalize && k > 1; }

// Fills s.routing and s.aux from s.logits.
template <class A, class D>
void route_logits(LogitRouting<A, D>& s, const RouterConfig& config, int k) {
  s.routing = ops::softmax_topk(s.logits, k, renormalizes(config, k));
  s.aux.load_balance = load_balance_loss<A>(s.routing.probs, s.routing.experts, config.load_balance_coef, nullptr);
  s.aux.z_loss = z_loss<A>(s.logits, s.routing.probs, config.z_loss_coef, nullptr);
}

// dL/dlogits from dL/dweights [T, k], including both auxiliary losses' gradients.
template <class A, class D>
[[nodiscard]] Tensor<A, D> logits_backward(const LogitRouting<A, D>& s, const RouterConfig& config, int k,
                                           TensorView<const A, D> d_weights) {
  const Routing<A, D>& r = s.routing;
  Tensor<A, D> d_probs(r.probs.shape());
  (void)load_balance_loss<A>(r.probs, r.experts, config.load_balance_coef, &d_probs);
  Tensor<A, D> d_logits = ops::softmax_topk_backward<A, D>(r, d_weights, d_probs.cview(), renormalizes(config, k));
  (void)z_loss<A>(s.logits, r.probs, config.z_loss_coef, &d_logits);
  return d_logits;
}

// x viewed as [rows, cols] and converted to U (a plain copy when the types agree).
template <class U, class T, class D>
[[nodiscard]] Tensor<U, D> convert_rows(TensorView<const T, D> x) {
  static_assert(std::same_as<D, cpu>, "convert_rows: CPU only so far");
  auto out = Tensor<U, D>::uninitialized({x.rows(), x.cols()});
  for (index_t i = 0; i < x.numel(); ++i) out.data()[i] = static_cast<U>(x.data()[i]);
  return out;
}

// x converted to U, keeping its shape (moved through when the types agree).
template <class U, class A, class D>
[[nodiscard]] Tensor<U, D> convert(Tensor<A, D> x) {
  if constexpr (std::same_as<U, A>) {
    return x;
  } else {
    auto out = Tensor<U, D>::uninitialized(x.shape());
    for (index_t i = 0; i < x.numel(); ++i) out.data()[i] = static_cast<U>(x.data()[i]);
    return out;
  }
}

}  // namespace nexa
