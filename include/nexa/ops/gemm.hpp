#pragma once
// gemm: C = alpha * op(A) * op(B) + beta * C on any device. Each view is read as a matrix of
// rows() x cols() (leading axes folded), so a [T, S, d] activation multiplies as [T*S, d].
#include "nexa/backend/cpu/gemm.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/gemm_fwd.hpp"

namespace nexa::ops {

template <class T, class D>
void gemm_views(TensorView<const T, D> a, Trans ta, TensorView<const T, D> b, Trans tb, TensorView<T, D> c, T alpha,
                T beta) {
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

// A, B and C may each be a Tensor or a TensorView.
template <class A, class B, class C, class T = typename read_view_t<A>::value_type>
void gemm(const A& a, Trans ta, const B& b, Trans tb, C&& c, T alpha = T(1), T beta = T(0)) {
  gemm_views(read_view(a), ta, read_view(b), tb, write_view(c), alpha, beta);
}

// Returns op(A) * op(B) as a new [m, n] tensor.
template <class A, class B>
[[nodiscard]] auto matmul(const A& a_in, Trans ta, const B& b_in, Trans tb) {
  const auto a = read_view(a_in);
  const auto b = read_view(b_in);
  using V = decltype(a);
  const index_t m = ta == Trans::N ? a.rows() : a.cols();
  const index_t n = tb == Trans::N ? b.cols() : b.rows();
  auto c = Tensor<typename V::value_type, typename V::device>::uninitialized({m, n});
  gemm_views(a, ta, b, tb, c.view(), typename V::value_type(1), typename V::value_type(0));
  return c;
}

}  // namespace nexa::ops
