// FullAttention: forward against the naive reference (tests/support/attention_reference.hpp),
// central-difference gradient checks (x, every projection parameter, the relative position bias) with padding, causal
// masking, position bias and dropout, no NaN for fully masked queries, and error messages.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "models/grad_util.hpp"
#include "nexa/attention/full_attention.hpp"
#include "support/attention_reference.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {

using Attn = nexa::FullAttention<double>;

struct Case {
  Attn::Config config;
  bool padding = false;
  bool position_bias = false;
};

void check_attention(const Case& c, std::uint64_t seed) {
  nexa::Rng rng(seed);
  Attn attn(c.config, rng);
  const index_t B = 3, S = 5, hid = c.config.hidden;
  auto x = Tensor<double>::randn({B, S, hid}, rng);
  Tensor<std::int32_t> mask;
  if (c.padding)  // sequence 0 full, 1 padded after 3 tokens, 2 after 1 token
    mask = Tensor<std::int32_t>::from_host({B, S}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0});
  Tensor<double> bias;
  if (c.position_bias) bias = Tensor<double>::randn({c.config.heads, 2 * S - 1}, rng);
  auto r = Tensor<double>::randn({B, S, attn.inner()}, rng);

  Attn::Cache cache;
  attn.rewind(0);
  auto y = attn.forward(x, mask, cache, bias);
  REQUIRE(y.shape() == nexa::Shape{B, S, attn.inner()});
  if (c.config.dropout == 0) {
    const auto ref = nexa::testing::naive_attention(attn, x, nexa::testing::full_visibility(mask, c.config.causal),
                                                    bias, nexa::testing::EmptyRow::uniform);
    double err = 0;
    for (index_t i = 0; i < y.numel(); ++i) err = std::max(err, std::abs(y.data()[i] - ref.data()[i]));
    CHECK(err < 1e-12);
  }
  Tensor<double> dbias;
  Tensor<double> dx;
  if (c.position_bias) {
    dbias = Tensor<double>({c.config.heads, 2 * S - 1});
    dx = attn.backward(r, cache, dbias);
  } else {
    dx = attn.backward(r, cache);
  }
  auto loss = [&] {
    Attn::Cache cc;
    attn.rewind(0);
    return nexa::testing::weighted_sum(attn.forward(x, mask, cc, bias), r);
  };
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  if (c.position_bias) CHECK(nexa::testing::gradient_error(loss, bias.data(), bias.numel(), dbias.data()) < 1e-6);
  for (auto& [name, p] : nexa::testing::trainable_params(attn))
    nexa::testing::check_param_gradient(loss, name, p->value.data(), p->grad.data(), p->numel());
}

}  // namespace

TEST_CASE("FullAttention matches the naive reference and its gradients check") {
  SUBCASE("padding mask") { check_attention({.config = {.hidden = 6, .heads = 2}, .padding = true}, 1); }
  SUBCASE("causal") { check_attention({.config = {.hidden = 6, .heads = 3, .causal = true}}, 2); }
  SUBCASE("causal + padding + position bias") {
    check_attention({.config = {.hidden = 8, .heads = 2, .causal = true}, .padding = true, .position_bias = true}, 3);
  }
  SUBCASE("position bias, unscaled, no projection bias, head_dim != hidden / heads (T5 style)") {
    check_attention(
        {.config = {.hidden = 6, .heads = 2, .head_dim = 4, .bias = false, .scale = false}, .position_bias = true}, 4);
  }
  SUBCASE("attention dropout (masks replayed with rewind)") {
    check_attention({.config = {.hidden = 6, .heads = 2, .dropout = 0.3}, .padding = true}, 5);
  }
}

TEST_CASE("FullAttention names its parameters as BERT's attention.self") {
  nexa::Rng rng(6);
  nexa::FullAttention<> attn({.hidden = 4, .heads = 2}, rng);
  std::vector<std::string> names;
  attn.visit_params([&](const std::string& n, auto&) { names.push_back(n); }, "encoder.layer.0.attention.self");
  CHECK(names == std::vector<std::string>{
                     "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.query.bias",
                     "encoder.layer.0.attention.self.key.weight", "encoder.layer.0.attention.self.key.bias",
                     "encoder.layer.0.attention.self.value.weight", "encoder.layer.0.attention.self.value.bias"});
}

