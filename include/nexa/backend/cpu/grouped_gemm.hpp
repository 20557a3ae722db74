#pragma once
// CPU grouped GEMM: one GemmKernel<cpu> call per problem (Eigen/BLAS parallelises inside each),
// so it is bitwise the same as calling ops::gemm per problem.
#include <span>

#include "nexa/backend/cpu/gemm.hpp"
#include "nexa/ops/grouped_gemm_fwd.hpp"

namespace nexa {

template <>
struct GroupedGemmKernel<cpu> {
  template <class T>
  static void run(Trans ta, Trans tb, T alpha, std::span<const GemmProblem<T>> problems, T beta) {
    for (const GemmProblem<T>& p : problems) {
      GemmKernel<cpu>::run<T>(ta, tb, p.m, p.n, p.k, alpha, p.a, p.b, beta, p.c);
    }
  }
};

}  // namespace nexa
