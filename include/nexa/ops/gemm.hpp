#pragma once
// gemm: C = alpha * op(A) * op(B) + beta * C on any device. Each view is read as a matrix of
// rows() x cols() (leading axes folded), so a [T, S, d] activation multiplies as [T*S, d].
#include "nexa/backend/cpu/gemm.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/gemm_fwd.hpp"

namespace nexa::ops {

template <class T, class D>
void gemm(TensorView<const T, D> a, Trans ta, TensorView<const T, D> b, Trans tb, TensorView<T, D> c,
          T alpha = T(1), T beta = T(0)) {
  const index_t m = ta == Trans::N ? a.rows() : a.cols();
  const index_t k = ta == Trans::N ? a.cols() : a.rows();
  const index_t kb = tb == Trans::N ? b.rows() : b.cols();
  const index_t n = tb == Trans::N ? b.cols() : b.rows();
  if (k != kb || c.rows() != m || c.cols() != n) {
    throw Error(detail::concat("gemm: op(A) is ", m, "x", k, " (A ", a.shape(), "), op(B) is ", kb, "x", n, " (B ",
                               b.shape(), "), so C must be ", m, "x", n, "; got C ", c.shape()));
  }
  GemmKernel<D>::template run<T>(ta, tb, m, n, k, alpha, a.data(), b.data(), beta, c.data());
}

// Returns op(A) * op(B) as a new [m, n] tensor.
template <class T, class D>
[[nodiscard]] Tensor<T, D> matmul(TensorView<const T, D> a, Trans ta, TensorView<const T, D> b, Trans tb) {
  const index_t m = ta == Trans::N ? a.rows() : a.cols();
  const index_t n = tb == Trans::N ? b.cols() : b.rows();
  auto c = Tensor<T, D>::uninitialized({m, n});
  gemm<T, D>(a, ta, b, tb, c.view());
  return c;
}

}  // namespace nexa::ops
