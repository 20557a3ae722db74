#pragma once
// Quantisation format tags: each maps a format to its tensor type, quantiser and row dequantiser:
//   NF4 (= NF4Format<true, 64>: double quantisation, blocks of 64, QLoRA's defaults),
//   NF4Format<false> (float absmax), Int8 (row-wise absmax), MXFP4 (blocks of 32; in % 32 == 0).
// And the per-device kernel a QuantizedLinear computes with (CPU: quant/quantized_gemm.hpp;
// CUDA: backend/cuda/nf4.hpp, backend/cuda/int8_mxfp4.hpp). No Eigen here, so CUDA headers may include it.
#include <concepts>
#include <cstddef>

#include "nexa/core/tensor.hpp"
#include "nexa/quant/int8.hpp"
#include "nexa/quant/mxfp4.hpp"
#include "nexa/quant/nf4.hpp"

namespace nexa::quant {

template <bool DoubleQuant = true, index_t BlockSize = 64>
struct NF4Format {
  using tensor_type = NF4Tensor;
  static constexpr const char* name = DoubleQuant ? "NF4" : "NF4 (no double quantisation)";
  [[nodiscard]] static tensor_type quantize(TensorView<const float, cpu> w) {
    return nf4_quantize(w, DoubleQuant, BlockSize);
  }
  static void dequantize_rows(const tensor_type& q, index_t r0, index_t r1, float* out) {
    nf4_dequantize_rows(q, r0, r1, out);
  }
};
using NF4 = NF4Format<>;

struct Int8 {
  using tensor_type = Int8Tensor;
  static constexpr const char* name = "Int8";
  [[nodiscard]] static tensor_type quantize(TensorView<const float, cpu> w) { return int8_quantize(w); }
  static void dequantize_rows(const tensor_type& q, index_t r0, index_t r1, float* out) {
    int8_dequantize_rows(q, r0, r1, out);
  }
};

struct MXFP4 {
  using tensor_type = MXFP4Tensor;
  static constexpr const char* name = "MXFP4";
  [[nodiscard]] static tensor_type quantize(TensorView<const float, cpu> w) { return mxfp4_quantize(w); }
  static void dequantize_rows(const tensor_type& q, index_t r0, index_t r1, float* out) {
    mxfp4_dequantize_rows(q, r0, r1, out);
  }
};

template <class F>
concept QuantFormat = requires(const typename F::tensor_type& q, TensorView<const float, cpu> w, float* out) {
  { F::quantize(w) } -> std::same_as<typename F::tensor_type>;
  F::dequantize_rows(q, index_t{0}, index_t{0}, out);
  { q.bytes() } -> std::convertible_to<std::size_t>;
  { q.shape } -> std::convertible_to<Shape>;
};

// QuantizedGemmKernel<Format, Device>: a quantised weight placed on a device and its two GEMMs
// there, for QuantizedLinear. The host storage stays the reference copy; `Placed` is what the
// device computes from (on the CPU nothing: the host storage itself).
//   static Placed place(const Format::tensor_type& w)
//   x_wt(w, placed, x, y, beta, tile_rows)     y  = x W^T + beta y
//   dy_w(w, placed, dy, dx, beta, tile_rows)   dx = dy W  + beta dx
// CUDA specialises it for NF4 in backend/cuda/nf4.hpp, for Int8 and MXFP4 in backend/cuda/int8_mxfp4.hpp.
template <class Format, class D>
struct QuantizedGemmKernel;

// Whether QuantizedGemmKernel<Format, D> computes in T: every format and T on the CPU; on CUDA
// every format in float. Modules static_assert it with a message naming the gap.
template <class Format, class T, class D>
inline constexpr bool has_quantized_gemm = std::same_as<D, cpu> || std::same_as<T, float>;

}  // namespace nexa::quant
