#pragma once
// Buffer<T, cuda>: owning, uninitialised device memory from the current context's caching
// allocator (allocated on, and reused by, the context's stream; see allocator.hpp), and
// detail::Transfer<cuda>, the host <-> device copies behind Tensor<T, cuda>::from_host, to_host,
// to<D2>() and zeros(). Copies and fills are queued on the current context's stream
// (context.hpp); copies to or from the host then synchronise that stream, so the host side may
// be read or freed as soon as they return. Plain C++ (no kernels), so it also compiles without nvcc.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/core/buffer.hpp"
#include "nexa/core/device.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa {

template <class T>
class Buffer<T, cuda> {
  static_assert(std::is_trivially_copyable_v<T>, "nexa tensors hold trivially copyable scalars");

 public:
  Buffer() = default;
  explicit Buffer(std::size_t size) : size_(size) {
    if (size_ == 0) return;
    require(size_ <= std::numeric_limits<std::size_t>::max() / sizeof(T), "Buffer<cuda>", "cannot allocate ", size_,
            " elements of ", sizeof(T), " bytes");
    const CudaContext& context = cuda_backend::current_context();
    allocator_ = context.allocator();
    data_ = static_cast<T*>(allocator_->allocate(size_ * sizeof(T), context.stream()));
  }
  // Device-to-device copy, ordered on the current stream.
  Buffer(const Buffer& other) : Buffer(other.size_) {
    if (size_ > 0) {
      NEXA_CUDA_CHECK(cudaMemcpyAsync(data_, other.data_, size_ * sizeof(T), cudaMemcpyDeviceToDevice,
                                      cuda_backend::current_stream()));
    }
  }
  Buffer(Buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        allocator_(std::move(other.allocator_)) {}
  Buffer& operator=(Buffer other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(allocator_, other.allocator_);
    return *this;
  }
  ~Buffer() {
    // Back to the allocator it came from. data_ was handed out by it, so this cannot fail but for
    // a failed mutex lock, which a destructor must not throw: it is dropped.
    if (data_) {
      try {
        allocator_->deallocate(data_);
      } catch (...) {
      }
    }
  }

  [[nodiscard]] T* data() { return data_; }
  [[nodiscard]] const T* data() const { return data_; }
  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::shared_ptr<CachingAllocator> allocator_;
};

namespace detail {

template <>
struct Transfer<cuda> {
  // Device -> host; returns once the data is on the host.
  template <class T>
  static void to_host(T* dst, const T* src, std::size_t n) {
    if (n == 0) return;
    const cudaStream_t stream = cuda_backend::current_stream();
    NEXA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToHost, stream));
    NEXA_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  // Host -> device; returns once `src` may be reused.
  template <class T>
  static void from_host(T* dst, const T* src, std::size_t n) {
    if (n == 0) return;
    const cudaStream_t stream = cuda_backend::current_stream();
    NEXA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyHostToDevice, stream));
    NEXA_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  // Device to device, ordered on the stream (no host round trip).
  template <class T>
  static void copy(T* dst, const T* src, std::size_t n) {
    if (n == 0) return;
    NEXA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToDevice, cuda_backend::current_stream()));
  }
  template <class T>
  static void fill_zero(T* dst, std::size_t n) {
    if (n == 0) return;
    NEXA_CUDA_CHECK(cudaMemsetAsync(static_cast<void*>(dst), 0, n * sizeof(T), cuda_backend::current_stream()));
  }
};

}  // namespace detail
}  // namespace nexa
