// RelativePositionBias: buckets and biases equal to Hugging Face transformers' T5Attention
// (_relative_position_bucket, compute_bias) from the fixtures in tests/fixtures/t5 written by
// make_relative_bias_fixture.py; central-difference gradient check of the backward in double;
// accumulation, frozen weights, init, parameter names and error messages.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "nexa/attention/relative_position_bias.hpp"
#include "nexa/io/npy.hpp"
#include "support/gradcheck.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {

std::filesystem::path fixture(const std::string& name) {
  return std::filesystem::path(NEXA_T5_FIXTURE_DIR) / (name + ".npy");
}

constexpr index_t fixture_offset = 5000;  // buckets.npy column k is the offset k - 5000

struct Case {
  const char* name;
  index_t num_buckets, max_distance;
  bool bidirectional;
};
constexpr index_t fixture_heads = 3;
const Case cases[] = {{"encoder", 32, 128, true}, {"decoder", 32, 128, false}, {"encoder_short", 16, 24, true}};

}  // namespace

TEST_CASE("relative_position_bucket: equal to T5Attention._relative_position_bucket for offsets -5000..5000") {
  const auto configs = nexa::load_npy<std::int32_t>(fixture("buckets_configs"));
  const auto buckets = nexa::load_npy<std::uint8_t>(fixture("buckets"));
  REQUIRE(configs.rank() == 2);
  REQUIRE(configs.dim(1) == 3);
  REQUIRE(configs.dim(0) >= 8);
  REQUIRE(buckets.shape() == nexa::Shape{configs.dim(0), 2 * fixture_offset + 1});
  const index_t n = buckets.dim(1);
  for (index_t c = 0; c < configs.dim(0); ++c) {
    const index_t num_buckets = configs.data()[c * 3], max_distance = configs.data()[c * 3 + 1];
    const bool bidirectional = configs.data()[c * 3 + 2] != 0;
    CAPTURE(num_buckets);
    CAPTURE(max_distance);
    CAPTURE(bidirectional);
    index_t mismatches = 0, first = std::numeric_limits<index_t>::max();
    for (index_t k = 0; k < n; ++k) {
      const index_t offset = k - fixture_offset;
      const index_t ours = nexa::relative_position_bucket(offset, bidirectional, num_buckets, max_distance);
      if (ours != static_cast<index_t>(buckets.data()[c * n + k])) {
        ++mismatches;
        if (first == std::numeric_limits<index_t>::max()) first = offset;
      }
    }
    CAPTURE(first);
    CHECK(mismatches == 0);
  }
}

TEST_CASE("relative_position_bucket: extreme offsets saturate without overflow") {
  constexpr index_t lo = std::numeric_limits<index_t>::min(), hi = std::numeric_limits<index_t>::max();
  CHECK(nexa::relative_position_bucket(lo, true, 32, 128) == 15);
  CHECK(nexa::relative_position_bucket(hi, true, 32, 128) == 31);
  CHECK(nexa::relative_position_bucket(lo, false, 32, 128) == 31);
  CHECK(nexa::relative_position_bucket(hi, false, 32, 128) == 0);
  CHECK(nexa::relative_position_bucket(0, true, 32, 128) == 0);
  CHECK(nexa::relative_position_bucket(1, true, 32, 128) == 17);
  CHECK(nexa::relative_position_bucket(-1, false, 32, 128) == 1);
  CHECK(nexa::relative_position_bucket(5, false, 32, 128) == 0);
}

