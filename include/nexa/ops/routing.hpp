#pragma once
// Routing primitives on any device: softmax + top-k, grouping tokens by expert, gathering their
// rows, and the fixed-order weighted combine (with the backward of each). Front ends check
// shapes once, then call RoutingKernel<Device>.
#include <cstdint>
#include <optional>

#include "nexa/backend/cpu/routing.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/routing_fwd.hpp"

namespace nexa::ops {

template <class A, class D>
[[nodiscard]] Routing<A, D> softmax_topk(TensorView<const A, D> logits, index_t k, bool renormalize) {
  require(logits.rank() == 2, "softmax_topk", "logits must be [tokens, experts], got ", logits.shape());
  const index_t tokens = logits.dim(0), experts = logits.dim(1);
  require(1 <= k && k <= experts, "softmax_topk", "k must be in [1, ", experts, "], got ", k);
  Routing<A, D> r{Tensor<A, D>::uninitialized({tokens, experts}),
                  Tensor<std::int32_t, D>::uninitialized({tokens, k}), Tensor<A, D>::uninitialized({tokens, k})};
  RoutingKernel<D>::softmax_topk(logits.data(), tokens, experts, k, renormalize, r.probs.data(), r.experts.data(),
                                 r.weights.data());
  return r;
}

// dL/dlogits from dL/dweights [T, k] and optionally dL/dprobs [T, E] (auxiliary losses).
template <class A, class D>
[[nodiscard]] Tensor<A, D> softmax_topk_backward(const Routing<A, D>& r, TensorView<const A, D> d_weights,
                                                 std::optional<TensorView<const A, D>> d_probs, bool renormalize) {
  require_shape(d_weights, r.weights.shape(), "softmax_topk_backward", "d_weights");
  if (d_probs) require_shape(*d_probs, r.probs.shape(), "softmax_topk_backward", "d_probs");
  const index_t tokens = r.probs.dim(0), experts = r.probs.dim(1), k = r.weights.dim(1);
  auto d_logits = Tensor<A, D>::uninitialized({tokens, experts});
  RoutingKernel<D>::softmax_topk_backward(r.probs.data(), r.experts.data(), r.weights.data(), d_weights.data(),
                                          d_probs ? d_probs->data() : nullptr, tokens, experts, k, renormalize,
                                          d_logits.data());
  return d_logits;
}

template <class D>
[[nodiscard]] DispatchPlan<D> group_by_expert(TensorView<const std::int32_t, D> experts, index_t num_experts) {
  require(experts.rank() == 2, "group_by_expert", "experts must be [tokens, k], got ", experts.shape());
  const index_t tokens = experts.dim(0), k = experts.dim(1);
  if constexpr (std::same_as<D, cpu>) {
    for (index_t a = 0; a < tokens * k; ++a) {
      require(0 <= experts.data()[a] && experts.data()[a] < num_experts, "group_by_expert", "expert index ",
              experts.data()[a], " at assignment ", a, " is outside [0, ", num_experts, ")");
    }
  }
  DispatchPlan<D> plan{std::vector<index_t>(static_cast<std::size_t>(num_experts + 1)),
                       Tensor<std::int32_t, D>::uninitialized({tokens * k}),
                       Tensor<std::int32_t, D>::uninitialized({tokens, k})};
  RoutingKernel<D>::group_by_expert(experts.data(), tokens, k, num_experts, plan.offsets.data(),
                                    plan.slot_token.data(), plan.assignment_slot.data());
  return plan;
}

// Rows of `src` [T, d] in the plan's slot order: [S, d].
template <class T, class D>
[[nodiscard]] Tensor<T, D> gather_rows(TensorView<const T, D> src, const DispatchPlan<D>& plan) {
  const index_t count = plan.slot_token.numel(), width = src.cols();
  auto dst = Tensor<T, D>::uninitialized({count, width});
  RoutingKernel<D>::gather_rows(src.data(), plan.slot_token.data(), count, width, dst.data());
  return dst;
}

// dst [T, d] = beta * dst + sum_j weights[t, j] * src[slot(t, j)]; null weights mean ones.
template <class T, class W, class D>
void weighted_combine(TensorView<const T, D> src, const DispatchPlan<D>& plan, const W* weights,
                      TensorView<T, D> dst, T beta = T(0)) {
  const index_t tokens = plan.assignment_slot.dim(0), k = plan.assignment_slot.dim(1);
  require_shape(src, Shape{tokens * k, dst.cols()}, "weighted_combine", "expert outputs");
  require(dst.rows() == tokens, "weighted_combine", "output must have ", tokens, " rows, got ", dst.shape());
  RoutingKernel<D>::weighted_combine(src.data(), plan.assignment_slot.data(), weights, tokens, k, dst.cols(), beta,
                                     dst.data());
}

// Backward of the combine to the expert outputs: [S, d] with row slot(t, j) = w[t, j] * dy[t].
template <class T, class W, class D>
[[nodiscard]] Tensor<T, D> scatter_weighted(TensorView<const T, D> dy, const DispatchPlan<D>& plan,
                                            TensorView<const W, D> weights) {
  const index_t tokens = plan.assignment_slot.dim(0), k = plan.assignment_slot.dim(1);
  require(dy.rows() == tokens, "scatter_weighted", "dy must have ", tokens, " rows, got ", dy.shape());
  require_shape(weights, plan.assignment_slot.shape(), "scatter_weighted", "weights");
  auto dst = Tensor<T, D>::uninitialized({tokens * k, dy.cols()});
  RoutingKernel<D>::scatter_weighted(dy.data(), plan.assignment_slot.data(), weights.data(), tokens, k, dy.cols(),
                                     dst.data());
  return dst;
}

// Backward of the combine to its weights: [T, k] with <dy[t], src[slot(t, j)]>.
template <class W, class T, class D>
[[nodiscard]] Tensor<W, D> combine_weight_grad(TensorView<const T, D> dy, TensorView<const T, D> expert_out,
                                               const DispatchPlan<D>& plan) {
  const index_t tokens = plan.assignment_slot.dim(0), k = plan.assignment_slot.dim(1);
  require_shape(expert_out, Shape{tokens * k, dy.cols()}, "combine_weight_grad", "expert outputs");
  auto dw = Tensor<W, D>::uninitialized({tokens, k});
  RoutingKernel<D>::combine_weight_grad(dy.data(), expert_out.data(), plan.assignment_slot.data(), tokens, k,
                                        dy.cols(), dw.data());
  return dw;
}

}  // namespace nexa::ops
