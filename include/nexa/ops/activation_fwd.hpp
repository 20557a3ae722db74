#pragma once
// Declarations shared by the activation front ends (ops/activation.hpp) and their per-device
// kernels. Act is an activation functor (nn/activation.hpp) whose value/derivative are
// NEXA_HOST_DEVICE. All pointers live on the kernel's device; n counts elements; outputs may
// alias inputs elementwise (y == x, dx == dy).
//
// ActivationKernel<Device> has:
//   forward<Act>(n, x, y)                 y = Act(x)
//   backward<Act>(n, x, dy, dx)           dx = dy * Act'(x)
//   relu_backward_from_output(n, y, g)    g = y > 0 ? g : 0 (ReLU's derivative read off its output)
//   gated_forward<Act>(n, a, b, h)        h = Act(a) * b
//   gated_backward<Act>(n, a, b, dh, db)  db = dh * Act(a), then dh = dh * b * Act'(a) (in place)
#include "nexa/core/device.hpp"
#include "nexa/core/shape.hpp"

namespace nexa {

template <class D>
struct ActivationKernel;

}  // namespace nexa
