#pragma once
// Declarations shared by Dropout (nn/dropout.hpp) and its per-device kernels. The mask of call
// `call` is a pure function of (stream, call, element index): element i is kept iff word i % 4 of
// Philox(seed, stream, (call << 40) + i / 4) is >= threshold (= p * 2^32), and kept elements are
// multiplied by scale (= 1 / (1 - p)). So every device draws the same mask.
//
// DropoutKernel<Device> has:
//   apply(stream, call, threshold, scale, x, n)               x[0..n) with mask elements [0, n)
//   apply_range(stream, call, threshold, scale, first, x, n)  x[0..n) with mask elements
//                                                             [first, first + n); serial on the CPU
//                                                             (its callers parallelise)
#include <cstdint>

#include "nexa/core/device.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/core/shape.hpp"

namespace nexa {

template <class D>
struct DropoutKernel;

}  // namespace nexa
