#pragma once
// The cuBLAS names of nexa's scalar types, and the scalar type of alpha and beta for each
// (16-bit storage computes in fp32, CUBLAS_COMPUTE_32F, so its alpha and beta are floats).
// Plain C++ (no kernels), so it also compiles without nvcc.
#include <cublas_v2.h>
#include <library_types.h>

#include <type_traits>

#include "nexa/core/half.hpp"

namespace nexa::cuda_backend {

template <class T>
inline constexpr bool is_16bit_float_v = std::is_same_v<T, bfloat16> || std::is_same_v<T, half>;

template <class T>
inline constexpr bool blas_supported_v = std::is_same_v<T, float> || std::is_same_v<T, double> || is_16bit_float_v<T>;

template <class T>
constexpr cudaDataType_t blas_data_type() {
  static_assert(blas_supported_v<T>, "cuBLAS paths support float, double, nexa::bfloat16 and nexa::half");
  if constexpr (std::is_same_v<T, float>)
    return CUDA_R_32F;
  else if constexpr (std::is_same_v<T, double>)
    return CUDA_R_64F;
  else if constexpr (std::is_same_v<T, bfloat16>)
    return CUDA_R_16BF;
  else
    return CUDA_R_16F;
}

// alpha and beta are passed to cuBLAS as this type.
template <class T>
using blas_scale_t = std::conditional_t<is_16bit_float_v<T>, float, T>;

template <class T>
constexpr cublasComputeType_t blas_compute_type() {
  return std::is_same_v<T, double> ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F;
}

}  // namespace nexa::cuda_backend
