#pragma once
// CUDA elementwise kernels: the same functions and results as ElementwiseKernel<cpu>
// (ops/elementwise_fwd.hpp). Grid-stride loops, queued on the current context's stream.
// sum_rows gives each column to one thread, which adds the rows in order: no atomics, and the
// same additions in the same order as the CPU, so bias gradients match it bit for bit.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/elementwise.hpp holds CUDA kernels: compile this file with nvcc"
#endif

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "nexa/backend/cuda/buffer.hpp"
#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/launch.hpp"
#include "nexa/core/half.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/elementwise_fwd.hpp"

namespace nexa {

namespace cuda_backend {

template <class T>
__global__ void axpy_kernel(index_t n, T alpha, const T* x, T* y) {
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) y[i] += alpha * x[i];
}
template <class T>
__global__ void scale_kernel(index_t n, T alpha, T* x) {
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) x[i] *= alpha;
}
template <class T>
__global__ void fill_kernel(index_t n, T value, T* x) {
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) x[i] = value;
}
template <class T>
__global__ void broadcast_rows_kernel(index_t rows, index_t cols, const T* row, T* y) {
  const index_t n = rows * cols;
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) y[i] = row[i % cols];
}
template <class T>
__global__ void add_row_kernel(index_t rows, index_t cols, const T* row, T* y) {
  const index_t n = rows * cols;
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) y[i] += row[i % cols];
}
template <class T>
__global__ void sum_rows_kernel(index_t rows, index_t cols, const T* x, T* acc) {
  for (index_t c = launch::thread_index(); c < cols; c += launch::thread_stride()) {
    T sum = acc[c];
    for (index_t r = 0; r < rows; ++r) sum += x[r * cols + c];
    acc[c] = sum;
  }
}

// Sets *found to 1 if any element is inf or NaN. An integer atomicOr: the flag's final value does
// not depend on which threads find one.
template <class T>
__global__ void find_nonfinite_kernel(index_t n, const T* x, int* found) {
  bool bad = false;
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) bad = bad || !isfinite(x[i]);
  if (bad) atomicOr(found, 1);
}

// 16-bit storage types travel as their bits: nexa::half and nexa::bfloat16 are host classes.
template <class T>
using raw_t = std::conditional_t<std::is_same_v<T, half> || std::is_same_v<T, bfloat16>, std::uint16_t, T>;

// To float (exactly) for 16-bit types; other types pass through.
template <class T>
__device__ auto decode(raw_t<T> v) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    return __uint_as_float(static_cast<unsigned>(v) << 16);
  } else if constexpr (std::is_same_v<T, half>) {
    // binary16 -> float is exact; done by hand (as half_bits_to_float) to need no cuda_fp16.h.
    const unsigned sign = static_cast<unsigned>(v & 0x8000u) << 16;
    const unsigned exponent = (v >> 10) & 0x1Fu;
    const unsigned mantissa = v & 0x3FFu;
    if (exponent == 0x1F) return __uint_as_float(sign | 0x7F800000u | (mantissa << 13));
    if (exponent == 0) {
      const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
      return sign ? -magnitude : magnitude;
    }
    return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  } else {
    return v;
  }
}

// From a float/double value to T's storage, rounding to nearest even exactly as core/half.hpp.
template <class T, class V>
__device__ raw_t<T> encode(V value) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    const unsigned x = __float_as_uint(static_cast<float>(value));
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x0040u);
    return static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
  } else if constexpr (std::is_same_v<T, half>) {
    const unsigned x = __float_as_uint(static_cast<float>(value));
    const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
    const unsigned abs = x & 0x7FFFFFFFu;
    if (abs > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));
    if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);
    const unsigned exponent = abs >> 23;
    if (abs < 0x38800000u) {
      if (exponent < 102) return sign;
      const unsigned mantissa = (abs & 0x7FFFFFu) | 0x800000u;
      const unsigned shift = 126 - exponent;
      unsigned result = mantissa >> shift;
      const unsigned rest = mantissa & ((1u << shift) - 1u);
      const unsigned halfway = 1u << (shift - 1u);
      if (rest > halfway || (rest == halfway && (result & 1u))) ++result;
      return static_cast<std::uint16_t>(sign | result);
    }
    unsigned result = ((exponent - 112u) << 10) | ((abs >> 13) & 0x3FFu);
    const unsigned rest = abs & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) ++result;
    return static_cast<std::uint16_t>(sign | result);
  } else {
    return static_cast<T>(value);
  }
}

