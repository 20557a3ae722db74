#pragma once
// MXFP4 as the OCP Microscaling Formats (MX) v1.0 specification defines it: blocks of 32
// consecutive values along the last axis share one E8M0 scale 2^(s - 127) (s = 255 is NaN);
// each value is an E2M1 code (sign bit 3, magnitudes {0, 0.5, 1, 1.5, 2, 3, 4, 6}).
// Storage is GPT-OSS's: `blocks` uint8 [..., n / 32, 16] with two codes per byte, the even
// element in the low nibble, and `scales` uint8 [..., n / 32] (the "*_blocks" / "*_scales"
// checkpoint tensors; transformers.integrations.mxfp4._convert_moe_packed_tensors dequantises
// them to [..., n] and then transposes GPT-OSS experts' last two axes, which nexa leaves to
// the caller).
// Quantisation follows the spec's conversion: shared exponent floor(log2(amax)) - 2 (the E2M1
// emax), clamped to [-127, 127]; elements x / 2^e rounded half to even on the E2M1 grid and
// saturated at +-6; a block of zeros gets scale 2^-127.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/shape.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa::quant {

inline constexpr index_t mxfp4_block = 32;
inline constexpr std::array<float, 16> e2m1_values = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                                      -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

struct MXFP4Tensor {
  Shape shape;                       // the dequantised shape [..., n]
  std::vector<std::uint8_t> blocks;  // [..., n / 32, 16]
  std::vector<std::uint8_t> scales;  // [..., n / 32]

  [[nodiscard]] index_t numel() const { return shape.numel(); }
  [[nodiscard]] Shape blocks_shape() const {
    std::vector<index_t> d = shape.dims();
    d.back() /= mxfp4_block;
    d.push_back(mxfp4_block / 2);
    return Shape(std::move(d));
  }
  [[nodiscard]] Shape scales_shape() const {
    std::vector<index_t> d = shape.dims();
    d.back() /= mxfp4_block;
    return Shape(std::move(d));
  }
  [[nodiscard]] std::size_t bytes() const { return blocks.size() + scales.size(); }
};

namespace detail {

// E2M1 code of v (already divided by the block scale): round half to even, saturate at 6.
inline std::uint8_t e2m1_encode(float v) {
  const std::uint8_t sign = std::signbit(v) ? 8 : 0;
  const float a = std::fabs(v);
  std::uint8_t mag = 7;  // above 5 (and NaN): 6, the largest magnitude
  if (a <= 5.0f) {
    if (a >= 4.0f) {
      mag = 6;  // 5 ties to 4 (even mantissa)
    } else if (a >= 2.0f) {
      mag = static_cast<std::uint8_t>(std::nearbyint(a) + 2.0f);  // 2, 3, 4; 2.5 -> 2, 3.5 -> 4
    } else {
      mag = static_cast<std::uint8_t>(std::nearbyint(a * 2.0f));  // 0, 0.5, 1, 1.5, 2
    }
  }
  return static_cast<std::uint8_t>(sign | mag);
}

inline float e8m0_scale(std::uint8_t s) {
  if (s == 255) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, static_cast<int>(s) - 127);
}

}  // namespace detail

