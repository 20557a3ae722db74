#pragma once
// CPU GEMM through Eigen maps. Built with EIGEN_USE_BLAS (the nexa::nexa target sets it when
// NEXA_USE_BLAS finds a BLAS), Eigen hands these products to sgemm/dgemm.
#include "nexa/backend/cpu/eigen.hpp"
#include "nexa/ops/gemm_fwd.hpp"

namespace nexa {

template <>
struct GemmKernel<cpu> {
  template <class T>
  static void run(Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a, const T* b, T beta, T* c) {
    using cpu_backend::as_matrix;
    auto C = as_matrix(c, m, n);
    if (k == 0) {
      if (beta == T(0))
        C.setZero();
      else
        C *= beta;
      return;
    }
    if (beta == T(0))
      C.setZero();
    else if (beta != T(1))
      C *= beta;
    // op(A) is m x k; stored as k x m when transposed.
    const auto A = ta == Trans::N ? as_matrix(a, m, k) : as_matrix(a, k, m);
    const auto B = tb == Trans::N ? as_matrix(b, k, n) : as_matrix(b, n, k);
    if (ta == Trans::N && tb == Trans::N)
      C.noalias() += alpha * A * B;
    else if (ta == Trans::N)
      C.noalias() += alpha * A * B.transpose();
    else if (tb == Trans::N)
      C.noalias() += alpha * A.transpose() * B;
    else
      C.noalias() += alpha * A.transpose() * B.transpose();
  }
};

// CPU GEMMs are always full precision: nothing to switch.
template <>
class FullPrecisionGemms<cpu> {
 public:
  FullPrecisionGemms() = default;
  FullPrecisionGemms(const FullPrecisionGemms&) = delete;
  FullPrecisionGemms& operator=(const FullPrecisionGemms&) = delete;
};

}  // namespace nexa
