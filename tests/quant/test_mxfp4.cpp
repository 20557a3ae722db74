#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "nexa/core/rng.hpp"
#include "nexa/io/npy.hpp"
#include "nexa/quant/mxfp4.hpp"

using nexa::index_t;
using nexa::Shape;
using nexa::Tensor;
namespace quant = nexa::quant;

namespace {

std::filesystem::path mx_fixture(const std::string& name) {
  return std::filesystem::path(NEXA_FIXTURE_DIR) / "quant" / name;
}

index_t mx_bit_mismatches(const Tensor<float>& a, const Tensor<float>& b) {
  REQUIRE(a.shape() == b.shape());
  index_t bad = 0;
  for (index_t i = 0; i < a.numel(); ++i) {
    bad += std::bit_cast<std::uint32_t>(a.data()[i]) != std::bit_cast<std::uint32_t>(b.data()[i]);
  }
  return bad;
}

}  // namespace

TEST_CASE("MXFP4 loads GPT-OSS *_blocks/*_scales tensors exactly as transformers dequantises them") {
  const auto blocks = nexa::load_npy<std::uint8_t>(mx_fixture("mxfp4_raw_blocks.npy"));  // [3, 4, 2, 16]
  const auto scales = nexa::load_npy<std::uint8_t>(mx_fixture("mxfp4_raw_scales.npy"));  // [3, 4, 2]
  const auto ref = nexa::load_npy<float>(mx_fixture("mxfp4_raw_dequant.npy"));           // [3, 4, 64]
  const auto q = quant::mxfp4_from_blocks(blocks.cview(), scales.cview());
  CHECK(q.shape == Shape{3, 4, 64});
  CHECK(q.blocks_shape() == blocks.shape());
  CHECK(q.scales_shape() == scales.shape());
  CHECK(mx_bit_mismatches(quant::mxfp4_dequantize(q), ref) == 0);
  CHECK(q.bytes() == std::size_t(3 * 4 * 2 * 17));

  std::vector<float> rows(2 * 64);
  quant::mxfp4_dequantize_rows(q, 5, 7, rows.data());
  index_t bad = 0;
  for (index_t i = 0; i < 128; ++i) bad += rows[std::size_t(i)] != ref.data()[5 * 64 + i];
  CHECK(bad == 0);
}

TEST_CASE("MXFP4 quantisation follows the OCP MX v1.0 conversion (fixture transcription)") {
  const auto x = nexa::load_npy<float>(mx_fixture("mxfp4_input.npy"));  // [2, 6, 128]
  const auto blocks = nexa::load_npy<std::uint8_t>(mx_fixture("mxfp4_blocks.npy"));
  const auto scales = nexa::load_npy<std::uint8_t>(mx_fixture("mxfp4_scales.npy"));
  const auto ref = nexa::load_npy<float>(mx_fixture("mxfp4_dequant.npy"));
  const auto q = quant::mxfp4_quantize(x.cview());
  REQUIRE(static_cast<index_t>(q.blocks.size()) == blocks.numel());
  REQUIRE(static_cast<index_t>(q.scales.size()) == scales.numel());
  index_t bad_blocks = 0, bad_scales = 0;
  for (index_t i = 0; i < blocks.numel(); ++i) bad_blocks += q.blocks[std::size_t(i)] != blocks.data()[i];
  for (index_t i = 0; i < scales.numel(); ++i) bad_scales += q.scales[std::size_t(i)] != scales.data()[i];
  CHECK(bad_blocks == 0);
  CHECK(bad_scales == 0);
  CHECK(mx_bit_mismatches(quant::mxfp4_dequantize(q), ref) == 0);
}

TEST_CASE("MXFP4 E2M1 rounding: half to even, saturating at 6") {
  // one block with amax 6 -> scale 2^0 (floor(log2 6) - 2 = 0)
  std::vector<float> v = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f, -0.25f, -2.5f, 5.5f, 0.1f};
  const std::vector<float> expect = {0.0f, 1.0f, 1.0f, 2.0f, 2.0f, 4.0f, 4.0f, 6.0f, -0.0f, -2.0f, 6.0f, 0.0f};
  v.resize(32, 0.0f);
  const auto x = Tensor<float>::from_host(Shape{32}, v);
  const auto q = quant::mxfp4_quantize(x.cview());
  CHECK(q.scales[0] == 127);
  const auto y = quant::mxfp4_dequantize(q);
  for (std::size_t i = 0; i < expect.size(); ++i) {
    CAPTURE(i);
    CHECK(y.data()[i] == expect[i]);
    CHECK(std::signbit(y.data()[i]) == std::signbit(expect[i]));
  }
  // a block of zeros: scale 2^-127, codes 0
  const auto z = quant::mxfp4_quantize(Tensor<float>(Shape{1, 32}).cview());
  CHECK(z.scales[0] == 0);
  CHECK(quant::mxfp4_dequantize(z).data()[5] == 0.0f);
  // scale 255 is NaN in E8M0
  std::vector<std::uint8_t> b(16, 0x21), s(1, 255);
  const auto nanq = quant::mxfp4_from_blocks(Tensor<std::uint8_t>::from_host(Shape{1, 16}, b).cview(),
                                             Tensor<std::uint8_t>::from_host(Shape{1}, s).cview());
  CHECK(std::isnan(quant::mxfp4_dequantize(nanq).data()[0]));
}

TEST_CASE("MXFP4 round trip error and storage") {
  nexa::Rng rng(5);
  const auto x = Tensor<float>::randn(Shape{64, 256}, rng, 0.02);
  const auto q = quant::mxfp4_quantize(x.cview());
  const auto y = quant::mxfp4_dequantize(q);
  index_t bad = 0;
  for (index_t i = 0; i < x.numel(); ++i) {
    // amax / scale lies in [4, 8): below 6 the grid step is at most 2 * scale (error <= scale);
    // values in (6, 8) * scale saturate at 6 * scale (error < 2 * scale), as the spec has it
    const float scale = std::ldexp(1.0f, int(q.scales[std::size_t(i / 32)]) - 127);
    const float a = std::fabs(x.data()[i]);
    bad += std::fabs(x.data()[i] - y.data()[i]) > (a > 6.0f * scale ? 2.0f : 1.0f) * scale;
  }
  CHECK(bad == 0);
  const double per_param = double(q.bytes()) / double(x.numel());
  MESSAGE("MXFP4 bytes/parameter: " << per_param);
  CHECK(per_param == doctest::Approx(0.5 + 1.0 / 32));
}

TEST_CASE("MXFP4 bad input") {
  const auto x = Tensor<float>(Shape{2, 48});
  CHECK_THROWS_WITH_AS(quant::mxfp4_quantize(x.cview()), doctest::Contains("multiple of the block size 32"),
                       nexa::Error);
  const auto blocks = Tensor<std::uint8_t>(Shape{2, 3, 16});
  const auto bad_scales = Tensor<std::uint8_t>(Shape{2, 4});
  CHECK_THROWS_WITH_AS(quant::mxfp4_from_blocks(blocks.cview(), bad_scales.cview()),
                       doctest::Contains("scales expected shape"), nexa::Error);
  const auto bad_blocks = Tensor<std::uint8_t>(Shape{2, 3, 15});
  CHECK_THROWS_AS(quant::mxfp4_from_blocks(bad_blocks.cview(), Tensor<std::uint8_t>(Shape{2, 3}).cview()), nexa::Error);
}
