#pragma once
// Front ends over LayoutKernel<D> that modules share (ops/layout_fwd.hpp has the kernels' contract).
#include "nexa/backend/cpu/layout.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/layout_fwd.hpp"

namespace nexa::ops {

// dst[seg.target[u]] += src[seg.order[k]] for k in segment u, row by row in that order (element
// (r, c) at the given strides, `cols` columns): the segments' index tables go to D, then one
// LayoutKernel<D>::scatter_add.
template <class T, class D>
void scatter_add_segments(const Segments& seg, index_t cols, const T* src, Strides src_strides, T* dst,
                          Strides dst_strides) {
  const auto segments = static_cast<index_t>(seg.target.size());
  const auto target = Tensor<index_t, D>::from_host({segments}, seg.target);
  const auto start = Tensor<index_t, D>::from_host({segments + 1}, seg.start);
  const auto order = Tensor<index_t, D>::from_host({static_cast<index_t>(seg.order.size())}, seg.order);
  LayoutKernel<D>::scatter_add(segments, cols, target.data(), start.data(), order.data(), src, src_strides, dst,
                               dst_strides);
}

}  // namespace nexa::ops
