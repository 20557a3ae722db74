#pragma once
// NF4 on the GPU: an NF4Tensor (quant/nf4.hpp) copied to the device, its dequantisation, bit for
// bit the CPU's (code value times the block's absmax; with double quantisation the absmax is
// dynamic_map[code] * absmax_of_absmax, rounded, plus the offset), and the forward of a linear
// layer over NF4 weights: y = x W^T, dequantising a tile of W's rows at a time into a scratch
// buffer from the caching allocator and multiplying it with cuBLAS straight into y's columns.
// The multiplications and additions use __fmul_rn / __fadd_rn, which nvcc never fuses into an
// FMA, so every rounding happens where the CPU's does.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/nf4.hpp contains CUDA kernels and must be compiled by nvcc"
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
#include "nexa/core/tensor.hpp"
#include "nexa/quant/formats.hpp"
#include "nexa/quant/nf4.hpp"

namespace nexa::quant {

// The device copy of an NF4Tensor: packed codes and the block statistics.
struct NF4DeviceTensor {
  Shape shape;
  index_t blocksize = 64;
  Buffer<std::uint8_t, cuda> codes;
  bool double_quant = false;
  Buffer<float, cuda> absmax;               // without double quantisation
  Buffer<std::uint8_t, cuda> absmax_codes;  // with it: 8-bit codes of absmax - offset
  Buffer<float, cuda> absmax_absmax;        // and their absmax per absmax_blocksize blocks
  index_t absmax_blocksize = 256;
  float offset = 0.0f;