TEST_CASE("RelativePositionBias: forward equals T5Attention.compute_bias (S = 7 and 40, bidirectional and causal)") {
  for (const Case& c : cases) {
    CAPTURE(c.name);
    nexa::Rng rng(1);
    nexa::RelativePositionBias<> rpb({.heads = fixture_heads,
                                      .num_buckets = c.num_buckets,
                                      .max_distance = c.max_distance,
                                      .bidirectional = c.bidirectional,
                                      .init_std = 1.0},
                                     rng);
    auto weight = nexa::load_npy<float>(fixture(std::string(c.name) + "_weight"));
    REQUIRE(weight.shape() == rpb.weight.value.shape());
    rpb.weight.value = std::move(weight);
    for (const index_t S : {index_t{7}, index_t{40}}) {
      CAPTURE(S);
      const auto expected = nexa::load_npy<float>(fixture(std::string(c.name) + "_bias_s" + std::to_string(S)));
      REQUIRE(expected.shape() == nexa::Shape{fixture_heads, S, S});
      const auto bias = rpb.forward(S);
      REQUIRE(bias.shape() == nexa::Shape{fixture_heads, 2 * S - 1});
      double err = 0;
      for (index_t h = 0; h < fixture_heads; ++h)
        for (index_t i = 0; i < S; ++i)
          for (index_t j = 0; j < S; ++j) {
            const double ours = bias.data()[h * (2 * S - 1) + (j - i) + S - 1];
            err = std::max(err, std::abs(ours - double(expected.data()[(h * S + i) * S + j])));
          }
      CHECK(err <= 1e-6);
    }
  }
}

TEST_CASE("RelativePositionBias: backward matches central differences of sum(r * bias) in double") {
  for (const Case& c : cases) {
    for (const index_t S : {index_t{1}, index_t{7}, index_t{40}}) {
      CAPTURE(c.name);
      CAPTURE(S);
      nexa::Rng rng(7);
      nexa::RelativePositionBias<double> rpb({.heads = 4,
                                              .num_buckets = c.num_buckets,
                                              .max_distance = c.max_distance,
                                              .bidirectional = c.bidirectional,
                                              .d_model = 16},
                                             rng);
      const auto r = Tensor<double>::randn({4, 2 * S - 1}, rng);
      rpb.weight.zero_grad();
      rpb.backward(r.cview());
      const auto loss = [&] { return nexa::testing::weighted_sum(rpb.forward(S), r); };
      CHECK(nexa::testing::gradient_error(loss, rpb.weight.value.data(), rpb.weight.numel(), rpb.weight.grad.data()) <
            1e-8);

      // Explicitly: grad[b, h] = sum of r[h, o + S - 1] over the offsets o in bucket b.
      const std::vector<index_t> buckets = rpb.buckets(S);
      std::vector<double> expected(static_cast<std::size_t>(rpb.weight.numel()), 0.0);
      for (index_t h = 0; h < 4; ++h)
        for (index_t k = 0; k < 2 * S - 1; ++k)
          expected[static_cast<std::size_t>(buckets[static_cast<std::size_t>(k)] * 4 + h)] +=
              r.data()[h * (2 * S - 1) + k];
      for (index_t i = 0; i < rpb.weight.numel(); ++i)
        CHECK(rpb.weight.grad.data()[i] == doctest::Approx(expected[static_cast<std::size_t>(i)]).epsilon(1e-12));
    }
  }
}

TEST_CASE("RelativePositionBias: backward accumulates; frozen weights get nothing") {
  nexa::Rng rng(3);
  nexa::RelativePositionBias<double> rpb({.heads = 2, .init_std = 0.5}, rng);
  const auto r = Tensor<double>::randn({2, 19}, rng);
  rpb.weight.zero_grad();
  rpb.backward(r.cview());
  const std::vector<double> once = rpb.weight.grad.to_host();
  rpb.backward(r.cview());
  for (index_t i = 0; i < rpb.weight.numel(); ++i)
    CHECK(rpb.weight.grad.data()[i] == doctest::Approx(2 * once[static_cast<std::size_t>(i)]));

  rpb.weight.set_trainable(false);
  rpb.backward(r.cview());  // no grad storage to write to
  CHECK(rpb.weight.grad.empty());
}

