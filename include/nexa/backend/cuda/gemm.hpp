#pragma once
// CUDA GEMM through cuBLAS. nexa is row-major and cuBLAS column-major: a packed row-major
// r x c matrix is, read column-major, its c x r transpose. So C = alpha op(A) op(B) + beta C
// (C m x n) is computed as C^T = alpha op(B)^T op(A)^T + beta C^T, an n x m column-major product
// with B first and the transpose flags passed through unchanged. The handle and stream come from
// the current CudaContext (context.hpp). Plain C++ (no kernels), so it also compiles without nvcc.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <type_traits>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/core/device.hpp"
#include "nexa/ops/gemm_fwd.hpp"

namespace nexa {

template <>
struct GemmKernel<cuda> {
  template <class T>
  static void run(Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a, const T* b, T beta, T* c) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "GemmKernel<cuda> supports float and double");
    if (m == 0 || n == 0) return;
    CudaContext& context = cuda_backend::current_context();
    if (k == 0) {  // C = beta C; BLAS would reject the zero leading dimensions of the empty A and B
      if (beta == T(0)) {
        NEXA_CUDA_CHECK(
            cudaMemsetAsync(static_cast<void*>(c), 0, static_cast<std::size_t>(m * n) * sizeof(T), context.stream()));
      } else if (beta != T(1)) {
        if constexpr (std::is_same_v<T, float>)
          NEXA_CUBLAS_CHECK(cublasSscal_64(context.blas(), m * n, &beta, c, 1));
        else
          NEXA_CUBLAS_CHECK(cublasDscal_64(context.blas(), m * n, &beta, c, 1));
      }
      return;
    }
    const cublasOperation_t op_a = ta == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T;
    const cublasOperation_t op_b = tb == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T;
    // Leading dimensions are the stored column counts: A is m x k (or k x m), B is k x n (or n x k).
    const std::int64_t lda = ta == Trans::N ? k : m;
    const std::int64_t ldb = tb == Trans::N ? n : k;
    // alpha and beta are host scalars: the handle keeps cuBLAS's default host pointer mode.
    if constexpr (std::is_same_v<T, float>)
      NEXA_CUBLAS_CHECK(cublasSgemm_64(context.blas(), op_b, op_a, n, m, k, &alpha, b, ldb, a, lda, &beta, c, n));
    else
      NEXA_CUBLAS_CHECK(cublasDgemm_64(context.blas(), op_b, op_a, n, m, k, &alpha, b, ldb, a, lda, &beta, c, n));
  }
};

}  // namespace nexa