  [[nodiscard]] index_t numel() const { return shape.numel(); }
};

namespace nf4_detail {

// The code tables travel as a kernel argument (1 KiB): no __constant__ symbol, which a header
// included by several translation units could not define once.
struct Tables {
  float code[16];
  float map[256];
};

inline Tables tables() {
  Tables t{};
  std::copy(nf4_code.begin(), nf4_code.end(), t.code);
  std::copy(dynamic_map_signed.begin(), dynamic_map_signed.end(), t.map);
  return t;
}

struct View {
  index_t blocksize;
  const std::uint8_t* codes;
  bool double_quant;
  const float* absmax;
  const std::uint8_t* absmax_codes;
  const float* absmax_absmax;
  index_t absmax_blocksize;
  float offset;
};

inline View view(const NF4DeviceTensor& q) {
  return {q.blocksize,           q.codes.data(),         q.double_quant,     q.absmax.data(),
          q.absmax_codes.data(), q.absmax_absmax.data(), q.absmax_blocksize, q.offset};
}

__device__ inline float element(const Tables& t, const View& q, index_t i) {
  const index_t b = i / q.blocksize;
  const float scale =
      q.double_quant ? __fadd_rn(__fmul_rn(t.map[q.absmax_codes[b]], q.absmax_absmax[b / q.absmax_blocksize]), q.offset)
                     : q.absmax[b];
  const std::uint8_t byte = q.codes[i / 2];
  const unsigned code = i % 2 == 0 ? byte >> 4 : byte & 0x0Fu;
  return __fmul_rn(t.code[code], scale);
}

// out[i - begin] = element i, for i in [begin, end).
// A template, so that the header may be included by several translation units.
template <class Unused = void>
__global__ void dequantize_kernel(Tables t, View q, index_t begin, index_t end, float* out) {
  for (index_t i = begin + static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < end;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    out[i - begin] = element(t, q, i);
  }
}

template <class T>
Buffer<T, cuda> upload(const std::vector<T>& host) {
  Buffer<T, cuda> buffer(host.size());
  nexa::detail::Transfer<cuda>::from_host(buffer.data(), host.data(), host.size());
  return buffer;
}

}  // namespace nf4_detail

[[nodiscard]] inline NF4DeviceTensor nf4_to_device(const NF4Tensor& q) {
  NF4DeviceTensor d;
  d.shape = q.shape;
  d.blocksize = q.blocksize;
  d.codes = nf4_detail::upload(q.codes);
  d.double_quant = q.double_quant;
  d.offset = q.offset;
  if (q.double_quant) {
    d.absmax_codes = nf4_detail::upload(q.absmax_q.codes);
    d.absmax_absmax = nf4_detail::upload(q.absmax_q.absmax);
    d.absmax_blocksize = q.absmax_q.blocksize;
  } else {
    d.absmax = nf4_detail::upload(q.absmax);
  }
  return d;
}

// Elements [begin, end) of the flattened tensor into out[0, end - begin) (device memory), on the
// current context's stream.
inline void nf4_dequantize_range(const NF4DeviceTensor& q, index_t begin, index_t end, float* out) {
  require(0 <= begin && begin <= end && end <= q.numel(), "quant::nf4_dequantize_range", "range [", begin, ", ", end,
          ") outside the tensor's ", q.numel(), " elements");
  if (begin == end) return;
  constexpr int threads = 256;
  const index_t blocks = std::min<index_t>((end - begin + threads - 1) / threads, 65535);
  nf4_detail::dequantize_kernel<><<<static_cast<unsigned>(blocks), threads, 0, cuda_backend::current_stream()>>>(
      nf4_detail::tables(), nf4_detail::view(q), begin, end, out);
  cuda_backend::check_launch("nf4 dequantize_kernel");
}

namespace nf4_detail {
// Calls f(r0, n, tile) for W's rows in tiles of at most tile_rows, in order, each dequantised into
// tile [n, in] (device scratch from the caching allocator, reused from tile to tile).
template <class F>
void for_each_tile(const NF4DeviceTensor& w, index_t tile_rows, F&& f) {
  const index_t out_features = w.shape[0], in_features = w.shape[1];
  const index_t tile = std::min(tile_rows, out_features);
  Buffer<float, cuda> scratch(static_cast<std::size_t>(tile * in_features));
  for (index_t r0 = 0; r0 < out_features; r0 += tile) {
    const index_t n = std::min(tile, out_features - r0);
    nf4_dequantize_range(w, r0 * in_features, (r0 + n) * in_features, scratch.data());
    f(r0, n, static_cast<const float*>(scratch.data()));
  }
}
}  // namespace nf4_detail

[[nodiscard]] inline Tensor<float, cuda> nf4_dequantize(const NF4DeviceTensor& q) {
  auto out = Tensor<float, cuda>::uninitialized(q.shape);
  nf4_dequantize_range(q, 0, q.numel(), out.data());
  return out;
}

// y [rows, out] = x [rows, in] W^T + beta y, W the [out, in] NF4 weight, dequantised tile_rows
// rows at a time (scratch: tile_rows * in floats).
inline void nf4_linear_forward(TensorView<const float, cuda> x, const NF4DeviceTensor& w, TensorView<float, cuda> y,
                               index_t tile_rows = 256, float beta = 0.0f) {
  require(w.shape.rank() == 2, "quant::nf4_linear_forward", "expected a [out, in] weight, got ", w.shape);
  const index_t out_features = w.shape[0], in_features = w.shape[1], rows = x.rows();
  require(x.cols() == in_features && y.rows() == rows && y.cols() == out_features, "quant::nf4_linear_forward",
          "expected x [", rows, ", ", in_features, "] and y [", rows, ", ", out_features, "], got x ", x.shape(),
          " and y ", y.shape());
  require(tile_rows > 0, "quant::nf4_linear_forward", "expected a positive tile, got ", tile_rows);
  if (rows == 0 || out_features == 0) return;
  CudaContext& context = cuda_backend::current_context();
  if (in_features == 0) {  // y = beta y
    GemmKernel<cuda>::scale(context, rows * out_features, beta, y.data());
    return;
  }
  const float one = 1.0f;
  nf4_detail::for_each_tile(w, tile_rows, [&](index_t r0, index_t n, const float* tile) {
    // Column-major view: y^T [out, rows] (ld out); its rows r0 .. r0 + n are
    // W_tile [n, in] (stored row-major: in x n column-major, so op T) times x^T (in x rows, op N).
    NEXA_CUBLAS_CHECK(cublasSgemm_64(context.blas(), CUBLAS_OP_T, CUBLAS_OP_N, n, rows, in_features, &one, tile,
                                     in_features, x.data(), in_features, &beta, y.data() + r0, out_features));
  });
}

// dx [rows, in] = dy [rows, out] W + beta dx, W dequantised tile_rows rows at a time: each tile
// adds dy[:, tile] W_tile, tiles in order (the first one applies beta).
inline void nf4_linear_backward_input(TensorView<const float, cuda> dy, const NF4DeviceTensor& w,
                                      TensorView<float, cuda> dx, index_t tile_rows = 256, float beta = 0.0f) {
  require(w.shape.rank() == 2, "quant::nf4_linear_backward_input", "expected a [out, in] weight, got ", w.shape);
  const index_t out_features = w.shape[0], in_features = w.shape[1], rows = dy.rows();
  require(dy.cols() == out_features && dx.rows() == rows && dx.cols() == in_features,
          "quant::nf4_linear_backward_input", "expected dy [", rows, ", ", out_features, "] and dx [", rows, ", ",
          in_features, "], got dy ", dy.shape(), " and dx ", dx.shape());
  require(tile_rows > 0, "quant::nf4_linear_backward_input", "expected a positive tile, got ", tile_rows);
  if (rows == 0 || in_features == 0) return;
  CudaContext& context = cuda_backend::current_context();
  if (out_features == 0) {  // dx = beta dx
    GemmKernel<cuda>::scale(context, rows * in_features, beta, dx.data());
    return;
  }
  const float one = 1.0f;
  nf4_detail::for_each_tile(w, tile_rows, [&](index_t r0, index_t n, const float* tile) {
    // Column-major view: dx^T [in, rows] (+)= W_tile^T [in, n] (W_tile row-major [n, in] is in x n
    // column-major: op N) times dy[:, r0 .. r0 + n]^T [n, rows] (ld out: op N).
    const float tile_beta = r0 == 0 ? beta : 1.0f;
    NEXA_CUBLAS_CHECK(cublasSgemm_64(context.blas(), CUBLAS_OP_N, CUBLAS_OP_N, in_features, rows, n, &one, tile,
                                     in_features, dy.data() + r0, out_features, &tile_beta, dx.data(), in_features));
  });
}

// QuantizedLinear<NF4Format<...>, float, cuda>: the codes and statistics placed on the device.
template <bool DoubleQuant, index_t BlockSize>
struct QuantizedGemmKernel<NF4Format<DoubleQuant, BlockSize>, cuda> {
  using Placed = NF4DeviceTensor;
  [[nodiscard]] static Placed place(const NF4Tensor& w) { return nf4_to_device(w); }
  template <class T>
  static void x_wt(const NF4Tensor&, const Placed& w, TensorView<const T, cuda> x, TensorView<T, cuda> y, T beta,
                   index_t tile_rows) {
    static_assert(std::same_as<T, float>, "QuantizedLinear on CUDA: NF4 weights compute in float");
    nf4_linear_forward(x, w, y, tile_rows, beta);
  }
  template <class T>
  static void dy_w(const NF4Tensor&, const Placed& w, TensorView<const T, cuda> dy, TensorView<T, cuda> dx, T beta,
                   index_t tile_rows) {
    static_assert(std::same_as<T, float>, "QuantizedLinear on CUDA: NF4 weights compute in float");
    nf4_linear_backward_input(dy, w, dx, tile_rows, beta);
  }
};

}  // namespace nexa::quant