TEST_CASE("RelativePositionBias: T5 init, N(0, init_factor / sqrt(d_model)), and the Hugging Face name") {
  nexa::Rng rng(11);
  nexa::RelativePositionBias<double> rpb({.heads = 64, .d_model = 512, .init_factor = 2.0}, rng);
  REQUIRE(rpb.weight.value.shape() == nexa::Shape{32, 64});
  double sum = 0, sum2 = 0;
  const index_t n = rpb.weight.numel();
  for (index_t i = 0; i < n; ++i) {
    sum += rpb.weight.value.data()[i];
    sum2 += rpb.weight.value.data()[i] * rpb.weight.value.data()[i];
  }
  const double stddev = std::sqrt(sum2 / double(n) - (sum / double(n)) * (sum / double(n)));
  CHECK(stddev == doctest::Approx(2.0 / std::sqrt(512.0)).epsilon(0.05));

  std::vector<std::string> names;
  rpb.visit_params([&](const std::string& name, nexa::Param<double>& p) {
    names.push_back(name);
    CHECK(&p == &rpb.weight);
  });
  REQUIRE(names.size() == 1);
  CHECK(names[0] == "relative_attention_bias.weight");
  names.clear();
  rpb.visit_params([&](const std::string& name, nexa::Param<double>&) { names.push_back(name); },
                   "encoder.block.0.layer.0.SelfAttention");
  CHECK(names == std::vector<std::string>{"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"});
}

TEST_CASE("RelativePositionBias: errors name the module with expected and actual values") {
  using RPB = nexa::RelativePositionBias<>;
  using nexa::Error;
  nexa::Rng rng(0);
  CHECK_THROWS_WITH_AS(RPB({.heads = 0, .init_std = 1}, rng),
                       doctest::Contains("RelativePositionBias: heads expected > 0, got 0"), Error);
  CHECK_THROWS_WITH_AS(RPB({.heads = 2, .num_buckets = 3, .init_std = 1}, rng),
                       doctest::Contains("RelativePositionBias: num_buckets expected >= 4 (bidirectional), got 3"),
                       Error);
  CHECK_THROWS_WITH_AS(RPB({.heads = 2, .num_buckets = 1, .bidirectional = false, .init_std = 1}, rng),
                       doctest::Contains("num_buckets expected >= 2 (causal), got 1"), Error);
  CHECK_THROWS_WITH_AS(RPB({.heads = 2, .num_buckets = 32, .max_distance = 8, .init_std = 1}, rng),
                       doctest::Contains("RelativePositionBias: max_distance expected > 8"), Error);
  CHECK_THROWS_WITH_AS(RPB({.heads = 2, .init_std = -1}, rng), doctest::Contains("init_std expected >= 0, got -1"),
                       Error);
  CHECK_THROWS_WITH_AS(RPB({.heads = 2}, rng), doctest::Contains("d_model expected > 0 for T5's init"), Error);
  CHECK_THROWS_WITH_AS((void)nexa::relative_position_bucket(3, true, 32, 4),
                       doctest::Contains("RelativePositionBias: max_distance expected > 8 "), Error);

  RPB rpb({.heads = 2, .d_model = 8}, rng);
  CHECK_THROWS_WITH_AS((void)rpb.forward(0), doctest::Contains("RelativePositionBias: seq_len expected >= 1, got 0"),
                       Error);
  CHECK_THROWS_WITH_AS(rpb.backward(Tensor<float>({3, 9}).cview()),
                       doctest::Contains("d_bias shape expected [2, 2 * seq_len - 1], got [3, 9]"), Error);
  CHECK_THROWS_WITH_AS(rpb.backward(Tensor<float>({2, 8}).cview()), doctest::Contains("got [2, 8]"), Error);
  CHECK_THROWS_WITH_AS(rpb.backward(Tensor<float>({18}).cview()), doctest::Contains("RelativePositionBias"), Error);
  CHECK_THROWS_WITH_AS((void)RPB().forward(3), doctest::Contains("RelativePositionBias: module is not constructed"),
                       Error);
}
