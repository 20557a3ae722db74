#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "nexa/core/rng.hpp"
#include "nexa/io/npy.hpp"
#include "nexa/quant/nf4.hpp"

using nexa::index_t;
using nexa::Shape;
using nexa::Tensor;
namespace quant = nexa::quant;

namespace {

std::filesystem::path fixture(const std::string& name) {
  return std::filesystem::path(NEXA_FIXTURE_DIR) / "quant" / name;
}

// Number of float positions whose bit patterns differ.
index_t bit_mismatches(const float* a, const float* b, index_t n) {
  index_t bad = 0;
  for (index_t i = 0; i < n; ++i) bad += std::bit_cast<std::uint32_t>(a[i]) != std::bit_cast<std::uint32_t>(b[i]);
  return bad;
}
index_t bit_mismatches(const std::vector<float>& a, const Tensor<float>& b) {
  REQUIRE(static_cast<index_t>(a.size()) == b.numel());
  return bit_mismatches(a.data(), b.data(), b.numel());
}
index_t byte_mismatches(const std::vector<std::uint8_t>& a, const Tensor<std::uint8_t>& b) {
  REQUIRE(static_cast<index_t>(a.size()) == b.numel());
  index_t bad = 0;
  for (index_t i = 0; i < b.numel(); ++i) bad += a[static_cast<std::size_t>(i)] != b.data()[i];
  return bad;
}

}  // namespace

TEST_CASE("the signed dynamic map equals bitsandbytes' create_dynamic_map(signed=True)") {
  const auto ref = nexa::load_npy<float>(fixture("dynamic_map.npy"));
  REQUIRE(ref.numel() == 256);
  CHECK(bit_mismatches(quant::dynamic_map_signed.data(), ref.data(), 256) == 0);
}

TEST_CASE("NF4 quantize/dequantize equal bitsandbytes bit for bit (no double quantisation)") {
  for (const std::string prefix : {"nf4", "nf4_tail"}) {
    CAPTURE(prefix);
    const auto x = nexa::load_npy<float>(fixture(prefix + "_input.npy"));
    const auto q = quant::nf4_quantize(x.cview(), /*double_quant=*/false);
    CHECK(q.shape == x.shape());
    CHECK(byte_mismatches(q.codes, nexa::load_npy<std::uint8_t>(fixture(prefix + "_codes.npy"))) == 0);
    CHECK(bit_mismatches(q.absmax, nexa::load_npy<float>(fixture(prefix + "_absmax.npy"))) == 0);
    const auto ref = nexa::load_npy<float>(fixture(prefix + "_dequant.npy"));
    const auto y = quant::nf4_dequantize(q);
    REQUIRE(y.shape() == ref.shape());
    CHECK(bit_mismatches(y.data(), ref.data(), y.numel()) == 0);
  }
}

TEST_CASE("NF4 with double quantisation equals bitsandbytes bit for bit") {
  // nf4: [48, 384], 288 blocks, so the absmax values form 8-bit blocks of 256 and 32; nf4_tail:
  // 200 values, a trailing partial block of 8 and a four-value absmax mean
  for (const std::string prefix : {"nf4", "nf4_tail"}) {
    CAPTURE(prefix);
    const auto x = nexa::load_npy<float>(fixture(prefix + "_input.npy"));
    const auto q = quant::nf4_quantize(x.cview(), /*double_quant=*/true);
    REQUIRE(q.double_quant);
    CHECK(q.absmax.empty());
    CHECK(byte_mismatches(q.codes, nexa::load_npy<std::uint8_t>(fixture(prefix + "_codes.npy"))) == 0);
    CHECK(q.absmax_q.blocksize == 256);
    CHECK(byte_mismatches(q.absmax_q.codes, nexa::load_npy<std::uint8_t>(fixture(prefix + "_dq_absmax_codes.npy"))) ==
          0);
    CHECK(bit_mismatches(q.absmax_q.absmax, nexa::load_npy<float>(fixture(prefix + "_dq_absmax2.npy"))) == 0);
    const auto offset = nexa::load_npy<float>(fixture(prefix + "_dq_offset.npy"));
    CHECK(std::bit_cast<std::uint32_t>(q.offset) == std::bit_cast<std::uint32_t>(offset.data()[0]));
    const auto ref = nexa::load_npy<float>(fixture(prefix + "_dq_dequant.npy"));
    const auto y = quant::nf4_dequantize(q);
    REQUIRE(y.shape() == ref.shape());
    CHECK(bit_mismatches(y.data(), ref.data(), y.numel()) == 0);
  }

  SUBCASE("a tile of rows dequantises to the same values") {
    const auto x = nexa::load_npy<float>(fixture("nf4_input.npy"));
    const auto q = quant::nf4_quantize(x.cview(), true);
    const auto ref = nexa::load_npy<float>(fixture("nf4_dq_dequant.npy"));
    std::vector<float> tile(5 * 384);
    quant::nf4_dequantize_rows(q, 10, 15, tile.data());
    CHECK(bit_mismatches(tile.data(), ref.data() + 10 * 384, 5 * 384) == 0);
  }
}

