#pragma once
// Declarations shared by the elementwise front ends (ops/elementwise.hpp) and their per-device
// kernels. All pointers live on the kernel's device; n counts elements.
//
// ElementwiseKernel<Device> has:
//   axpy(n, alpha, x, y)             y[i] += alpha * x[i]
//   scale(n, alpha, x)               x[i] *= alpha
//   fill(n, value, x)                x[i] = value
//   copy(n, src, dst)                dst[i] = src[i]
//   broadcast_rows(rows, cols, row, y)  y[r, c] = row[c] for every row r
//   add_row(rows, cols, row, y)      y[r, c] += row[c] for every row r
//   sum_rows(rows, cols, x, acc)     acc[c] += x[r, c] for r = 0, 1, ... in that order (no atomics:
//                                    the result is the CPU's, bit for bit, on every device)
//   all_finite(n, x) -> bool         no element is inf or NaN (waits for the device)
//   cast(n, src, dst)                dst[i] = To(src[i]) between float, double, half and bfloat16
//                                    (round to nearest even)
#include "nexa/core/device.hpp"
#include "nexa/core/shape.hpp"

namespace nexa {

template <class D>
struct ElementwiseKernel;

}  // namespace nexa
