#pragma once
// CudaContext: the stream and cuBLAS handle that nexa's CUDA kernels run on.
//
// Ownership. Op front ends (ops::gemm, Tensor::from_host, ...) take no context argument, so the
// kernels ask cuda_backend::current_context(), which returns
//   1. the CudaContext installed on this thread by the innermost live CudaContextScope: the
//      caller owns that context (and its cuBLAS handle); the stream is borrowed, so the caller
//      also owns the stream and keeps it alive while the context is used; otherwise
//   2. this thread's default context for the current device: created on first use, on the
//      legacy default stream (0), destroyed at thread exit.
// Why per thread and not one process-wide static per device: a cuBLAS handle holds a stream and
// a workspace and must not be used by two threads at once (cuBLAS recommends one handle per
// thread and device), so a shared one would need a lock and would serialise threads. The
// per-thread default is a cache of a resource; it never changes a result. Callers that want
// explicit ownership (their own stream, a handle's lifetime) create a CudaContext and scope it:
//   cudaStream_t s; cudaStreamCreate(&s);
//   { nexa::CudaContext ctx(s); nexa::CudaContextScope use(ctx); /* nexa CUDA calls run on s */ }
// All work is ordered on the context's stream; copies to the host synchronise that stream.
// Device memory: each context owns a caching allocator (allocator.hpp) that Buffer<T, cuda>
// allocates from on the context's stream, so after a warm-up step nothing calls cudaMalloc.
// Plain C++ (no kernels), so it also compiles without nvcc.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "nexa/backend/cuda/allocator.hpp"
#include "nexa/backend/cuda/check.hpp"
#include "nexa/core/error.hpp"

namespace nexa {

// How cuBLAS computes fp32 GEMMs on a context (fp64 and 16-bit GEMMs are unaffected). Tensors,
// parameters and everything outside the GEMMs stay fp32, as under torch.autocast:
//   fp32  full single precision (the default)
//   tf32  TF32 tensor cores: inputs rounded to a 10-bit mantissa, fp32 accumulation
//   bf16  inputs rounded to bf16, fp32 accumulation (bf16 mixed precision: fp32 parameters are
//         the master weights)
//   fp16  inputs rounded to fp16, fp32 accumulation (pair with train::DynamicLossScaler)
// A FullPrecisionGemms<cuda> scope (backend/cuda/gemm.hpp) returns to fp32 for its lifetime:
// routers compute their logits and gradients in it.
enum class GemmCompute { fp32, tf32, bf16, fp16 };

class CudaContext {
 public:
  // Binds to the device current at construction. `stream` is borrowed; nullptr is the legacy
  // default stream.
  explicit CudaContext(cudaStream_t stream = nullptr) : stream_(stream) { NEXA_CUDA_CHECK(cudaGetDevice(&device_)); }
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;
  ~CudaContext() {
    if (blas_) (void)cublasDestroy(blas_);  // a destructor must not throw: the status is dropped
  }

  [[nodiscard]] int device() const { return device_; }
  [[nodiscard]] cudaStream_t stream() const { return stream_; }
  // The caching allocator of this context's device memory; buffers share its ownership.
  [[nodiscard]] const std::shared_ptr<CachingAllocator>& allocator() const { return allocator_; }

  // The cuBLAS handle, bound to stream(); created on first use (call it with device() current).
  [[nodiscard]] cublasHandle_t blas() {
    if (!blas_) {
      cublasHandle_t handle = nullptr;
      NEXA_CUBLAS_CHECK(cublasCreate(&handle));
      const cublasStatus_t status = cublasSetStream(handle, stream_);
      if (status != CUBLAS_STATUS_SUCCESS) (void)cublasDestroy(handle);
      NEXA_CUBLAS_CHECK(status);
      blas_ = handle;
    }
    return blas_;
  }

  [[nodiscard]] GemmCompute gemm_compute() const { return gemm_compute_; }
  void set_gemm_compute(GemmCompute mode) { gemm_compute_ = mode; }

  // Waits for all work queued on stream().
  void synchronize() const { NEXA_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  GemmCompute gemm_compute_ = GemmCompute::fp32;
  std::shared_ptr<CachingAllocator> allocator_ = cuda_backend::make_cuda_allocator();
};

namespace cuda_backend {
// The context installed on this thread by CudaContextScope, or null.
inline CudaContext*& installed_context() {
  thread_local CudaContext* context = nullptr;
  return context;
}
}  // namespace cuda_backend

// Makes `context` the one nexa's CUDA kernels use on this thread until the scope ends. Scopes
// nest; each restores the previous one.
class CudaContextScope {
 public:
  explicit CudaContextScope(CudaContext& context)
      : previous_(std::exchange(cuda_backend::installed_context(), &context)) {}
  CudaContextScope(const CudaContextScope&) = delete;
  CudaContextScope& operator=(const CudaContextScope&) = delete;
  ~CudaContextScope() { cuda_backend::installed_context() = previous_; }

 private:
  CudaContext* previous_;
};

namespace cuda_backend {

// The installed context, else this thread's default context for the current device.
inline CudaContext& current_context() {
  int device = 0;
  NEXA_CUDA_CHECK(cudaGetDevice(&device));
  if (CudaContext* context = installed_context()) {
    require(context->device() == device, "CudaContext", "the installed context belongs to device ", context->device(),
            " but device ", device, " is current");
    return *context;
  }
  thread_local std::vector<std::unique_ptr<CudaContext>> defaults;
  const auto slot = static_cast<std::size_t>(device);
  if (defaults.size() <= slot) defaults.resize(slot + 1);
  if (!defaults[slot]) defaults[slot] = std::make_unique<CudaContext>();
  return *defaults[slot];
}

inline cudaStream_t current_stream() { return current_context().stream(); }

}  // namespace cuda_backend
}  // namespace nexa
