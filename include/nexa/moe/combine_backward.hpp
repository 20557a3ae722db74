#pragma once
// The backward of an MoE layer's combine, y[t] = sum_j w[t, j] * expert_out[slot(t, j)], shared by
// MoELayer and dist::ExpertParallelMoE. It comes in two halves with the experts' backward between
// them: first dL/d(expert outputs) and dL/d(weights), then dL/dx from the experts' input
// gradients and the router's.
#include "nexa/core/tensor.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/routing.hpp"

namespace nexa {

template <class T, class A, class D>
struct CombineGrads {
  Tensor<T, D> d_expert_out;  // [slots, d]: dy[t] * w[t, j], in the plan's slot order
  Tensor<A, D> d_weights;     // [T, k]: dy[t] . expert_out[slot(t, j)]
};

// dy: [T, d]; expert_out: [slots, d] as the forward combined it.
template <class T, class A, class D>
[[nodiscard]] CombineGrads<T, A, D> combine_backward(TensorView<const T, D> dy, const Tensor<T, D>& expert_out,
                                                     const DispatchPlan<D>& plan, const Tensor<A, D>& weights) {
  return {ops::scatter_weighted(dy, plan, weights), ops::combine_weight_grad<A>(dy, expert_out, plan)};
}

// dL/dx [T, d] into dx: each token's slots' input gradients summed, plus the router's input
// gradient from d_weights (which also accumulates the router's parameter gradients).
template <class T, class A, class D, class Router, class RouterCache>
void dispatch_backward(const Tensor<T, D>& d_expert_in, const DispatchPlan<D>& plan, const Tensor<A, D>& d_weights,
                       Router& router, RouterCache& router_cache, TensorView<T, D> dx) {
  ops::weighted_combine(d_expert_in, plan, static_cast<const A*>(nullptr), dx);
  const Tensor<T, D> dx_router = router.backward(d_weights.cview(), router_cache);
  ops::axpy(T(1), dx_router.cview(), dx);
}

}  // namespace nexa
