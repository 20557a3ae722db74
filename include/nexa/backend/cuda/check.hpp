#pragma once
// Error checking for the CUDA backend. Every CUDA runtime and cuBLAS call goes through
// NEXA_CUDA_CHECK / NEXA_CUBLAS_CHECK and every kernel launch through check_launch, which raise
// nexa::Error naming the call and the error ("cuda: cudaMalloc(&p, bytes) failed:
// cudaErrorMemoryAllocation: out of memory"). Nothing here prints or aborts. Plain C++ (no
// kernels), so it also compiles without nvcc.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "nexa/core/error.hpp"

namespace nexa::cuda_backend {

// A failed runtime call also becomes the thread's "last error"; it is cleared here once reported,
// so that it does not resurface as the failure of a later, unrelated kernel launch.
inline void check_cuda(cudaError_t status, const char* call) {
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(
        detail::concat("cuda: ", call, " failed: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status)));
  }
}

inline void check_cublas(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw Error(
        detail::concat("cuda: ", call, " failed: ", cublasGetStatusName(status), ": ", cublasGetStatusString(status)));
  }
}

// After a kernel launch: reports a bad launch configuration (and any earlier asynchronous error).
inline void check_launch(const char* kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw Error(detail::concat("cuda: launch of ", kernel, " failed: ", cudaGetErrorName(status), ": ",
                               cudaGetErrorString(status)));
  }
}

}  // namespace nexa::cuda_backend

#define NEXA_CUDA_CHECK(call) ::nexa::cuda_backend::check_cuda((call), #call)
#define NEXA_CUBLAS_CHECK(call) ::nexa::cuda_backend::check_cublas((call), #call)