[[nodiscard]] inline MXFP4Tensor mxfp4_quantize(TensorView<const float, cpu> x) {
  require(x.shape().rank() >= 1 && x.shape().cols() % mxfp4_block == 0, "quant::mxfp4_quantize",
          "last extent must be a multiple of the block size ", mxfp4_block, ", got shape ", x.shape());
  MXFP4Tensor q;
  q.shape = x.shape();
  const index_t groups = x.numel() / mxfp4_block;
  q.blocks.assign(static_cast<std::size_t>(groups * mxfp4_block / 2), 0);
  q.scales.assign(static_cast<std::size_t>(groups), 0);
  for (index_t g = 0; g < groups; ++g) {
    const float* v = x.data() + g * mxfp4_block;
    float amax = 0.0f;
    for (index_t i = 0; i < mxfp4_block; ++i) amax = std::max(amax, std::fabs(v[i]));
    int e = amax > 0.0f ? std::ilogb(amax) - 2 : -127;
    e = std::clamp(e, -127, 127);
    q.scales[static_cast<std::size_t>(g)] = static_cast<std::uint8_t>(e + 127);
    for (index_t i = 0; i < mxfp4_block; i += 2) {
      // dividing by a power of two: exact in double for every float input
      const auto lo = detail::e2m1_encode(static_cast<float>(std::ldexp(static_cast<double>(v[i]), -e)));
      const auto hi = detail::e2m1_encode(static_cast<float>(std::ldexp(static_cast<double>(v[i + 1]), -e)));
      q.blocks[static_cast<std::size_t>(g * mxfp4_block / 2 + i / 2)] = static_cast<std::uint8_t>(lo | (hi << 4));
    }
  }
  return q;
}

// Loads GPT-OSS style tensors: blocks uint8 [..., G, 16] and scales uint8 [..., G]; the
// dequantised shape is [..., G * 32].
[[nodiscard]] inline MXFP4Tensor mxfp4_from_blocks(TensorView<const std::uint8_t, cpu> blocks,
                                                   TensorView<const std::uint8_t, cpu> scales) {
  const Shape& bs = blocks.shape();
  const Shape& ss = scales.shape();
  require(bs.rank() >= 2 && bs.cols() == mxfp4_block / 2, "quant::mxfp4_from_blocks",
          "blocks must be [..., G, 16], got shape ", bs);
  std::vector<index_t> expect(bs.dims().begin(), bs.dims().end() - 1);
  require(Shape(expect) == ss, "quant::mxfp4_from_blocks", "scales expected shape ", Shape(expect), ", got ", ss);
  MXFP4Tensor q;
  expect.back() *= mxfp4_block;
  q.shape = Shape(std::move(expect));
  q.blocks.assign(blocks.data(), blocks.data() + blocks.numel());
  q.scales.assign(scales.data(), scales.data() + scales.numel());
  return q;
}

// Dequantises elements [begin, end) of the flattened tensor (begin, end multiples of 32 or the
// end) into out.
inline void mxfp4_dequantize_range(const MXFP4Tensor& q, index_t begin, index_t end, float* out) {
  require(0 <= begin && begin <= end && end <= q.numel(), "quant::mxfp4_dequantize_range", "range [", begin, ", ", end,
          ") outside the tensor's ", q.numel(), " elements");
  for (index_t i = begin; i < end; ++i) {
    const std::uint8_t byte = q.blocks[static_cast<std::size_t>(i / 2)];
    const std::uint8_t code = static_cast<std::uint8_t>(i % 2 == 0 ? byte & 0x0F : byte >> 4);
    *out++ = e2m1_values[code] * detail::e8m0_scale(q.scales[static_cast<std::size_t>(i / mxfp4_block)]);
  }
}

// Rows [row_begin, row_end) of the tensor seen as [rows, n], written contiguously to out.
inline void mxfp4_dequantize_rows(const MXFP4Tensor& q, index_t row_begin, index_t row_end, float* out) {
  const index_t cols = q.shape.cols();
  require(0 <= row_begin && row_begin <= row_end && row_end <= q.shape.rows(), "quant::mxfp4_dequantize_rows", "rows [",
          row_begin, ", ", row_end, ") outside the tensor's ", q.shape.rows(), " rows");
  mxfp4_dequantize_range(q, row_begin * cols, row_end * cols, out);
}

[[nodiscard]] inline Tensor<float, cpu> mxfp4_dequantize(const MXFP4Tensor& q) {
  auto out = Tensor<float, cpu>::uninitialized(q.shape);
  mxfp4_dequantize_range(q, 0, q.numel(), out.data());
  return out;
}

}  // namespace nexa::quant
