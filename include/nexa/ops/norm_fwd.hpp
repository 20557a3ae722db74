#pragma once
// Declarations shared by RMSNorm / LayerNorm (nn/) and their per-device kernels. Rows of n
// elements are normalised over the last axis; statistics (mean, rstd) are in A = acc_t<T>. All
// pointers live on the kernel's device; optional outputs may be null.
//
// NormKernel<Device> has:
//   rms_forward(rows, n, x, w, eps, y, rstd?)                 y = w * T(x * rstd), as T5LayerNorm
//   rms_backward(rows, n, x, rstd, w, dy, dx)                 dx
//   rms_weight_grad(rows, n, x, rstd, dy, dw)                 dw += sum_r dy * x * rstd
//   layer_norm_forward(rows, n, x, w, b, eps, y, mean?, rstd?)
//   layer_norm_backward(rows, n, x, mean, rstd, w, dy, dx)    dx
//   layer_norm_param_grad(rows, n, x, mean, rstd, dy, dw?, db?)
// Parameter gradients are summed over rows in a fixed order (no atomics): the same bits on every
// run and thread count.
#include "nexa/core/device.hpp"
#include "nexa/core/shape.hpp"

namespace nexa {

template <class D>
struct NormKernel;

}  // namespace nexa
