#pragma once
// grouped_gemm: C_i = alpha op(A_i) op(B_i) + beta C_i for a list of problems of any shapes (the
// per-expert GEMMs of an MoE layer), one GroupedGemmKernel<Device> call for all: on CUDA a single
// cuBLAS grouped launch where the toolkit has one. grouped_gemm_rows is the MoE form: expert e's
// tokens are rows offsets[e]..offsets[e+1] of one gathered A and one C, and B_e is its weight.
#include <cstddef>
#include <vector>

#include "nexa/backend/cpu/grouped_gemm.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/grouped_gemm_fwd.hpp"

namespace nexa::ops {

// Each view is read as a rows() x cols() matrix (leading axes folded), as ops::gemm reads it.
template <class T, class D>
void grouped_gemm(const std::vector<TensorView<const T, D>>& a, Trans ta, const std::vector<TensorView<const T, D>>& b,
                  Trans tb, const std::vector<TensorView<T, D>>& c, T alpha = T(1), T beta = T(0)) {
  require(a.size() == b.size() && a.size() == c.size(), "grouped_gemm", "expected as many A, B and C matrices, got A ",
          a.size(), ", B ", b.size(), ", C ", c.size());
  std::vector<GemmProblem<T>> problems(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const index_t m = ta == Trans::N ? a[i].rows() : a[i].cols();
    const index_t k = ta == Trans::N ? a[i].cols() : a[i].rows();
    const index_t kb = tb == Trans::N ? b[i].rows() : b[i].cols();
    const index_t n = tb == Trans::N ? b[i].cols() : b[i].rows();
    if (k != kb || c[i].rows() != m || c[i].cols() != n) {
      throw Error(detail::concat("grouped_gemm: problem ", i, ": op(A) is ", m, "x", k, " (A ", a[i].shape(),
                                 "), op(B) is ", kb, "x", n, " (B ", b[i].shape(), "), so C must be ", m, "x", n,
                                 "; got C ", c[i].shape()));
    }
    problems[i] = {m, n, k, a[i].data(), b[i].data(), c[i].data()};
  }
  GroupedGemmKernel<D>::template run<T>(ta, tb, alpha, std::span<const GemmProblem<T>>(problems), beta);
}

// C[rows of e] = alpha A[rows of e] op(B_e) + beta C[rows of e], rows of e = offsets[e]..offsets[e+1]
// (A is [rows, k] untransposed: the gathered tokens).
template <class T, class D>
void grouped_gemm_rows(TensorView<const T, D> a, const std::vector<index_t>& offsets,
                       const std::vector<TensorView<const T, D>>& b, Trans tb, TensorView<T, D> c, T alpha = T(1),
                       T beta = T(0)) {
  require(offsets.size() == b.size() + 1, "grouped_gemm_rows", "expected ", b.size() + 1,
          " offsets for as many experts as B matrices, got ", offsets.size());
  require(offsets.front() == 0 && offsets.back() == a.rows() && c.rows() == a.rows(), "grouped_gemm_rows",
          "expected offsets from 0 to the ", a.rows(), " rows of A, and C with as many rows; got offsets ",
          offsets.front(), "..", offsets.back(), " and C ", c.shape());
  std::vector<TensorView<const T, D>> a_parts;
  std::vector<TensorView<T, D>> c_parts;
  const auto a2 = TensorView<const T, D>(a.data(), Shape{a.rows(), a.cols()});
  const auto c2 = TensorView<T, D>(c.data(), Shape{c.rows(), c.cols()});
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e) {
    require(offsets[e] <= offsets[e + 1], "grouped_gemm_rows", "expected non-decreasing offsets, got ", offsets[e],
            " then ", offsets[e + 1], " at expert ", e);
    a_parts.push_back(a2.slice_rows(offsets[e], offsets[e + 1]));
    c_parts.push_back(c2.slice_rows(offsets[e], offsets[e + 1]));
  }
  grouped_gemm(a_parts, Trans::N, b, tb, c_parts, alpha, beta);
}

}  // namespace nexa::ops
