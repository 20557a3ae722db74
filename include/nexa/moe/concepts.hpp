#pragma once
// What a router, an expert and a shared-expert policy must provide, so that a wrong composition
// fails at MoELayer's declaration with the name of the unmet concept.
#include <concepts>
#include <string>

#include "nexa/core/param.hpp"
#include "nexa/moe/config.hpp"
#include "nexa/ops/routing_fwd.hpp"

namespace nexa {

namespace concept_detail {
struct AnyParamVisitor {
  template <class P>
  void operator()(const std::string&, P&) const {}
};
}  // namespace concept_detail

// A router module for scalar T on device D.
template <class R, class T, class D>
concept RouterModule = std::constructible_from<R, const RouterConfig&, Rng&> &&
    requires(R r, TensorView<const T, D> x, typename R::Cache cache, TensorView<const typename R::A, D> dw) {
  { R::k } -> std::convertible_to<int>;
  { r.route(x, cache) } -> std::same_as<const Routing<typename R::A, D>&>;
  { r.backward(dw, cache) } -> std::same_as<Tensor<T, D>>;
  { cache.aux.total() } -> std::convertible_to<double>;
  r.visit_params(concept_detail::AnyParamVisitor{}, std::string());
};

// An expert module for scalar T on device D: runs one GEMM-shaped pass over its tokens, writing
// into the caller's slice.
template <class E, class T, class D>
concept ExpertModule = std::constructible_from<E, const ExpertConfig&, Rng&> &&
    requires(E e, Tensor<T, D>&& x, TensorView<const T, D> dy, TensorView<T, D> out, typename E::Cache cache) {
  e.forward_into(std::move(x), cache, out);
  e.backward_into(dy, cache, out);
  e.visit_params(concept_detail::AnyParamVisitor{}, std::string());
};

// Policies are named unbound (TopKRouter<2>, T5FFN<Relu>) and rebound to the layer's T and D.
template <class R>
concept Router = requires {
  typename R::template rebind<double, cpu>;
}
&&RouterModule<typename R::template rebind<double, cpu>, double, cpu>;

template <class E>
concept Expert = requires {
  typename E::template rebind<double, cpu>;
}
&&ExpertModule<typename E::template rebind<double, cpu>, double, cpu>;

template <class S>
concept SharedPolicy = requires {
  typename S::template rebind<double, cpu>;
};

}  // namespace nexa
