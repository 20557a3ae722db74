#pragma once
// LayoutKernel<cpu>: the head permutes of the attention module (one (b, s) row per task), and the
// row gathers and segment sums behind embeddings and relative position biases (one row or one
// segment per task: each output row is written by one task, in the documented order).
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

  template <class T, class I>
  static void gather(index_t rows, index_t cols, const I* idx, const T* src, Strides s, T* dst, Strides d) {
    NEXA_PARALLEL_FOR_IF(rows * cols > parallel_grain)
    for (index_t r = 0; r < rows; ++r) {
      const T* from = src + static_cast<index_t>(idx[r]) * s.row;
      T* to = dst + r * d.row;
      for (index_t c = 0; c < cols; ++c) to[c * d.col] = from[c * s.col];
    }
  }

  template <class T>
  static void scatter_add(index_t segments, index_t cols, const index_t* target, const index_t* start,
                          const index_t* order, const T* src, Strides s, T* dst, Strides d) {
    NEXA_PARALLEL_FOR_IF(start[segments] * cols > parallel_grain)
    for (index_t u = 0; u < segments; ++u) {
      T* to = dst + target[u] * d.row;
      for (index_t k = start[u]; k < start[u + 1]; ++k) {
        const T* from = src + order[k] * s.row;
        for (index_t c = 0; c < cols; ++c) to[c * d.col] += from[c * s.col];
      }
    }
  }
};

}  // namespace nexa
