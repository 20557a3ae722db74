#pragma once
// Declarations shared by the grouped GEMM front end and its per-device kernels.
#include <span>

#include "nexa/core/shape.hpp"
#include "nexa/ops/gemm_fwd.hpp"

namespace nexa {

// One problem of a grouped GEMM: C (m x n) = alpha op(A) op(B) + beta C, each matrix packed
// row-major (leading dimension = stored column count), as GemmKernel takes them.
template <class T>
struct GemmProblem {
  index_t m = 0, n = 0, k = 0;
  const T* a = nullptr;
  const T* b = nullptr;
  T* c = nullptr;
};

// GroupedGemmKernel<Device>::run<T>(ta, tb, alpha, problems, beta): every problem, with one
// transpose pair and one alpha and beta for all. Results equal one GemmKernel<Device>::run per
// problem.
template <class D>
struct GroupedGemmKernel;

}  // namespace nexa
