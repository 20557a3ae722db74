#pragma once
// LayoutKernel<cuda> (ops/layout_fwd.hpp): head split/merge, gathers by index and the
// deterministic segment scatter-add behind Embedding's and RelativePositionBias's backward.
// Permutes and gathers move elements as unsigned words of the element's size, so 16-bit storage
// (host classes) moves as its bits. Kernels loop grid-stride over their outputs.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/layout.hpp contains CUDA kernels and must be compiled by nvcc"
#endif

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/launch.hpp"
#include "nexa/core/device.hpp"
#include "nexa/ops/layout_fwd.hpp"

namespace nexa {

namespace cuda_backend::layout {

// The unsigned word an element is moved as.
template <class T>
using word_t =
    std::conditional_t<sizeof(T) == 2, std::uint16_t, std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>;

// One thread per output element of [B, H, S, dh] (split) or [B, S, H * dh] (merge); `to_heads`
// picks the direction at compile time.
template <class W, bool to_heads>
__global__ void permute_heads_kernel(index_t B, index_t S, index_t H, index_t dh, const W* x, W* out) {
  const index_t n = B * S * H * dh;
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) {
    const index_t d = i % dh, h = (i / dh) % H, s = (i / (dh * H)) % S, b = i / (dh * H * S);
    const index_t tokens = (b * S + s) * H * dh + h * dh + d, heads = ((b * H + h) * S + s) * dh + d;
    if constexpr (to_heads)
      out[heads] = x[tokens];
    else
      out[tokens] = x[heads];
  }
}

template <class W, class I>
__global__ void gather_kernel(index_t rows, index_t cols, const I* idx, const W* src, Strides s, W* dst, Strides d) {
  const index_t n = rows * cols;
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) {
    const index_t r = i / cols, c = i % cols;
    dst[r * d.row + c * d.col] = src[static_cast<index_t>(idx[r]) * s.row + c * s.col];
  }
}

// One thread per (segment, column): its target element is read once, the segment's source
// elements added in order, the sum written once. No two threads share a target.
template <class T>
__global__ void scatter_add_kernel(index_t segments, index_t cols, const index_t* target, const index_t* start,
                                   const index_t* order, const T* src, Strides s, T* dst, Strides d) {
  const index_t n = segments * cols;
  for (index_t i = launch::thread_index(); i < n; i += launch::thread_stride()) {
    const index_t u = i / cols, c = i % cols;
    T* out = dst + target[u] * d.row + c * d.col;
    T acc = *out;
    for (index_t k = start[u]; k < start[u + 1]; ++k) acc += src[order[k] * s.row + c * s.col];
    *out = acc;
  }
}

}  // namespace cuda_backend::layout

template <>
struct LayoutKernel<cuda> {
  template <class T>
  static void split_heads(index_t B, index_t S, index_t H, index_t dh, const T* x, T* out) {
    permute<T, true>(B, S, H, dh, x, out);
  }
  template <class T>
  static void merge_heads(index_t B, index_t S, index_t H, index_t dh, const T* x, T* out) {
    permute<T, false>(B, S, H, dh, x, out);
  }

  template <class T, class I>
  static void gather(index_t rows, index_t cols, const I* idx, const T* src, Strides s, T* dst, Strides d) {
    using W = cuda_backend::layout::word_t<T>;
    if (rows * cols == 0) return;
    cuda_backend::layout::gather_kernel<W, I><<<cuda_backend::launch::blocks_for(rows * cols),
                                                cuda_backend::launch::threads, 0, cuda_backend::current_stream()>>>(
        rows, cols, idx, reinterpret_cast<const W*>(src), s, reinterpret_cast<W*>(dst), d);
    cuda_backend::check_launch("layout gather_kernel");
  }

  // Sums in T: float and double (the modules that call it hold their gradients in T).
  template <class T>
  static void scatter_add(index_t segments, index_t cols, const index_t* target, const index_t* start,
                          const index_t* order, const T* src, Strides s, T* dst, Strides d) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "LayoutKernel<cuda>::scatter_add sums float or double");
    if (segments * cols == 0) return;
    cuda_backend::layout::scatter_add_kernel<T>
        <<<cuda_backend::launch::blocks_for(segments * cols), cuda_backend::launch::threads, 0,
           cuda_backend::current_stream()>>>(segments, cols, target, start, order, src, s, dst, d);
    cuda_backend::check_launch("layout scatter_add_kernel");
  }

 private:
  template <class T, bool to_heads>
  static void permute(index_t B, index_t S, index_t H, index_t dh, const T* x, T* out) {
    using W = cuda_backend::layout::word_t<T>;
    const index_t n = B * S * H * dh;
    if (n == 0) return;
    cuda_backend::layout::permute_heads_kernel<W, to_heads>
        <<<cuda_backend::launch::blocks_for(n), cuda_backend::launch::threads, 0, cuda_backend::current_stream()>>>(
            B, S, H, dh, reinterpret_cast<const W*>(x), reinterpret_cast<W*>(out));
    cuda_backend::check_launch("layout permute_heads_kernel");
  }
};

}  // namespace nexa