TEST_CASE("the double-quantisation offset is torch's float32 mean bit for bit") {
  const auto inputs = nexa::load_npy<float>(fixture("mean_inputs.npy"));
  const auto lengths = nexa::load_npy<std::int64_t>(fixture("mean_lengths.npy"));
  const auto means = nexa::load_npy<float>(fixture("mean_values.npy"));
  index_t at = 0;
  for (index_t k = 0; k < lengths.numel(); ++k) {
    const index_t n = lengths.data()[k];
    CAPTURE(n);
    const float m = quant::detail::torch_mean(inputs.data() + at, n);
    CHECK(std::bit_cast<std::uint32_t>(m) == std::bit_cast<std::uint32_t>(means.data()[k]));
    at += n;
  }
  CHECK(at == inputs.numel());
}

TEST_CASE("NF4 round trip error stays within half the widest code gap times the block absmax") {
  nexa::Rng rng(7);
  const auto x = Tensor<float>::randn(Shape{96, 320}, rng, 0.05);
  for (const bool dq : {false, true}) {
    CAPTURE(dq);
    const auto q = quant::nf4_quantize(x.cview(), dq);
    const auto y = quant::nf4_dequantize(q);
    float half_gap = 0.0f;  // the widest gap is at the bottom, -1 .. -0.696
    for (std::size_t k = 0; k + 1 < quant::nf4_code.size(); ++k) {
      half_gap = std::max(half_gap, (quant::nf4_code[k + 1] - quant::nf4_code[k]) / 2.0f);
    }
    index_t bad = 0;
    double err2 = 0.0, ref2 = 0.0;
    for (index_t i = 0; i < x.numel(); ++i) {
      const float am = q.block_absmax(i / q.blocksize);
      const float xi = x.data()[i], yi = y.data()[i];
      // with double quantisation the block's scale is itself approximate: allow its error too
      const float true_am = [&] {
        float m = 0.0f;
        const index_t b = i / q.blocksize;
        for (index_t k = b * q.blocksize; k < (b + 1) * q.blocksize; ++k) m = std::max(m, std::fabs(x.data()[k]));
        return m;
      }();
      const float tol = half_gap * am + std::fabs(am - true_am) + 1e-6f;
      bad += std::fabs(xi - yi) > tol;
      err2 += double(xi - yi) * double(xi - yi);
      ref2 += double(xi) * double(xi);
    }
    CHECK(bad == 0);
    const double rel = std::sqrt(err2 / ref2);
    MESSAGE("NF4 relative RMS error (double_quant=" << dq << "): " << rel);
    CHECK(rel < 0.12);
  }
}

TEST_CASE("NF4 storage of a [2048, 512] expert matrix with double quantisation") {
  nexa::Rng rng(3);
  const auto w = Tensor<float>::randn(Shape{2048, 512}, rng, 0.02);
  const auto dq = quant::nf4_quantize(w.cview(), true);
  const auto plain = quant::nf4_quantize(w.cview(), false);
  const double per_param = double(dq.bytes()) / double(w.numel());
  const double per_param_plain = double(plain.bytes()) / double(w.numel());
  MESSAGE("NF4 bytes/parameter: " << per_param << " with double quantisation, " << per_param_plain << " without");
  // 0.5 (codes) + 1/64 (8-bit absmax) + 4/(64*256) (absmax2) + 4/n (offset)
  CHECK(per_param == doctest::Approx(0.5 + 1.0 / 64 + 4.0 / (64 * 256) + 4.0 / double(w.numel())));
  CHECK(per_param > 0.51);
  CHECK(per_param < 0.53);
  CHECK(per_param_plain == doctest::Approx(0.5 + 4.0 / 64));
}

TEST_CASE("NF4 zero blocks and odd sizes") {
  auto x = Tensor<float>(Shape{3, 43});  // 129 values: two full blocks and one of a single value
  x.data()[70] = -2.0f;
  x.data()[128] = 0.25f;
  const auto q = quant::nf4_quantize(x.cview(), true);
  CHECK(q.codes.size() == 65);
  CHECK(q.num_blocks() == 3);
  const auto y = quant::nf4_dequantize(q);
  CHECK(y.data()[70] == doctest::Approx(-2.0f).epsilon(0.01));
  CHECK(y.data()[128] == doctest::Approx(0.25f).epsilon(0.01));
  CHECK(y.data()[0] == doctest::Approx(0.0f).epsilon(1e-3));
}

TEST_CASE("NF4 bad input") {
  const auto x = Tensor<float>(Shape{4, 64});
  CHECK_THROWS_WITH_AS(quant::nf4_quantize(x.cview(), true, 63), doctest::Contains("quant::nf4_quantize"), nexa::Error);
  CHECK_THROWS_AS(quant::nf4_quantize(x.cview(), true, 0), nexa::Error);
  const auto q = quant::nf4_quantize(x.cview(), false);
  std::vector<float> out(5 * 64);
  CHECK_THROWS_WITH_AS(quant::nf4_dequantize_rows(q, 0, 5, out.data()),
                       doctest::Contains("outside the tensor's 4 rows"), nexa::Error);
  CHECK_THROWS_AS(quant::nf4_dequantize_range(q, 10, 5, out.data()), nexa::Error);
}
