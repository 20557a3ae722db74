#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "nexa/io/safetensors.hpp"
#include "nexa/quant/quantized_linear.hpp"

using nexa::index_t;
using nexa::Linear;
using nexa::QuantizedLinear;
using nexa::Tensor;
namespace quant = nexa::quant;

namespace quantized_linear_test {
namespace {

// y = x W^T (+ b) in double from a dense float weight.
Tensor<float> reference_forward(const Tensor<float>& x, const Tensor<float>& w, const std::vector<float>& bias) {
  const index_t n = x.rows(), in = w.cols(), out = w.rows();
  Tensor<float> y({n, out});
  for (index_t i = 0; i < n; ++i)
    for (index_t o = 0; o < out; ++o) {
      double s = bias.empty() ? 0.0 : bias[static_cast<std::size_t>(o)];
      for (index_t c = 0; c < in; ++c) s += double(x.data()[i * in + c]) * double(w.data()[o * in + c]);
      y.data()[i * out + o] = static_cast<float>(s);
    }
  return y;
}

// dx = dy W in double.
Tensor<float> reference_backward(const Tensor<float>& dy, const Tensor<float>& w) {
  const index_t n = dy.rows(), in = w.cols(), out = w.rows();
  Tensor<float> dx({n, in});
  for (index_t i = 0; i < n; ++i)
    for (index_t c = 0; c < in; ++c) {
      double s = 0;
      for (index_t o = 0; o < out; ++o) s += double(dy.data()[i * out + o]) * double(w.data()[o * in + c]);
      dx.data()[i * in + c] = static_cast<float>(s);
    }
  return dx;
}

// max |a - b| / max |b|.
double rel_error(const Tensor<float>& a, const Tensor<float>& b) {
  REQUIRE(a.numel() == b.numel());
  double diff = 0, scale = 0;
  for (index_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, std::abs(double(a.data()[i]) - double(b.data()[i])));
    scale = std::max(scale, std::abs(double(b.data()[i])));
  }
  return diff / scale;
}

}  // namespace

TEST_CASE_TEMPLATE("QuantizedLinear: forward and backward_input equal x W'^T and dy W' with W' the dequantised weight",
                   Format, quant::NF4, quant::NF4Format<false>, quant::Int8, quant::MXFP4) {
  // out = 300 is not a multiple of the tile (128); in = 96 (MXFP4 needs a multiple of 32) is not
  // a multiple of NF4's block of 64, so blocks straddle rows.
  for (const bool bias : {false, true}) {
    CAPTURE(bias);
    nexa::Rng rng(11);
    Linear<float> dense({.in_features = 96, .out_features = 300, .bias = bias}, rng);
    QuantizedLinear<Format> q(dense);
    CHECK(q.tile_rows() == quant::default_tile_rows);
    const Tensor<float> w = q.dequantized_weight();
    REQUIRE(w.shape() == dense.weight.value.shape());
    // The quantisation is lossy but close.
    CHECK(rel_error(w, dense.weight.value) < 0.2);

    auto x = Tensor<float>::randn({2, 7, 96}, rng);
    typename QuantizedLinear<Format>::Cache cache;
    const auto y = q.forward(x, cache);
    CHECK(y.shape() == nexa::Shape{2, 7, 300});
    const auto y_ref = reference_forward(Tensor<float>::from_host({14, 96}, x.to_host()), w, q.bias());
    CHECK(rel_error(Tensor<float>::from_host({14, 300}, y.to_host()), y_ref) < 1e-5);

    auto dy = Tensor<float>::randn({2, 7, 300}, rng);
    const auto dx = q.backward(dy, cache);
    CHECK(dx.shape() == nexa::Shape{2, 7, 96});
    const auto dx_ref = reference_backward(Tensor<float>::from_host({14, 300}, dy.to_host()), w);
    CHECK(rel_error(Tensor<float>::from_host({14, 96}, dx.to_host()), dx_ref) < 1e-5);

    // Same results for every tile size: a single tile, tiles of 1 row, one that does not divide.
    for (const index_t tile : {index_t{1}, index_t{37}, index_t{300}, index_t{1000}}) {
      CAPTURE(tile);
      q.set_tile_rows(tile);
      CHECK(rel_error(q.apply(x), y) < 1e-6);
      CHECK(rel_error(q.backward_input(dy), dx) < 1e-6);
    }
  }
}

