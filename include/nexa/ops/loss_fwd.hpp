#pragma once
// Declarations shared by the losses (train/loss.hpp) and their per-device kernels. All pointers
// live on the kernel's device; the caller validates targets and sums the per-row/per-element
// terms on the host in order (so the loss is the same on every device and thread count).
//
// LossKernel<Device> has:
//   cross_entropy_rows(n, c, logits, targets, ignore_index, inv_valid, grad, row_loss)
//       row_loss[i] = logsumexp(x_i) - x_i[t_i] (0 for ignored rows), in A = acc_t<T>;
//       grad[i, j] = (softmax_ij - [j == t_i]) * inv_valid (0 for ignored rows)
//   squared_errors(n, pred, target, scale, grad, sq)
//       sq[i] = (pred[i] - target[i])^2 and grad[i] = T(scale * (pred[i] - target[i])), in double
#include <cstdint>

#include "nexa/core/device.hpp"
#include "nexa/core/shape.hpp"

namespace nexa {

template <class D>
struct LossKernel;

}  // namespace nexa
