#pragma once
// Per-device kernels behind the router auxiliary losses (moe/aux_loss.hpp). All pointers live
// on the kernel's device; both functions return the loss value on the host and, when the
// gradient pointer is not null, add the loss's gradient to it.
//   load_balance(probs [T, n], experts [T, k], T, n, k, coef, d_probs)
//   z_loss(logits [T, n], probs [T, n], T, n, coef, d_logits)
#include "nexa/core/shape.hpp"

namespace nexa {

template <class D>
struct AuxLossKernel;

}  // namespace nexa
