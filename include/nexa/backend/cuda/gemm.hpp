#pragma once
// CUDA GEMM through cuBLAS. nexa is row-major and cuBLAS column-major: a packed row-major
// r x c matrix is, read column-major, its c x r transpose. So C = alpha op(A) op(B) + beta C
// (C m x n) is computed as C^T = alpha op(B)^T op(A)^T + beta C^T, an n x m column-major product
// with B first and the transpose flags passed through unchanged. The handle and stream come from
// the current CudaContext (context.hpp). nexa::bfloat16 and nexa::half go through cublasGemmEx
// with fp32 accumulation (CUBLAS_COMPUTE_32F) and fp32 alpha and beta, as mixed-precision
// training expects. fp32 GEMMs follow the context's GemmCompute (fp32, or tf32/bf16/fp16 inputs
// with fp32 accumulation through cublasGemmEx's fast compute types). Plain C++ (no kernels), so it also compiles
// without nvcc.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <type_traits>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/data_type.hpp"
#include "nexa/core/device.hpp"
#include "nexa/ops/gemm_fwd.hpp"

namespace nexa {

namespace cuda_backend {
// cuBLAS's compute type for an fp32 GEMM under `mode`.
constexpr cublasComputeType_t float_compute_type(GemmCompute mode) {
  switch (mode) {
    case GemmCompute::tf32:
      return CUBLAS_COMPUTE_32F_FAST_TF32;
    case GemmCompute::bf16:
      return CUBLAS_COMPUTE_32F_FAST_16BF;
    case GemmCompute::fp16:
      return CUBLAS_COMPUTE_32F_FAST_16F;
    case GemmCompute::fp32:
      break;
  }
  return CUBLAS_COMPUTE_32F;
}
}  // namespace cuda_backend

template <>
struct GemmKernel<cuda> {
  template <class T>
  static void run(Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a, const T* b, T beta, T* c) {
    static_assert(cuda_backend::blas_supported_v<T>,
                  "GemmKernel<cuda> supports float, double, nexa::bfloat16 and nexa::half");
    using S = cuda_backend::blas_scale_t<T>;
    const S alpha_s = static_cast<S>(alpha), beta_s = static_cast<S>(beta);
    if (m == 0 || n == 0) return;
    CudaContext& context = cuda_backend::current_context();
    if (k == 0) {  // C = beta C; BLAS would reject the zero leading dimensions of the empty A and B
      scale(context, m * n, beta_s, c);
      return;
    }
    const cublasOperation_t op_a = ta == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T;
    const cublasOperation_t op_b = tb == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T;
    // Leading dimensions are the stored column counts: A is m x k (or k x m), B is k x n (or n x k).
    const std::int64_t lda = ta == Trans::N ? k : m;
    const std::int64_t ldb = tb == Trans::N ? n : k;
    // alpha and beta are host scalars: the handle keeps cuBLAS's default host pointer mode.
    if constexpr (std::is_same_v<T, float>) {
      if (context.gemm_compute() == GemmCompute::fp32) {
        NEXA_CUBLAS_CHECK(cublasSgemm_64(context.blas(), op_b, op_a, n, m, k, &alpha_s, b, ldb, a, lda, &beta_s, c, n));
      } else {
        NEXA_CUBLAS_CHECK(cublasGemmEx_64(
            context.blas(), op_b, op_a, n, m, k, &alpha_s, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta_s, c,
            CUDA_R_32F, n, cuda_backend::float_compute_type(context.gemm_compute()), CUBLAS_GEMM_DEFAULT));
      }
    } else if constexpr (std::is_same_v<T, double>) {
      NEXA_CUBLAS_CHECK(cublasDgemm_64(context.blas(), op_b, op_a, n, m, k, &alpha_s, b, ldb, a, lda, &beta_s, c, n));
    } else {
      constexpr cudaDataType_t type = cuda_backend::blas_data_type<T>();
      NEXA_CUBLAS_CHECK(cublasGemmEx_64(context.blas(), op_b, op_a, n, m, k, &alpha_s, b, type, ldb, a, type, lda,
                                        &beta_s, c, type, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
  }

  // c[0..count) *= beta (0 writes zeros, so an unwritten or NaN C does not leak through).
  template <class T, class S>
  static void scale(CudaContext& context, index_t count, S beta, T* c) {
    if (beta == S(0)) {
      NEXA_CUDA_CHECK(
          cudaMemsetAsync(static_cast<void*>(c), 0, static_cast<std::size_t>(count) * sizeof(T), context.stream()));
    } else if (beta != S(1)) {
      constexpr cudaDataType_t type = cuda_backend::blas_data_type<T>();
      constexpr cudaDataType_t scale_type = std::is_same_v<S, double> ? CUDA_R_64F : CUDA_R_32F;
      NEXA_CUBLAS_CHECK(cublasScalEx_64(context.blas(), count, &beta, scale_type, c, type, 1, scale_type));
    }
  }
};

// GEMMs on the current context compute in full fp32 while it lives, whatever the context's
// GemmCompute (router logits under mixed precision); the previous mode comes back after.
template <>
class FullPrecisionGemms<cuda> {
 public:
  FullPrecisionGemms() : context_(cuda_backend::current_context()), previous_(context_.gemm_compute()) {
    context_.set_gemm_compute(GemmCompute::fp32);
  }
  FullPrecisionGemms(const FullPrecisionGemms&) = delete;
  FullPrecisionGemms& operator=(const FullPrecisionGemms&) = delete;
  ~FullPrecisionGemms() { context_.set_gemm_compute(previous_); }

 private:
  CudaContext& context_;
  GemmCompute previous_;
};

}  // namespace nexa
