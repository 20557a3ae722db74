#pragma once
// LayoutKernel<Device>: the data movement the attention stack needs besides GEMMs, in raw
// pointers, so modules run it on either device (backend/cpu/layout.hpp, backend/cuda/layout.hpp).
//   split_heads<T>(B, S, H, dh, x [B, S, H * dh], out [B, H, S, dh])
//   merge_heads<T>(B, S, H, dh, x [B, H, S, dh], out [B, S, H * dh])
//   gather<T, I>(rows, cols, idx [rows], src, src_strides, dst, dst_strides):
//     dst[r * dst.row + c * dst.col] = src[idx[r] * src.row + c * src.col]
//   scatter_add<T>(segments, cols, target [segments], start [segments + 1], order, src, src_strides,
//                  dst, dst_strides):
//     dst[target[u] * dst.row + c * dst.col] += src[order[k] * src.row + c * src.col] for k = start[u],
//     start[u] + 1, .. < start[u + 1], one addition after another in that order (deterministic,
//     no atomics: each target row belongs to one segment). Index arrays live on the device.
// Embedding and RelativePositionBias use gather and scatter_add on every device.
#include <cstddef>
#include <vector>

#include "nexa/core/shape.hpp"

namespace nexa {

// Element (r, c) of a matrix stored with these strides is at r * row + c * col.
struct Strides {
  index_t row = 0, col = 0;
};

template <class D>
struct LayoutKernel;

// The segments scatter_add sums: positions 0 .. n - 1 grouped by their key (key[i] in [0, keys)),
// keys ascending, positions ascending within a key (a stable counting sort), empty keys left out.
struct Segments {
  std::vector<index_t> target;  // [segments]: the key of each segment
  std::vector<index_t> start;   // [segments + 1]: where each segment's positions start in `order`
  std::vector<index_t> order;   // [n]: positions, segment after segment
};

template <class K>
[[nodiscard]] Segments segments_by_key(const K* key, index_t n, index_t keys) {
  std::vector<index_t> first(static_cast<std::size_t>(keys) + 1, 0);
  for (index_t i = 0; i < n; ++i) ++first[static_cast<std::size_t>(key[i]) + 1];
  Segments s;
  for (index_t k = 0; k < keys; ++k) {
    if (first[static_cast<std::size_t>(k) + 1] > 0) {
      s.target.push_back(k);
      s.start.push_back(first[static_cast<std::size_t>(k)]);
    }
    first[static_cast<std::size_t>(k) + 1] += first[static_cast<std::size_t>(k)];
  }
  s.start.push_back(n);
  s.order.resize(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) s.order[static_cast<std::size_t>(first[static_cast<std::size_t>(key[i])]++)] = i;
  return s;
}

}  // namespace nexa
