#pragma once
// int8 with one absmax per row, as bitsandbytes' int8_vectorwise_quant / int8_vectorwise_dequant
// (backends/default/ops.py, _ops.py; no outlier threshold):
//   code = round_half_even(x * (127 / absmax_row)),  x' = (code * absmax_row) * (1 / 127).
// Rows are the tensor seen as [rows, cols] (cols = last extent). An all-zero row (where
// bitsandbytes would divide by zero) gets absmax 0 and codes 0; NaN or infinite input raises.
// The step of row r is absmax_r / 127, and |x - x'| <= step / 2 up to float rounding.
// int8_from_codes rebuilds a tensor from stored codes and absmax (validated); the GEMMs that
// dequantise a tile of rows at a time are quant::gemm_x_wt<Int8> / gemm_dy_w<Int8>
// (quant/quantized_gemm.hpp), and generate/int8_export.hpp saves and loads safetensors.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/shape.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa::quant {

struct Int8Tensor {
  Shape shape;
  std::vector<std::int8_t> codes;  // row-major, numel values
  std::vector<float> absmax;       // one per row

  [[nodiscard]] index_t numel() const { return shape.numel(); }
  [[nodiscard]] std::size_t bytes() const { return codes.size() + absmax.size() * sizeof(float); }
};

[[nodiscard]] inline Int8Tensor int8_quantize(TensorView<const float, cpu> x) {
  require(x.shape().rank() >= 1, "quant::int8_quantize", "expected a tensor of rank >= 1, got shape ", x.shape());
  Int8Tensor q;
  q.shape = x.shape();
  const index_t rows = q.shape.rows(), cols = q.shape.cols();
  q.codes.assign(static_cast<std::size_t>(rows * cols), 0);
  q.absmax.assign(static_cast<std::size_t>(rows), 0.0f);
  for (index_t r = 0; r < rows; ++r) {
    const float* row = x.data() + r * cols;
    float am = 0.0f;
    for (index_t c = 0; c < cols; ++c) {
      require(std::isfinite(row[c]), "quant::int8_quantize", "expected finite values, got ", row[c], " at row ", r,
              ", column ", c);
      am = std::max(am, std::fabs(row[c]));
    }
    q.absmax[static_cast<std::size_t>(r)] = am;
    if (am == 0.0f) continue;
    const float scale = 127.0f / am;
    for (index_t c = 0; c < cols; ++c) {
      // std::nearbyint rounds half to even in the default rounding mode, like torch.round
      q.codes[static_cast<std::size_t>(r * cols + c)] = static_cast<std::int8_t>(std::nearbyint(row[c] * scale));
    }
  }
  return q;
}

// Rebuilds a quantised tensor from stored codes (any shape of rank >= 1, seen as [rows, cols])
// and one absmax per row (shape [rows]), as int8_quantize would have produced them: codes in
// [-127, 127] (-128 is never produced), absmax finite and >= 0, and a row of absmax 0 all zeros.
[[nodiscard]] inline Int8Tensor int8_from_codes(TensorView<const std::int8_t, cpu> codes,
                                                TensorView<const float, cpu> absmax) {
  constexpr const char* what = "quant::int8_from_codes";
  const Shape& cs = codes.shape();
  require(cs.rank() >= 1, what, "codes must have rank >= 1, got shape ", cs);
  const index_t rows = cs.rows(), cols = cs.cols();
  require(absmax.shape() == Shape{rows}, what, "codes of shape ", cs, " need absmax of shape ", Shape{rows}, ", got ",
          absmax.shape());
  for (index_t r = 0; r < rows; ++r) {
    const float am = absmax.data()[r];
    require(std::isfinite(am) && am >= 0.0f, what, "absmax must be finite and >= 0, got ", am, " for row ", r);
    for (index_t c = 0; c < cols; ++c) {
      const int code = codes.data()[r * cols + c];
      require(code != -128, what, "code -128 at row ", r, ", column ", c, " (codes lie in [-127, 127])");
      require(am > 0.0f || code == 0, what, "row ", r, " has absmax 0 but a nonzero code ", code, " at column ", c);
    }
  }
  Int8Tensor q;
  q.shape = cs;
  q.codes.assign(codes.data(), codes.data() + codes.numel());
  q.absmax.assign(absmax.data(), absmax.data() + absmax.numel());
  return q;
}

// Rows [row_begin, row_end), written contiguously to out.
inline void int8_dequantize_rows(const Int8Tensor& q, index_t row_begin, index_t row_end, float* out) {
  const index_t cols = q.shape.cols();
  require(0 <= row_begin && row_begin <= row_end && row_end <= q.shape.rows(), "quant::int8_dequantize_rows", "rows [",
          row_begin, ", ", row_end, ") outside the tensor's ", q.shape.rows(), " rows");
  constexpr float inv127 = 7.874015718698502e-3f;
  for (index_t r = row_begin; r < row_end; ++r) {
    const float am = q.absmax[static_cast<std::size_t>(r)];
    const std::int8_t* codes = q.codes.data() + r * cols;
    for (index_t c = 0; c < cols; ++c) *out++ = (static_cast<float>(codes[c]) * am) * inv127;
  }
}

[[nodiscard]] inline Tensor<float, cpu> int8_dequantize(const Int8Tensor& q) {
  auto out = Tensor<float, cpu>::uninitialized(q.shape);
  int8_dequantize_rows(q, 0, q.shape.rows(), out.data());
  return out;
}

}  // namespace nexa::quant
