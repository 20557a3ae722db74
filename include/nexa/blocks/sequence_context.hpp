#pragma once
// What every block of a stack sees besides its input: the padding mask, the global-token flags
// (local-global attention) and the relative position bias, shared by all blocks as T5 shares it.
// Views: the caller owns the data for the duration of the forward (a block that needs them in
// its backward, as Checkpointed does, keeps its own copy).
#include <cstdint>

#include "nexa/core/tensor.hpp"

namespace nexa {

template <class T = float, class D = cpu>
struct SequenceContext {
  TensorView<const std::int32_t, D> mask;    // [B, S] 1 = token, 0 = padding; empty = no padding
  TensorView<const T, D> position_bias;      // [heads, 2S - 1] relative bias; empty = none
  TensorView<const std::int32_t, D> global;  // [B, S] 1 = global token; empty = none
};

// The auxiliary loss a feed-forward cache reports (an MoELayer's load-balancing and z-losses),
// 0 for a dense FFN.
template <class Cache>
[[nodiscard]] double aux_loss_of(const Cache& cache) {
  if constexpr (requires { cache.aux_loss(); })
    return cache.aux_loss();
  else
    return 0.0;
}

}  // namespace nexa