template <class From, class To>
__global__ void cast_kernel(index_t n, const raw_t<From>* src, raw_t<To>* dst) {
  // Wider sources reach 16-bit types through float, as the CPU's convert does.
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride())
    dst[i] = encode<To>(decode<From>(src[i]));
}

}  // namespace cuda_backend

template <>
struct ElementwiseKernel<cuda> {
  template <class T>
  static void axpy(index_t n, T alpha, const T* x, T* y) {
    if (n == 0) return;
    cuda_backend::axpy_kernel<<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads, 0,
                                cuda_backend::current_stream()>>>(n, alpha, x, y);
    cuda_backend::check_launch("axpy_kernel");
  }
  template <class T>
  static void scale(index_t n, T alpha, T* x) {
    if (n == 0) return;
    cuda_backend::scale_kernel<<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads, 0,
                                 cuda_backend::current_stream()>>>(n, alpha, x);
    cuda_backend::check_launch("scale_kernel");
  }
  template <class T>
  static void fill(index_t n, T value, T* x) {
    if (n == 0) return;
    cuda_backend::fill_kernel<<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads, 0,
                                cuda_backend::current_stream()>>>(n, value, x);
    cuda_backend::check_launch("fill_kernel");
  }
  template <class T>
  static void copy(index_t n, const T* src, T* dst) {
    if (n == 0) return;
    NEXA_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(n) * sizeof(T), cudaMemcpyDeviceToDevice,
                                    cuda_backend::current_stream()));
  }
  template <class T>
  static void broadcast_rows(index_t rows, index_t cols, const T* row, T* y) {
    if (rows * cols == 0) return;
    cuda_backend::broadcast_rows_kernel<<<cuda_backend::launch::blocks_for(rows * cols), cuda_backend::launch::threads,
                                          0, cuda_backend::current_stream()>>>(rows, cols, row, y);
    cuda_backend::check_launch("broadcast_rows_kernel");
  }
  template <class T>
  static void add_row(index_t rows, index_t cols, const T* row, T* y) {
    if (rows * cols == 0) return;
    cuda_backend::add_row_kernel<<<cuda_backend::launch::blocks_for(rows * cols), cuda_backend::launch::threads, 0,
                                   cuda_backend::current_stream()>>>(rows, cols, row, y);
    cuda_backend::check_launch("add_row_kernel");
  }
  template <class T>
  static void sum_rows(index_t rows, index_t cols, const T* x, T* acc) {
    if (rows == 0 || cols == 0) return;
    cuda_backend::sum_rows_kernel<<<cuda_backend::launch::blocks_for(cols), cuda_backend::launch::threads, 0,
                                    cuda_backend::current_stream()>>>(rows, cols, x, acc);
    cuda_backend::check_launch("sum_rows_kernel");
  }
  template <class T>
  static bool all_finite(index_t n, const T* x) {
    if (n == 0) return true;
    auto found = Tensor<int, cuda>::zeros({1});
    cuda_backend::find_nonfinite_kernel<<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads, 0,
                                          cuda_backend::current_stream()>>>(n, x, found.data());
    cuda_backend::check_launch("find_nonfinite_kernel");
    return found.to_host()[0] == 0;  // to_host waits for the stream
  }
  template <class From, class To>
  static void cast(index_t n, const From* src, To* dst) {
    using cuda_backend::raw_t;
    if (n == 0) return;
    cuda_backend::cast_kernel<From, To>
        <<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads, 0, cuda_backend::current_stream()>>>(
            n, reinterpret_cast<const raw_t<From>*>(src), reinterpret_cast<raw_t<To>*>(dst));
    cuda_backend::check_launch("cast_kernel");
  }
};

}  // namespace nexa
