#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "nexa/core/rng.hpp"
#include "nexa/io/npy.hpp"
#include "nexa/quant/int8.hpp"

using nexa::index_t;
using nexa::Shape;
using nexa::Tensor;
namespace quant = nexa::quant;

namespace {

std::filesystem::path int8_fixture(const std::string& name) {
  return std::filesystem::path(NEXA_FIXTURE_DIR) / "quant" / name;
}

}  // namespace

TEST_CASE("int8 row-wise quantisation equals bitsandbytes' int8_vectorwise_quant bit for bit") {
  const auto x = nexa::load_npy<float>(int8_fixture("int8_input.npy"));  // [24, 100]
  const auto q = quant::int8_quantize(x.cview());
  const auto codes = nexa::load_npy<std::int8_t>(int8_fixture("int8_codes.npy"));
  const auto absmax = nexa::load_npy<float>(int8_fixture("int8_absmax.npy"));
  const auto ref = nexa::load_npy<float>(int8_fixture("int8_dequant.npy"));
  REQUIRE(static_cast<index_t>(q.codes.size()) == codes.numel());
  REQUIRE(static_cast<index_t>(q.absmax.size()) == absmax.numel());
  index_t bad_codes = 0, bad_absmax = 0, bad_values = 0;
  for (index_t i = 0; i < codes.numel(); ++i) bad_codes += q.codes[std::size_t(i)] != codes.data()[i];
  for (index_t i = 0; i < absmax.numel(); ++i) {
    bad_absmax +=
        std::bit_cast<std::uint32_t>(q.absmax[std::size_t(i)]) != std::bit_cast<std::uint32_t>(absmax.data()[i]);
  }
  const auto y = quant::int8_dequantize(q);
  REQUIRE(y.shape() == ref.shape());
  for (index_t i = 0; i < y.numel(); ++i) {
    bad_values += std::bit_cast<std::uint32_t>(y.data()[i]) != std::bit_cast<std::uint32_t>(ref.data()[i]);
  }
  CHECK(bad_codes == 0);
  CHECK(bad_absmax == 0);
  CHECK(bad_values == 0);

  std::vector<float> rows(3 * 100);
  quant::int8_dequantize_rows(q, 4, 7, rows.data());
  index_t bad_rows = 0;
  for (index_t i = 0; i < 300; ++i) bad_rows += rows[std::size_t(i)] != ref.data()[400 + i];
  CHECK(bad_rows == 0);
}

TEST_CASE("int8 round trip error and storage") {
  nexa::Rng rng(11);
  const auto x = Tensor<float>::randn(Shape{64, 256}, rng, 0.1);
  const auto q = quant::int8_quantize(x.cview());
  const auto y = quant::int8_dequantize(q);
  index_t bad = 0;
  for (index_t r = 0; r < 64; ++r) {
    const float step = q.absmax[std::size_t(r)] / 127.0f;
    for (index_t c = 0; c < 256; ++c) bad += std::fabs(x(r, c) - y(r, c)) > 0.5f * step * 1.0001f;
  }
  CHECK(bad == 0);
  CHECK(q.bytes() == 64 * 256 + 64 * 4);
  MESSAGE("int8 bytes/parameter: " << double(q.bytes()) / double(x.numel()));
}

TEST_CASE("int8 all-zero rows and bad input") {
  auto x = Tensor<float>(Shape{2, 3});
  x(1, 2) = -4.0f;
  const auto q = quant::int8_quantize(x.cview());
  CHECK(q.absmax[0] == 0.0f);
  CHECK(q.codes[0] == 0);
  CHECK(q.codes[5] == -127);
  const auto y = quant::int8_dequantize(q);
  CHECK(y(0, 0) == 0.0f);
  CHECK(y(1, 2) == doctest::Approx(-4.0f));
  std::vector<float> out(9);
  CHECK_THROWS_WITH_AS(quant::int8_dequantize_rows(q, 1, 3, out.data()),
                       doctest::Contains("quant::int8_dequantize_rows"), nexa::Error);
  const auto scalar = Tensor<float>(Shape{});
  CHECK_THROWS_AS(quant::int8_quantize(scalar.cview()), nexa::Error);
}
