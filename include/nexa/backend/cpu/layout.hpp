#pragma once
// LayoutKernel<cpu>: the head permutes of the attention module, one (b, s) row per task.
#include <algorithm>

#include "nexa/core/device.hpp"
#include "nexa/core/parallel.hpp"
#include "nexa/ops/layout_fwd.hpp"

namespace nexa {

template <>
struct LayoutKernel<cpu> {
  template <class T>
  static void split_heads(index_t B, index_t S, index_t H, index_t dh, const T* x, T* out) {
    NEXA_PARALLEL_FOR_IF(B * S * H * dh > parallel_grain)
    for (index_t bs = 0; bs < B * S; ++bs) {
      const index_t b = bs / S, s = bs % S;
      for (index_t h = 0; h < H; ++h) std::copy_n(x + bs * H * dh + h * dh, dh, out + ((b * H + h) * S + s) * dh);
    }
  }

  template <class T>
  static void merge_heads(index_t B, index_t S, index_t H, index_t dh, const T* x, T* out) {
    NEXA_PARALLEL_FOR_IF(B * S * H * dh > parallel_grain)
    for (index_t bs = 0; bs < B * S; ++bs) {
      const index_t b = bs / S, s = bs % S;
      for (index_t h = 0; h < H; ++h) std::copy_n(x + ((b * H + h) * S + s) * dh, dh, out + bs * H * dh + h * dh);
    }
  }
};

}  // namespace nexa
