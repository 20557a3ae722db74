#pragma once
// Elementwise helpers used by composite modules, on any device: the front ends check shapes,
// then call ElementwiseKernel<Device> (backend/cpu/elementwise.hpp, backend/cuda/elementwise.hpp).
#include "nexa/backend/cpu/elementwise.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/elementwise_fwd.hpp"

namespace nexa::ops {

// y += alpha * x, elementwise; shapes must hold the same number of elements.
template <class T, class D>
void axpy(T alpha, TensorView<const T, D> x, TensorView<T, D> y) {
  require(x.numel() == y.numel(), "axpy", "x has ", x.numel(), " elements (shape ", x.shape(), "), y has ", y.numel(),
          " (shape ", y.shape(), ")");
  ElementwiseKernel<D>::axpy(x.numel(), alpha, x.data(), y.data());
}

// x *= alpha, elementwise.
template <class T, class D>
void scale(T alpha, TensorView<T, D> x) {
  ElementwiseKernel<D>::scale(x.numel(), alpha, x.data());
}

// x = value everywhere.
template <class T, class D>
void fill(T value, TensorView<T, D> x) {
  ElementwiseKernel<D>::fill(x.numel(), value, x.data());
}

// dst = src, elementwise; shapes must hold the same number of elements.
template <class T, class D>
void copy(TensorView<const T, D> src, TensorView<T, D> dst) {
  require(src.numel() == dst.numel(), "copy", "src has ", src.numel(), " elements (shape ", src.shape(), "), dst has ",
          dst.numel(), " (shape ", dst.shape(), ")");
  ElementwiseKernel<D>::copy(src.numel(), src.data(), dst.data());
}

// y[r, :] = row for every row of y read as a matrix (leading axes folded).
template <class T, class D>
void broadcast_rows(TensorView<const T, D> row, TensorView<T, D> y) {
  require(row.numel() == y.cols(), "broadcast_rows", "row expected ", y.cols(), " elements (y is ", y.shape(),
          "), got ", row.shape());
  ElementwiseKernel<D>::broadcast_rows(y.rows(), y.cols(), row.data(), y.data());
}

// y[r, :] += row for every row of y read as a matrix (leading axes folded): a bias add.
template <class T, class D>
void add_row(TensorView<const T, D> row, TensorView<T, D> y) {
  require(row.numel() == y.cols(), "add_row", "row expected ", y.cols(), " elements (y is ", y.shape(), "), got ",
          row.shape());
  ElementwiseKernel<D>::add_row(y.rows(), y.cols(), row.data(), y.data());
}

// acc += sum over the rows of x (leading axes folded), rows added in order: a bias gradient.
template <class T, class D>
void sum_rows(TensorView<const T, D> x, TensorView<T, D> acc) {
  require(acc.numel() == x.cols(), "sum_rows", "acc expected ", x.cols(), " elements (x is ", x.shape(), "), got ",
          acc.shape());
  ElementwiseKernel<D>::sum_rows(x.rows(), x.cols(), x.data(), acc.data());
}

// Whether no element of x is inf or NaN (on a device, this waits for the queued work).
template <class T, class D>
[[nodiscard]] bool all_finite(TensorView<const T, D> x) {
  return ElementwiseKernel<D>::all_finite(x.numel(), x.data());
}

// dst = To(src), elementwise (fp32 <-> bf16/fp16 and friends; rounds to nearest even).
template <class From, class To, class D>
void cast(TensorView<const From, D> src, TensorView<To, D> dst) {
  require(src.numel() == dst.numel(), "cast", "src has ", src.numel(), " elements (shape ", src.shape(), "), dst has ",
          dst.numel(), " (shape ", dst.shape(), ")");
  ElementwiseKernel<D>::cast(src.numel(), src.data(), dst.data());
}

// A new tensor holding To(src).
template <class To, class From, class D>
[[nodiscard]] Tensor<To, D> cast_to(TensorView<const From, D> src) {
  auto dst = Tensor<To, D>::uninitialized(src.shape());
  ElementwiseKernel<D>::cast(src.numel(), src.data(), dst.data());
  return dst;
}

}  // namespace nexa::ops
