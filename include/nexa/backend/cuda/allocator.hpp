#pragma once
// The CUDA caching allocator: CachingAllocator (core/caching_allocator.hpp: bins, stream-ordered
// reuse, statistics) over cudaMalloc/cudaFree. Each CudaContext owns one (context.hpp), and every
// Buffer<T, cuda> holds a shared_ptr to the one it came from, so it frees to that allocator even
// when another context is current, and an allocator outlives the context while its buffers live.
// Plain C++ (no kernels), so it also compiles without nvcc.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/core/caching_allocator.hpp"

namespace nexa::cuda_backend {

// Raw device memory on the device current when allocate runs (the owning context's device).
// cudaFree synchronises the device first, so a returned segment is no longer read by any kernel.
inline RawMemory cuda_raw_memory() {
  return {[](std::size_t bytes) {
            void* p = nullptr;
            NEXA_CUDA_CHECK(cudaMalloc(&p, bytes));
            return p;
          },
          [](void* p) {
            // Called from destructors: a failure is dropped (and cleared from the last error).
            if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
          }};
}

[[nodiscard]] inline std::shared_ptr<CachingAllocator> make_cuda_allocator() {
  return std::make_shared<CachingAllocator>(cuda_raw_memory());
}

}  // namespace nexa::cuda_backend