TEST_CASE("quantised GEMMs dequantise one bounded tile at a time, never the whole matrix") {
  nexa::Rng rng(12);
  const index_t out = 1000, in = 64, n = 5, tile = 64;
  const auto w = Tensor<float>::randn({out, in}, rng, 0.1);
  const auto q = quant::NF4::quantize(w.cview());
  const auto wd = quant::dequantize<quant::NF4>(q);
  const auto x = Tensor<float>::randn({n, in}, rng);
  Tensor<float> y({n, out});
  quant::QuantGemmStats stats;
  quant::gemm_x_wt<quant::NF4>(q, x.cview(), y.view(), 0.0f, tile, &stats);
  CHECK(stats.tiles == 16);  // ceil(1000 / 64)
  CHECK(stats.weight_scratch_elements == tile * in);
  CHECK(stats.io_scratch_elements == n * tile);
  CHECK(stats.weight_scratch_elements * 10 < out * in);
  CHECK(rel_error(y, reference_forward(x, wd, {})) < 1e-5);

  const auto dy = Tensor<float>::randn({n, out}, rng);
  Tensor<float> dx({n, in});
  quant::gemm_dy_w<quant::NF4>(q, dy.cview(), dx.view(), 0.0f, tile, &stats);
  CHECK(stats.tiles == 16);
  CHECK(stats.weight_scratch_elements == tile * in);
  CHECK(rel_error(dx, reference_backward(dy, wd)) < 1e-5);

  // beta accumulates: y = x W^T + 1 * y doubles y.
  auto y2 = y;
  quant::gemm_x_wt<quant::NF4>(q, x.cview(), y2.view(), 1.0f, tile);
  for (index_t i = 0; i < y.numel(); ++i) CHECK(y2.data()[i] == doctest::Approx(2 * y.data()[i]).epsilon(1e-5));
  auto dx2 = dx;
  quant::gemm_dy_w<quant::NF4>(q, dy.cview(), dx2.view(), 1.0f, tile);
  for (index_t i = 0; i < dx.numel(); ++i) CHECK(dx2.data()[i] == doctest::Approx(2 * dx.data()[i]).epsilon(1e-5));

  // In double the staging buffer adds one float tile.
  const auto xh = x.to_host();
  const auto xd = Tensor<double>::from_host({n, in}, std::vector<double>(xh.begin(), xh.end()));
  Tensor<double> yd({n, out});
  quant::gemm_x_wt<quant::NF4>(q, xd.cview(), yd.view(), 0.0, tile, &stats);
  CHECK(stats.weight_scratch_elements == 2 * tile * in);
  for (index_t i = 0; i < y.numel(); ++i) CHECK(yd.data()[i] == doctest::Approx(y.data()[i]).epsilon(1e-5));
}

TEST_CASE("QuantizedLinear: Quantized<Linear<>, F> spelling, no parameters, bytes, errors, safetensors") {
  static_assert(std::same_as<nexa::Quantized<Linear<>, nexa::NF4>, QuantizedLinear<quant::NF4>>);
  static_assert(std::same_as<nexa::Quantized<Linear<double>, nexa::Int8>, QuantizedLinear<quant::Int8, double>>);
  static_assert(
      std::same_as<QuantizedLinear<nexa::MXFP4>::rebind<double, nexa::cpu>, QuantizedLinear<nexa::MXFP4, double>>);
  nexa::Rng rng(13);
  QuantizedLinear<nexa::NF4> q({.in_features = 512, .out_features = 256, .bias = true}, rng);
  int visited = 0;
  q.visit_params([&](const std::string&, auto&) { ++visited; });
  CHECK(visited == 0);
  CHECK(q.num_parameters() == 512 * 256 + 256);
  // 0.5 byte per weight + 1 byte per block of 64 + 4 bytes per 256 blocks + the offset, + float bias.
  CHECK(q.bytes() == 512 * 256 / 2 + 512 * 256 / 64 + 4 * 8 + 4 + 256 * 4);

  CHECK_THROWS_AS((void)q.apply(Tensor<float>({3, 511})), nexa::Error);
  CHECK_THROWS_AS((void)q.backward_input(Tensor<float>({3, 255})), nexa::Error);
  CHECK_THROWS_AS(q.set_tile_rows(0), nexa::Error);
  CHECK_THROWS_AS((void)QuantizedLinear<nexa::NF4>().apply(Tensor<float>({1, 0})), nexa::Error);
  // MXFP4 needs in_features to be a multiple of 32.
  CHECK_THROWS_AS((QuantizedLinear<nexa::MXFP4>({.in_features = 40, .out_features = 8}, rng)), nexa::Error);
  Tensor<float> y({3, 256});
  CHECK_THROWS_AS(quant::gemm_x_wt<quant::NF4>(q.storage(), Tensor<float>({3, 512}).cview(), y.view(), 0.0f, 0),
                  nexa::Error);

  // safetensors: a quantised layer has nothing to save (and saving does not fail).
  const auto path = std::filesystem::temp_directory_path() / ("nexa_qlora_" + std::to_string(::getpid()) + ".st");
  nexa::save_safetensors(q, path);
  CHECK(nexa::read_safetensors(path).tensors.empty());
  std::filesystem::remove(path);
}

}  // namespace quantized_linear_test
