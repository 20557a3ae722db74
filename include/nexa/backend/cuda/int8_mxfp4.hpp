#pragma once
// Int8 (row-wise absmax) and MXFP4 (E2M1 codes, an E8M0 scale per 32 values) on the GPU, as
// backend/cuda/nf4.hpp does NF4: the storage copied to the device, dequantised bit for bit as the
// CPU does (Int8: (code * absmax) * (1/127) in that order; MXFP4: E2M1 value times 2^(scale - 127),
// NaN for scale 255; __fmul_rn, never fused), and both GEMMs of a linear layer dequantising a tile
// of W's rows at a time into cached scratch, cuBLAS writing y's columns (forward) or adding onto
// dx (backward to the input): QuantizedGemmKernel<Int8, cuda> and QuantizedGemmKernel<MXFP4, cuda>.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/int8_mxfp4.hpp contains CUDA kernels and must be compiled by nvcc"
#endif

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <concepts>
#include <cstdint>

#include "nexa/backend/cuda/buffer.hpp"
#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/gemm.hpp"
#include "nexa/backend/cuda/nf4.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/quant/formats.hpp"
#include "nexa/quant/int8.hpp"
#include "nexa/quant/mxfp4.hpp"

namespace nexa::quant {

// The device copy of an Int8Tensor: codes [rows, cols] and one absmax per row.
struct Int8DeviceTensor {
  Shape shape;
  Buffer<std::int8_t, cuda> codes;
  Buffer<float, cuda> absmax;
  [[nodiscard]] index_t numel() const { return shape.numel(); }
};

// The device copy of an MXFP4Tensor: two E2M1 codes per byte (low nibble first), a scale per 32.
struct MXFP4DeviceTensor {
  Shape shape;
  Buffer<std::uint8_t, cuda> blocks;
  Buffer<std::uint8_t, cuda> scales;
  [[nodiscard]] index_t numel() const { return shape.numel(); }
};

[[nodiscard]] inline Int8DeviceTensor int8_to_device(const Int8Tensor& q) {
  return {q.shape, nf4_detail::upload(q.codes), nf4_detail::upload(q.absmax)};
}
[[nodiscard]] inline MXFP4DeviceTensor mxfp4_to_device(const MXFP4Tensor& q) {
  return {q.shape, nf4_detail::upload(q.blocks), nf4_detail::upload(q.scales)};
}

namespace quant_cuda_detail {

struct E2M1Table {
  float value[16];
};
inline E2M1Table e2m1_table() {
  E2M1Table t{};
  std::copy(e2m1_values.begin(), e2m1_values.end(), t.value);
  return t;
}

// 2^(s - 127) exactly (s = 0 is the subnormal 2^-127), NaN for 255: the CPU's e8m0_scale.
__device__ inline float e8m0_scale(std::uint8_t s) {
  if (s == 255) return __int_as_float(0x7FC00000);
  return s == 0 ? __int_as_float(0x00400000) : __int_as_float(static_cast<int>(s) << 23);
}

template <class Unused = void>
__global__ void int8_dequantize_kernel(const std::int8_t* codes, const float* absmax, index_t cols, index_t begin,
                                       index_t end, float* out) {
  constexpr float inv127 = 7.874015718698502e-3f;
  for (index_t i = begin + static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < end;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    out[i - begin] = __fmul_rn(__fmul_rn(static_cast<float>(codes[i]), absmax[i / cols]), inv127);
  }
}

template <class Unused = void>
__global__ void mxfp4_dequantize_kernel(E2M1Table t, const std::uint8_t* blocks, const std::uint8_t* scales,
                                        index_t begin, index_t end, float* out) {
  for (index_t i = begin + static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < end;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const std::uint8_t byte = blocks[i / 2];
    const unsigned code = i % 2 == 0 ? byte & 0x0Fu : static_cast<unsigned>(byte >> 4);
    out[i - begin] = __fmul_rn(t.value[code], e8m0_scale(scales[i / mxfp4_block]));
  }
}

inline unsigned grid_for(index_t count) {
  constexpr index_t threads = 256;
  return static_cast<unsigned>(std::min<index_t>((count + threads - 1) / threads, 65535));
}

}  // namespace quant_cuda_detail

// Elements [begin, end) of the flattened tensor into out[0, end - begin) (device memory).
inline void int8_dequantize_range(const Int8DeviceTensor& q, index_t begin, index_t end, float* out) {
  require(0 <= begin && begin <= end && end <= q.numel(), "quant::int8_dequantize_range", "range [", begin, ", ", end,
          ") outside the tensor's ", q.numel(), " elements");
  if (begin == end) return;
  quant_cuda_detail::int8_dequantize_kernel<>
      <<<quant_cuda_detail::grid_for(end - begin), 256, 0, cuda_backend::current_stream()>>>(
          q.codes.data(), q.absmax.data(), q.shape.cols(), begin, end, out);
  cuda_backend::check_launch("int8 dequantize_kernel");
}
inline void mxfp4_dequantize_range(const MXFP4DeviceTensor& q, index_t begin, index_t end, float* out) {
  require(0 <= begin && begin <= end && end <= q.numel(), "quant::mxfp4_dequantize_range", "range [", begin, ", ", end,
          ") outside the tensor's ", q.numel(), " elements");
  if (begin == end) return;
  quant_cuda_detail::mxfp4_dequantize_kernel<>
      <<<quant_cuda_detail::grid_for(end - begin), 256, 0, cuda_backend::current_stream()>>>(
          quant_cuda_detail::e2m1_table(), q.blocks.data(), q.scales.data(), begin, end, out);
  cuda_backend::check_launch("mxfp4 dequantize_kernel");
}
inline void dequantize_range(const Int8DeviceTensor& q, index_t begin, index_t end, float* out) {
  int8_dequantize_range(q, begin, end, out);
}
inline void dequantize_range(const MXFP4DeviceTensor& q, index_t begin, index_t end, float* out) {
  mxfp4_dequantize_range(q, begin, end, out);
}

// The whole tensor dequantised on the device (tests and inspection).
template <class Q>
[[nodiscard]] Tensor<float, cuda> device_dequantize(const Q& q) {
  auto out = Tensor<float, cuda>::uninitialized(q.shape);
  dequantize_range(q, 0, q.numel(), out.data());
  return out;
}

namespace quant_cuda_detail {

// Calls f(r0, n, tile) for W's rows in tiles of at most tile_rows, in order, each dequantised
// into tile [n, in] (device scratch from the caching allocator, reused from tile to tile).
template <class Q, class F>
void for_each_tile(const Q& w, index_t tile_rows, F&& f) {
  const index_t out_features = w.shape[0], in_features = w.shape[1];
  const index_t tile = std::min(tile_rows, out_features);
  Buffer<float, cuda> scratch(static_cast<std::size_t>(tile * in_features));
  for (index_t r0 = 0; r0 < out_features; r0 += tile) {
    const index_t n = std::min(tile, out_features - r0);
    dequantize_range(w, r0 * in_features, (r0 + n) * in_features, scratch.data());
    f(r0, n, static_cast<const float*>(scratch.data()));
  }
}

// y [rows, out] = x [rows, in] W^T + beta y (as nf4_linear_forward).
template <class Q>
void linear_forward(const char* what, TensorView<const float, cuda> x, const Q& w, TensorView<float, cuda> y,
                    index_t tile_rows, float beta) {
  require(w.shape.rank() == 2, what, "expected a [out, in] weight, got ", w.shape);
  const index_t out_features = w.shape[0], in_features = w.shape[1], rows = x.rows();
  require(x.cols() == in_features && y.rows() == rows && y.cols() == out_features, what, "expected x [", rows, ", ",
          in_features, "] and y [", rows, ", ", out_features, "], got x ", x.shape(), " and y ", y.shape());
  require(tile_rows > 0, what, "expected a positive tile, got ", tile_rows);
  if (rows == 0 || out_features == 0) return;
  CudaContext& context = cuda_backend::current_context();
  if (in_features == 0) {
    GemmKernel<cuda>::scale(context, rows * out_features, beta, y.data());
    return;
  }
  const float one = 1.0f;
  for_each_tile(w, tile_rows, [&](index_t r0, index_t n, const float* tile) {
    NEXA_CUBLAS_CHECK(cublasSgemm_64(context.blas(), CUBLAS_OP_T, CUBLAS_OP_N, n, rows, in_features, &one, tile,
                                     in_features, x.data(), in_features, &beta, y.data() + r0, out_features));
  });
}

// dx [rows, in] = dy [rows, out] W + beta dx (as nf4_linear_backward_input).
template <class Q>
void linear_backward_input(const char* what, TensorView<const float, cuda> dy, const Q& w, TensorView<float, cuda> dx,
                           index_t tile_rows, float beta) {
  require(w.shape.rank() == 2, what, "expected a [out, in] weight, got ", w.shape);
  const index_t out_features = w.shape[0], in_features = w.shape[1], rows = dy.rows();
  require(dy.cols() == out_features && dx.rows() == rows && dx.cols() == in_features, what, "expected dy [", rows, ", ",
          out_features, "] and dx [", rows, ", ", in_features, "], got dy ", dy.shape(), " and dx ", dx.shape());
  require(tile_rows > 0, what, "expected a positive tile, got ", tile_rows);
  if (rows == 0 || in_features == 0) return;
  CudaContext& context = cuda_backend::current_context();
  if (out_features == 0) {
    GemmKernel<cuda>::scale(context, rows * in_features, beta, dx.data());
    return;
  }
  const float one = 1.0f;
  for_each_tile(w, tile_rows, [&](index_t r0, index_t n, const float* tile) {
    const float tile_beta = r0 == 0 ? beta : 1.0f;
    NEXA_CUBLAS_CHECK(cublasSgemm_64(context.blas(), CUBLAS_OP_N, CUBLAS_OP_N, in_features, rows, n, &one, tile,
                                     in_features, dy.data() + r0, out_features, &tile_beta, dx.data(), in_features));
  });
}

// QuantizedGemmKernel<Format, cuda> for a format whose device copy is Placed.
template <class Format, class Placed_, Placed_ (*Place)(const typename Format::tensor_type&)>
struct DeviceGemmKernel {
  using Placed = Placed_;
  [[nodiscard]] static Placed place(const typename Format::tensor_type& w) { return Place(w); }
  template <class T>
  static void x_wt(const typename Format::tensor_type&, const Placed& w, TensorView<const T, cuda> x,
                   TensorView<T, cuda> y, T beta, index_t tile_rows) {
    static_assert(std::same_as<T, float>, "quantised weights on CUDA compute in float");
    linear_forward("quant::QuantizedGemmKernel<cuda>::x_wt", x, w, y, tile_rows, beta);
  }
  template <class T>
  static void dy_w(const typename Format::tensor_type&, const Placed& w, TensorView<const T, cuda> dy,
                   TensorView<T, cuda> dx, T beta, index_t tile_rows) {
    static_assert(std::same_as<T, float>, "quantised weights on CUDA compute in float");
    linear_backward_input("quant::QuantizedGemmKernel<cuda>::dy_w", dy, w, dx, tile_rows, beta);
  }
};

}  // namespace quant_cuda_detail

template <>
struct QuantizedGemmKernel<Int8, cuda> : quant_cuda_detail::DeviceGemmKernel<Int8, Int8DeviceTensor, &int8_to_device> {
};
template <>
struct QuantizedGemmKernel<MXFP4, cuda>
    : quant_cuda_detail::DeviceGemmKernel<MXFP4, MXFP4DeviceTensor, &mxfp4_to_device> {};

}  // namespace nexa::quant
