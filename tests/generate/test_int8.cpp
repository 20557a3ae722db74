#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "io/io_test_util.hpp"
#include "nexa/core/error.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/generate/int8_export.hpp"
#include "nexa/io/safetensors.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/ops/gemm.hpp"
#include "nexa/quant/int8.hpp"
#include "nexa/quant/quantized_gemm.hpp"
#include "support/rel_error.hpp"

using nexa::Dtype;
using nexa::index_t;
using nexa::Shape;
using nexa::Tensor;
using nexa::TensorData;
namespace quant = nexa::quant;
namespace gen = nexa::generate;

namespace {

std::uint32_t bits(float v) { return std::bit_cast<std::uint32_t>(v); }

bool same_bits(const quant::Int8Tensor& a, const quant::Int8Tensor& b) {
  if (!(a.shape == b.shape) || a.codes != b.codes || a.absmax.size() != b.absmax.size()) return false;
  for (std::size_t i = 0; i < a.absmax.size(); ++i)
    if (bits(a.absmax[i]) != bits(b.absmax[i])) return false;
  return true;
}

std::vector<float> values(const Tensor<float>& t) { return {t.data(), t.data() + t.numel()}; }

}  // namespace

TEST_CASE("int8 weights: |w - w'| <= step / 2 per element, step = absmax / 127") {
  nexa::Rng rng(5);
  const auto w = Tensor<float>::randn(Shape{33, 70}, rng, 0.2);
  const auto q = quant::int8_quantize(w.cview());
  const auto d = quant::int8_dequantize(q);
  index_t bad = 0;
  for (index_t r = 0; r < 33; ++r) {
    const double step = static_cast<double>(q.absmax[std::size_t(r)]) / 127.0;
    for (index_t c = 0; c < 70; ++c) {
      const int code = q.codes[std::size_t(r * 70 + c)];
      bad += code < -127 || code > 127;
      bad += std::fabs(static_cast<double>(w(r, c)) - static_cast<double>(d(r, c))) > 0.5 * step * (1 + 1e-6);
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("int8 weights: zero rows and extreme values") {
  auto w = Tensor<float>(Shape{4, 5});
  // row 0 stays zero; row 1 has +max; row 2 -max; row 3 both.
  const std::vector<float> r1{0.5f, 2.0f, -1.0f, 0.0f, 1.0f}, r2{-3.0f, 1.5f, 0.0f, 0.75f, -0.5f},
      r3{7.0f, -7.0f, 0.0f, 3.5f, -7.0f};
  for (index_t c = 0; c < 5; ++c) {
    w(1, c) = r1[std::size_t(c)];
    w(2, c) = r2[std::size_t(c)];
    w(3, c) = r3[std::size_t(c)];
  }
  const auto q = quant::int8_quantize(w.cview());
  CHECK(q.absmax == std::vector<float>{0.0f, 2.0f, 3.0f, 7.0f});
  for (index_t c = 0; c < 5; ++c) CHECK(q.codes[std::size_t(c)] == 0);
  CHECK(q.codes[5 + 1] == 127);
  CHECK(q.codes[10 + 0] == -127);
  CHECK(q.codes[15 + 0] == 127);
  CHECK(q.codes[15 + 1] == -127);
  CHECK(q.codes[15 + 4] == -127);
  CHECK(q.codes[15 + 2] == 0);
  const auto d = quant::int8_dequantize(q);
  for (index_t c = 0; c < 5; ++c) CHECK(bits(d(0, c)) == bits(0.0f));
  CHECK(d(1, 1) == doctest::Approx(2.0f).epsilon(1e-6));
  CHECK(d(2, 0) == doctest::Approx(-3.0f).epsilon(1e-6));
  CHECK(d(3, 0) == doctest::Approx(7.0f).epsilon(1e-6));
  CHECK(d(3, 1) == -d(3, 0));  // symmetric
  // Non-finite weights raise.
  w(2, 3) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH_AS((void)quant::int8_quantize(w.cview()), doctest::Contains("quant::int8_quantize"), nexa::Error);
  w(2, 3) = std::nanf("");
  CHECK_THROWS_WITH_AS((void)quant::int8_quantize(w.cview()), doctest::Contains("finite"), nexa::Error);
}

TEST_CASE("int8 storage is about a quarter of fp32, plus one float per row") {
  nexa::Rng rng(9);
  const auto w = Tensor<float>::randn(Shape{64, 256}, rng, 0.1);
  const auto size = gen::int8_size(quant::int8_quantize(w.cview()));
  CHECK(size.int8_bytes == 64 * 256 + 64 * 4);
  CHECK(size.fp32_bytes == 64 * 256 * 4);
  CHECK(size.ratio() == doctest::Approx(0.25 + 1.0 / 256));
}

TEST_CASE("y = x W^T on int8 weights, a tile of rows at a time, equals a GEMM on the dequantised W") {
  nexa::Rng rng(13);
  const auto x = Tensor<float>::randn(Shape{7, 40}, rng);
  for (const index_t out : {23, 300}) {
    INFO("out = " << out);
    const auto w = Tensor<float>::randn(Shape{out, 40}, rng, 0.3);
    const auto q = quant::int8_quantize(w.cview());
    const auto wd = quant::int8_dequantize(q);
    auto ref = Tensor<float>(Shape{7, out});
    nexa::ops::gemm(x.cview(), nexa::Trans::N, wd.cview(), nexa::Trans::T, ref.view());
    // One tile (out <= tile_rows): the same GEMM call on the same values, bit for bit.
    if (out <= quant::default_tile_rows) {
      auto y = Tensor<float>(Shape{7, out});
      quant::gemm_x_wt<quant::Int8>(q, x.cview(), y.view());
      index_t differ = 0;
      for (index_t i = 0; i < y.numel(); ++i) differ += bits(y.data()[i]) != bits(ref.data()[i]);
      CHECK(differ == 0);
    }
    // Several tiles (5 rows each, the last one short): within 1e-6.
    auto y = Tensor<float>(Shape{7, out});
    quant::QuantGemmStats stats;
    quant::gemm_x_wt<quant::Int8>(q, x.cview(), y.view(), 0.0f, 5, &stats);
    CHECK(stats.tiles == (out + 4) / 5);
    CHECK(stats.weight_scratch_elements == 5 * 40);  // never the whole W
    CHECK(nexa_test::rel_error(values(y), values(ref)) < 1e-6);
    // And both are x W'^T in double up to float rounding.
    std::vector<double> exact(std::size_t(7 * out));
    for (index_t t = 0; t < 7; ++t)
      for (index_t o = 0; o < out; ++o) {
        double s = 0;
        for (index_t k = 0; k < 40; ++k) s += double(x(t, k)) * double(wd(o, k));
        exact[std::size_t(t * out + o)] = s;
      }
    const auto yv = values(y);
    const std::vector<double> got(yv.begin(), yv.end());
    CHECK(nexa_test::rel_error(got, exact) < 1e-5);
  }
}

TEST_CASE("save_int8 / load_int8: I8 codes and F32 absmax, bitwise through a safetensors file") {
  nexa::Rng rng(17);
  auto w = Tensor<float>::randn(Shape{6, 9}, rng);
  for (index_t c = 0; c < 9; ++c) w(2, c) = 0.0f;  // a zero row survives too
  const auto q = quant::int8_quantize(w.cview());
  std::map<std::string, TensorData> tensors;
  gen::save_int8(tensors, "layer.dense.weight", q);
  REQUIRE(tensors.count("layer.dense.weight.qweight") == 1);
  REQUIRE(tensors.count("layer.dense.weight.absmax") == 1);
  CHECK(tensors.at("layer.dense.weight.qweight").dtype == Dtype::I8);
  CHECK(tensors.at("layer.dense.weight.qweight").shape == Shape{6, 9});
  CHECK(tensors.at("layer.dense.weight.absmax").dtype == Dtype::F32);
  CHECK(tensors.at("layer.dense.weight.absmax").shape == Shape{6});
  CHECK(same_bits(gen::load_int8(tensors, "layer.dense.weight"), q));
  CHECK_THROWS_WITH_AS(gen::save_int8(tensors, "layer.dense.weight", q), doctest::Contains("already in the map"),
                       nexa::Error);

  // safetensors stores I8 as such: the header says "I8" and the bytes come back unchanged.
  nexa::testing::TempDir dir;
  nexa::write_safetensors(dir / "int8.safetensors", tensors);
  const auto file = nexa::read_safetensors(dir / "int8.safetensors");
  CHECK(file.tensors.at("layer.dense.weight.qweight").dtype == Dtype::I8);
  CHECK(file.tensors.at("layer.dense.weight.qweight").bytes == tensors.at("layer.dense.weight.qweight").bytes);
  CHECK(same_bits(gen::load_int8(file.tensors, "layer.dense.weight"), q));
  nexa::SafetensorsReader reader(dir / "int8.safetensors");
  CHECK(reader.info("layer.dense.weight.qweight").dtype == Dtype::I8);
  CHECK(same_bits(gen::load_int8(reader, "layer.dense.weight"), q));
  CHECK_THROWS_WITH_AS((void)gen::load_int8(reader, "other"), doctest::Contains("\"other.qweight\""), nexa::Error);
}

TEST_CASE("load_int8 rejects mismatched shapes, wrong dtypes and bad absmax or codes") {
  const auto w = Tensor<float>::from_host(Shape{2, 3}, {1.0f, -2.0f, 0.5f, 0.0f, 0.25f, -0.125f});
  std::map<std::string, TensorData> good;
  gen::save_int8(good, "w", quant::int8_quantize(w.cview()));
  const auto rejects = [&](auto edit, const char* text) {
    auto tensors = good;
    edit(tensors);
    CHECK_THROWS_WITH_AS((void)gen::load_int8(tensors, "w"), doctest::Contains(text), nexa::Error);
  };
  const auto set_absmax = [](std::map<std::string, TensorData>& t, std::vector<float> v) {
    t["w.absmax"] = TensorData::from_tensor(Tensor<float>::from_host(Shape{index_t(v.size())}, v));
  };
  rejects([&](auto& t) { set_absmax(t, {2.0f, 0.25f, 1.0f}); }, "shape expected [2]");
  rejects([&](auto& t) { t["w.absmax"].shape = Shape{1, 2}; }, "shape expected [2]");
  rejects([&](auto& t) { t["w.qweight"].shape = Shape{3, 2}; }, "shape expected [3]");
  rejects([&](auto& t) { t["w.qweight"].dtype = Dtype::U8; }, "dtype expected I8, got U8");
  rejects(
      [&](auto& t) {
        t["w.absmax"] = TensorData::from_tensor(Tensor<float>::from_host(Shape{2}, {2.0f, 0.25f}), Dtype::F16);
      },
      "dtype expected F32, got F16");
  rejects([&](auto& t) { set_absmax(t, {2.0f, -0.25f}); }, "absmax must be finite and >= 0");
  rejects([&](auto& t) { set_absmax(t, {std::nanf(""), 0.25f}); }, "absmax must be finite and >= 0");
  rejects([&](auto& t) { set_absmax(t, {std::numeric_limits<float>::infinity(), 0.25f}); }, "finite");
  rejects([&](auto& t) { set_absmax(t, {2.0f, 0.0f}); }, "absmax 0 but a nonzero code");
  rejects([&](auto& t) { t["w.qweight"].bytes[4] = std::byte{0x80}; }, "code -128 at row 1, column 1");
  rejects([&](auto& t) { t["w.qweight"].bytes.pop_back(); }, "needs 6 bytes");
  rejects([&](auto& t) { t.erase("w.absmax"); }, "no tensor named \"w.absmax\"");
  rejects([&](auto& t) { t.erase("w.qweight"); }, "no tensor named \"w.qweight\"");
  // Error messages name the weight.
  rejects([&](auto& t) { set_absmax(t, {2.0f, -1.0f}); }, "weight \"w\"");
  // The untouched map loads.
  CHECK(gen::load_int8(good, "w").codes == std::vector<std::int8_t>{64, -127, 32, 0, 127, -64});
}

TEST_CASE("an int8 checkpoint of a module: weights as int8, the rest F32, loaded back dequantised") {
  nexa::Rng rng(21);
  nexa::Linear<> dense({.in_features = 16, .out_features = 12, .bias = true}, rng);
  nexa::testing::TempDir dir;
  const auto path = dir / "model.safetensors";
  const auto report = gen::save_int8_checkpoint(dense, path, {{"format", "int8"}});
  CHECK(report.parameters == 16 * 12 + 12);
  CHECK(report.quantized_parameters == 16 * 12);
  CHECK(report.quantized_tensors == 1);
  CHECK(report.fp32_bytes == (16 * 12 + 12) * 4);
  CHECK(report.export_bytes == 16 * 12 + 12 * 4 + 12 * 4);
  CHECK(report.ratio() < 0.5);
  // The weights' relative error, recomputed from the dequantised weight.
  const auto deq_w = quant::int8_dequantize(quant::int8_quantize(dense.weight.value.cview()));
  double num = 0, den = 0;
  for (index_t i = 0; i < deq_w.numel(); ++i) {
    const double w = dense.weight.value.data()[i], e = w - double(deq_w.data()[i]);
    num += e * e;
    den += w * w;
  }
  CHECK(report.weight_rel_error() == doctest::Approx(std::sqrt(num / den)).epsilon(1e-12));
  CHECK(report.weight_rel_error() > 0.0);
  CHECK(report.weight_rel_error() < 0.01);  // about (step / sqrt(12)) / rms(w)

  nexa::SafetensorsReader reader(path);
  CHECK(reader.names() == std::vector<std::string>{"bias", "weight.absmax", "weight.qweight"});
  CHECK(reader.metadata().at("format") == "int8");

  nexa::Rng other(99);
  nexa::Linear<> loaded({.in_features = 16, .out_features = 12, .bias = true}, other);
  gen::load_int8_checkpoint(loaded, path);
  const auto deq = quant::int8_dequantize(quant::int8_quantize(dense.weight.value.cview()));
  index_t differ = 0;
  for (index_t i = 0; i < deq.numel(); ++i) differ += bits(loaded.weight.value.data()[i]) != bits(deq.data()[i]);
  for (index_t i = 0; i < 12; ++i) differ += bits(loaded.bias.value.data()[i]) != bits(dense.bias.value.data()[i]);
  CHECK(differ == 0);

  // A plain F32 checkpoint loads too; mismatches are listed before anything is written.
  nexa::save_safetensors(dense, dir / "plain.safetensors");
  gen::load_int8_checkpoint(loaded, dir / "plain.safetensors");
  CHECK(bits(loaded.weight.value(3, 4)) == bits(dense.weight.value(3, 4)));
  nexa::Linear<> wrong({.in_features = 16, .out_features = 11, .bias = true}, other);
  const float before = wrong.bias.value(0);
  CHECK_THROWS_WITH_AS(gen::load_int8_checkpoint(wrong, path), doctest::Contains("shape expected [11, 16]"),
                       nexa::Error);
  CHECK(bits(wrong.bias.value(0)) == bits(before));
  nexa::Linear<> no_bias({.in_features = 16, .out_features = 12}, other);
  CHECK_THROWS_WITH_AS(gen::load_int8_checkpoint(no_bias, path), doctest::Contains("unexpected tensors (1): \"bias\""),
                       nexa::Error);
  gen::load_int8_checkpoint(no_bias, path, false);
  CHECK(bits(no_bias.weight.value(0, 0)) == bits(deq(0, 0)));
}