TEST_CASE("FullAttention: a query that sees no key gets uniform weights, not NaN") {
  nexa::Rng rng(7);
  nexa::FullAttention<> attn({.hidden = 4, .heads = 2, .causal = true}, rng);
  auto x = Tensor<float>::randn({2, 3, 4}, rng, 10.0);
  // Sequence 1 is all padding; with causal masking its queries see nothing either.
  const auto mask = Tensor<std::int32_t>::from_host({2, 3}, {0, 1, 1, 0, 0, 0});
  nexa::FullAttention<>::Cache cache;
  auto y = attn.forward(x, mask, cache);
  for (index_t i = 0; i < y.numel(); ++i) REQUIRE(std::isfinite(y.data()[i]));
  for (index_t h = 0; h < 2; ++h)
    for (index_t j = 0; j < 3; ++j) CHECK(cache.saved.probs(1, h, 0, j) == doctest::Approx(1.0 / 3));
  CHECK(cache.saved.probs(0, 0, 0, 1) == doctest::Approx(1.0 / 3));  // query 0 of sequence 0: key 0 is padding
  CHECK(cache.saved.probs(0, 0, 1, 1) == doctest::Approx(1.0));      // query 1 sees key 1 only
  CHECK(cache.saved.probs(0, 0, 1, 0) == 0.0f);
  auto dx = attn.backward(Tensor<float>::full(y.shape(), 1.0f), cache);
  for (index_t i = 0; i < dx.numel(); ++i) REQUIRE(std::isfinite(dx.data()[i]));
}

TEST_CASE("FullAttention reports bad configs and shapes") {
  using nexa::Error;
  nexa::Rng rng(8);
  CHECK_THROWS_WITH_AS(nexa::FullAttention<>({.hidden = 6, .heads = 4}, rng),
                       doctest::Contains("hidden (6) must be a multiple of heads (4)"), Error);
  nexa::FullAttention<> attn({.hidden = 4, .heads = 2}, rng);
  nexa::FullAttention<>::Cache cache;
  const Tensor<std::int32_t> none;
  CHECK_THROWS_WITH_AS((void)attn.forward(Tensor<float>({2, 3, 5}), none, cache),
                       doctest::Contains("input shape expected [batch, seq, 4]"), Error);
  CHECK_THROWS_WITH_AS((void)attn.forward(Tensor<float>({6, 4}), none, cache), doctest::Contains("got [6, 4]"), Error);
  CHECK_THROWS_WITH_AS((void)attn.forward(Tensor<float>({2, 3, 4}), Tensor<std::int32_t>({2, 4}), cache),
                       doctest::Contains("attention mask shape expected [2, 3], got [2, 4]"), Error);
  CHECK_THROWS_WITH_AS(
      (void)attn.forward(Tensor<float>({1, 2, 4}), Tensor<std::int32_t>::from_host({1, 2}, {1, 2}), cache),
      doctest::Contains("mask values must be 0 or 1, got 2"), Error);
  CHECK_THROWS_WITH_AS((void)attn.forward(Tensor<float>({2, 3, 4}), none, cache, Tensor<float>({2, 3, 4})),
                       doctest::Contains("position bias shape expected [2, 5], got [2, 3, 4]"), Error);
  (void)attn.forward(Tensor<float>({2, 3, 4}), none, cache);
  CHECK_THROWS_WITH_AS((void)attn.backward(Tensor<float>({2, 3, 3}), cache),
                       doctest::Contains("dy shape expected [2, 3, 4]"), Error);
  Tensor<float> db({2, 2});
  CHECK_THROWS_WITH_AS((void)attn.backward(Tensor<float>({2, 3, 4}), cache, db),
                       doctest::Contains("d_position_bias shape expected [2, 5]"), Error);
}
