#pragma once
// Buffer<T, Device>: owning, uninitialised storage for `size` elements on one device.
// The CPU specialisation lives here; the CUDA one in backend/cuda/buffer.hpp.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "nexa/core/device.hpp"

namespace nexa {

template <class T, class D>
class Buffer;

template <class T>
class Buffer<T, cpu> {
  static_assert(std::is_trivially_copyable_v<T>, "nexa tensors hold trivially copyable scalars");
  // 64 bytes: a cache line and an AVX-512 vector, so Eigen and BLAS see aligned rows.
  static constexpr std::align_val_t alignment{64};

 public:
  Buffer() = default;
  explicit Buffer(std::size_t size) : size_(size) {
    if (size_ > 0) data_ = static_cast<T*>(::operator new(size_ * sizeof(T), alignment));
  }
  Buffer(const Buffer& other) : Buffer(other.size_) {
    if (size_ > 0) std::memcpy(data_, other.data_, size_ * sizeof(T));
  }
  Buffer(Buffer&& other) noexcept : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Buffer& operator=(Buffer other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    return *this;
  }
  ~Buffer() {
    if (data_) ::operator delete(data_, alignment);
  }

  [[nodiscard]] T* data() { return data_; }
  [[nodiscard]] const T* data() const { return data_; }
  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace nexa
