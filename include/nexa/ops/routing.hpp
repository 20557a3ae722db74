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

template <class L>
[[nodiscard]] auto softmax_topk(const L& logits_in, index_t k, bool renormalize) {
  const auto logits = read_view(logits_in);
  using A = typename decltype(logits)::value_type;
  using D = typename decltype(logits)::device;
  require(logits.rank() == 2, "softmax_topk", "logits must be [tokens, experts], got ", logits.shape());
  const index_t tokens = logits.dim(0), experts = logits.dim(1);
  require(1 <= k && k <= experts, "softmax_topk", "k must be in [1, ", experts, "], got ", k);
  Routing<A, D> r{Tensor<A, D>::uninitialized({tokens, experts}), Tensor<std::int32_t, D>::uninitialized({tokens, k}),
                  Tensor<A, D>::uninitialized({tokens, k})};
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

// Groups the (token, choice) pairs by expert. capacity < 0: dropless. Otherwise each expert
// keeps at most `capacity` assignments in priority order (first choices before second choices,
// token order within a choice) and the rest get slot -1 (CPU only so far).
template <class X>
[[nodiscard]] auto group_by_expert(const X& experts_in, index_t num_experts, index_t capacity = -1) {
  const auto experts = read_view(experts_in);
  using D = typename decltype(experts)::device;
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
  if (capacity < 0) {
    RoutingKernel<D>::group_by_expert(experts.data(), tokens, k, num_experts, plan.offsets.data(),
                                      plan.slot_token.data(), plan.assignment_slot.data());
  } else if constexpr (std::same_as<D, cpu>) {
    RoutingKernel<D>::group_by_expert_with_capacity(experts.data(), tokens, k, num_experts, capacity,
                                                    plan.offsets.data(), plan.slot_token.data(),
                                                    plan.assignment_slot.data());
    plan.slot_token = clone(plan.slot_token.view().slice_rows(0, plan.num_slots()));  // kept slots only
  } else {
    throw Error("group_by_expert: a capacity limit is implemented on the CPU only so far");
  }
  return plan;
}

// Rows of `src` [T, d] in the plan's slot order: [S, d].
template <class X, class D>
[[nodiscard]] auto gather_rows(const X& src_in, const DispatchPlan<D>& plan) {
  const auto src = read_view(src_in);
  using T = typename decltype(src)::value_type;
  const index_t count = plan.slot_token.numel(), width = src.cols();
  auto dst = Tensor<T, D>::uninitialized({count, width});
  RoutingKernel<D>::gather_rows(src.data(), plan.slot_token.data(), count, width, dst.data());
  return dst;
}

// dst [T, d] = beta * dst + sum_j weights[t, j] * src[slot(t, j)]; null weights mean ones.
template <class X, class W, class D, class Y, class T = typename read_view_t<X>::value_type>
void weighted_combine(const X& src_in, const DispatchPlan<D>& plan, const W* weights, Y&& dst_in, T beta = T(0)) {
  const auto src = read_view(src_in);
  const auto dst = write_view(dst_in);
  const index_t tokens = plan.assignment_slot.dim(0), k = plan.assignment_slot.dim(1);
  require_shape(src, Shape{plan.num_slots(), dst.cols()}, "weighted_combine", "expert outputs");
  require(dst.rows() == tokens, "weighted_combine", "output must have ", tokens, " rows, got ", dst.shape());
  RoutingKernel<D>::weighted_combine(src.data(), plan.assignment_slot.data(), weights, tokens, k, dst.cols(), beta,
                                     dst.data());
}

// Backward of the combine to the expert outputs: [S, d] with row slot(t, j) = w[t, j] * dy[t].
template <class X, class D, class Wt>
[[nodiscard]] auto scatter_weighted(const X& dy_in, const DispatchPlan<D>& plan, const Wt& weights_in) {
  const auto dy = read_view(dy_in);
  const auto weights = read_view(weights_in);
  using T = typename decltype(dy)::value_type;
  const index_t tokens = plan.assignment_slot.dim(0), k = plan.assignment_slot.dim(1);
  require(dy.rows() == tokens, "scatter_weighted", "dy must have ", tokens, " rows, got ", dy.shape());
  require_shape(weights, plan.assignment_slot.shape(), "scatter_weighted", "weights");
  auto dst = Tensor<T, D>::uninitialized({plan.num_slots(), dy.cols()});
  RoutingKernel<D>::scatter_weighted(dy.data(), plan.assignment_slot.data(), weights.data(), tokens, k, dy.cols(),
                                     dst.data());
  return dst;
}

// Backward of the combine to its weights: [T, k] with <dy[t], src[slot(t, j)]>.
template <class W, class X, class E, class D>
[[nodiscard]] Tensor<W, D> combine_weight_grad(const X& dy_in, const E& expert_out_in, const DispatchPlan<D>& plan) {
  const auto dy = read_view(dy_in);
  const auto expert_out = read_view(expert_out_in);
  const index_t tokens = plan.assignment_slot.dim(0), k = plan.assignment_slot.dim(1);
  require_shape(expert_out, Shape{plan.num_slots(), dy.cols()}, "combine_weight_grad", "expert outputs");
  auto dw = Tensor<W, D>::uninitialized({tokens, k});
  RoutingKernel<D>::combine_weight_grad(dy.data(), expert_out.data(), plan.assignment_slot.data(), tokens, k, dy.cols(),
                                        dw.data());
  return dw;
}

}  // namespace nexa::ops
