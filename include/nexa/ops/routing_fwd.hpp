#pragma once
// Routing data shared by the routing front end (ops/routing.hpp) and its per-device kernels.
#include <cstdint>
#include <vector>

#include "nexa/core/tensor.hpp"

namespace nexa {

// Which experts each token goes to and with what weight. A = accumulation type (fp32 or wider).
template <class A, class D>
struct Routing {
  Tensor<A, D> probs;               // [T, E] softmax over all experts
  Tensor<std::int32_t, D> experts;  // [T, k] chosen experts, highest probability first
  Tensor<A, D> weights;             // [T, k] combine weights (renormalised over the k when asked)
};

// Tokens grouped by expert. Slot s in [offsets[e], offsets[e+1]) belongs to expert e; within an
// expert, slots follow token order, so the grouping (and everything computed from it) is stable.
template <class D>
struct DispatchPlan {
  std::vector<index_t> offsets;             // [E + 1], host memory: the expert loop slices with it
  Tensor<std::int32_t, D> slot_token;       // [S] source token of each slot, S = T * k
  Tensor<std::int32_t, D> assignment_slot;  // [T, k] slot that holds (token t, choice j); -1: dropped

  [[nodiscard]] index_t num_experts() const { return static_cast<index_t>(offsets.size()) - 1; }
  // Slots in use: T * k when dropless, fewer when a capacity limit dropped assignments.
  [[nodiscard]] index_t num_slots() const { return offsets.empty() ? 0 : offsets.back(); }
  [[nodiscard]] index_t tokens_of(index_t e) const { return offsets[e + 1] - offsets[e]; }
};

// Per-device kernels; each backend specialises this.
template <class D>
struct RoutingKernel;

}  // namespace nexa
