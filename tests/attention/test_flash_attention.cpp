// FlashAttention: forward against the naive reference in double, forward and every gradient
// against FullAttention in float (dropout included: the same seed drops the same probabilities),
// central-difference gradient checks with padding, causal masking, relative bias and dropout,
// several tile sizes with S not a multiple of them, queries that see no key, linear memory,
// thread-count independence and error messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "models/grad_util.hpp"
#include "nexa/attention/flash_attention.hpp"
#include "nexa/attention/full_attention.hpp"
#include "support/attention_reference.hpp"
#include "support/threads.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {

// Padding patterns by sequence b % 4: all tokens; padded after the first half; all padding (its
// queries see no key); leading padding with a hole in the middle (the first queries see no key
// when causal).
Tensor<std::int32_t> padding_mask(index_t B, index_t S) {
  std::vector<std::int32_t> flags(static_cast<std::size_t>(B * S));
  for (index_t b = 0; b < B; ++b)
    for (index_t j = 0; j < S; ++j) {
      bool token = true;
      if (b % 4 == 1) token = j <= S / 2;
      if (b % 4 == 2) token = false;
      if (b % 4 == 3) token = j >= std::min<index_t>(3, S - 1) && j != S / 2 + 1;
      flags[static_cast<std::size_t>(b * S + j)] = token ? 1 : 0;
    }
  return Tensor<std::int32_t>::from_host({B, S}, flags);
}

struct Case {
  nexa::AttentionConfig config;
  index_t batch = 4, seq = 11;
  bool padding = false;
  bool position_bias = false;
};

template <class T>
double max_abs(const T* a, index_t n) {
  double out = 0;
  for (index_t i = 0; i < n; ++i) out = std::max(out, std::abs(double(a[i])));
  return out;
}

template <class T>
double max_diff(const T* a, const T* b, index_t n) {
  double out = 0;
  for (index_t i = 0; i < n; ++i) out = std::max(out, std::abs(double(a[i]) - double(b[i])));
  return out;
}

// Double: the forward against the naive reference, then central differences for x, every
// projection parameter and the relative bias.
template <class Attn>
void check_against_reference(const Case& c, std::uint64_t seed, bool gradients) {
  nexa::Rng rng(seed);
  Attn attn(c.config, rng);
  const index_t B = c.batch, S = c.seq;
  auto x = Tensor<double>::randn({B, S, c.config.hidden}, rng);
  const Tensor<std::int32_t> mask = c.padding ? padding_mask(B, S) : Tensor<std::int32_t>();
  Tensor<double> bias;
  if (c.position_bias) bias = Tensor<double>::randn({c.config.heads, 2 * S - 1}, rng);
  auto r = Tensor<double>::randn({B, S, attn.inner()}, rng);

  typename Attn::Cache cache;
  attn.rewind(0);
  auto y = attn.forward(x, mask, cache, bias);
  REQUIRE(y.shape() == nexa::Shape{B, S, attn.inner()});
  if (c.config.dropout == 0) {
    const auto ref = nexa::testing::naive_attention(attn, x, nexa::testing::full_visibility(mask, c.config.causal),
                                                    bias, nexa::testing::EmptyRow::uniform);
    CHECK(max_diff(y.data(), ref.data(), y.numel()) < 1e-12);
  }
  if (!gradients) return;
  Tensor<double> dbias({c.config.heads, 2 * S - 1});
  const Tensor<double> dx = c.position_bias ? attn.backward(r, cache, dbias) : attn.backward(r, cache);
  auto loss = [&] {
    typename Attn::Cache again;
    attn.rewind(0);
    return nexa::testing::weighted_sum(attn.forward(x, mask, again, bias), r);
  };
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  if (c.position_bias) CHECK(nexa::testing::gradient_error(loss, bias.data(), bias.numel(), dbias.data()) < 1e-6);
  for (auto& [name, p] : nexa::testing::trainable_params(attn))
    nexa::testing::check_param_gradient(loss, name, p->value.data(), p->grad.data(), p->numel());
}

// Everything one forward + backward produces, for comparisons between policies or thread counts.
struct Run {
  Tensor<float> y, dx, dbias;
  std::vector<std::pair<std::string, Tensor<float>>> grads;
};

template <class Attn>
Run run_float(const Case& c, std::uint64_t seed) {
  nexa::Rng rng(seed);  // the same seed gives every policy the same projections and dropout stream
  Attn attn(c.config, rng);
  const index_t B = c.batch, S = c.seq;
  auto x = Tensor<float>::randn({B, S, c.config.hidden}, rng);
  const Tensor<std::int32_t> mask = c.padding ? padding_mask(B, S) : Tensor<std::int32_t>();
  Tensor<float> bias;
  if (c.position_bias) bias = Tensor<float>::randn({c.config.heads, 2 * S - 1}, rng);
  auto r = Tensor<float>::randn({B, S, attn.inner()}, rng);
  typename Attn::Cache cache;
  attn.rewind(0);
  Run run;
  run.y = attn.forward(x, mask, cache, bias);
  run.dbias = Tensor<float>({c.config.heads, 2 * S - 1});
  run.dx = c.position_bias ? attn.backward(r, cache, run.dbias) : attn.backward(r, cache);
  attn.visit_params(
      [&](const std::string& name, nexa::Param<float>& p) { run.grads.emplace_back(name, clone(p.grad.cview())); });
  return run;
}

// |a - b| <= tol * max(1, max |b|): gradients summed over many tokens are larger than 1.
void check_close(const Tensor<float>& a, const Tensor<float>& b, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(a.shape() == b.shape());
  CHECK(max_diff(a.data(), b.data(), a.numel()) <= tol * std::max(1.0, max_abs(b.data(), b.numel())));
}

void check_runs_close(const Run& flash, const Run& full, double tol) {
  check_close(flash.y, full.y, tol, "output");
  check_close(flash.dx, full.dx, tol, "dx");
  check_close(flash.dbias, full.dbias, tol, "d_relative_bias");
  REQUIRE(flash.grads.size() == full.grads.size());
  for (std::size_t i = 0; i < flash.grads.size(); ++i) {
    CHECK(flash.grads[i].first == full.grads[i].first);
    check_close(flash.grads[i].second, full.grads[i].second, tol, flash.grads[i].first);
  }
}

template <class Flash>
void check_against_full(const Case& c, std::uint64_t seed) {
  check_runs_close(run_float<Flash>(c, seed), run_float<nexa::FullAttention<float>>(c, seed), 1e-5);
}

bool bitwise_equal(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() && std::equal(a.data(), a.data() + a.numel(), b.data());
}

}  // namespace

TEST_CASE_TEMPLATE("FlashAttention matches the naive reference in double", Attn, nexa::FlashAttention<4, 4, double>,
                   nexa::FlashAttention<8, 16, double>, nexa::FlashAttention<64, 64, double>) {
  for (const index_t S : {5, 11, 37}) {
    CAPTURE(S);
    check_against_reference<Attn>({.config = {.hidden = 6, .heads = 2}, .seq = S}, 1, false);
    check_against_reference<Attn>({.config = {.hidden = 6, .heads = 2}, .seq = S, .padding = true}, 2, false);
    check_against_reference<Attn>({.config = {.hidden = 6, .heads = 3, .causal = true}, .seq = S}, 3, false);
    check_against_reference<Attn>(
        {.config = {.hidden = 8, .heads = 2, .causal = true}, .seq = S, .padding = true, .position_bias = true}, 4,
        false);
    check_against_reference<Attn>({.config = {.hidden = 6, .heads = 2, .head_dim = 4, .bias = false, .scale = false},
                                   .seq = S,
                                   .position_bias = true},
                                  5, false);
  }
}

TEST_CASE_TEMPLATE("FlashAttention gradients check in double (padding, causal, relative bias, dropout)", Attn,
                   nexa::FlashAttention<4, 4, double>, nexa::FlashAttention<8, 16, double>) {
  SUBCASE("padding + causal + position bias + dropout") {
    check_against_reference<Attn>({.config = {.hidden = 8, .heads = 2, .dropout = 0.3, .causal = true},
                                   .seq = 11,
                                   .padding = true,
                                   .position_bias = true},
                                  6, true);
  }
  SUBCASE("padding + position bias, not causal, no dropout") {
    check_against_reference<Attn>(
        {.config = {.hidden = 6, .heads = 2}, .seq = 9, .padding = true, .position_bias = true}, 7, true);
  }
}

TEST_CASE_TEMPLATE("FlashAttention equals FullAttention in float: output, dx, every gradient", Flash,
                   nexa::FlashAttention<4, 4, float>, nexa::FlashAttention<8, 16, float>,
                   nexa::FlashAttention<64, 64, float>) {
  for (const index_t S : {7, 37, 100}) {
    CAPTURE(S);
    check_against_full<Flash>({.config = {.hidden = 16, .heads = 2}, .seq = S}, 11);
    // Padding, including an all-padding sequence.
    check_against_full<Flash>({.config = {.hidden = 16, .heads = 2}, .seq = S, .padding = true}, 12);
    check_against_full<Flash>(
        {.config = {.hidden = 16, .heads = 4, .causal = true}, .seq = S, .padding = true, .position_bias = true}, 13);
    // Dropout 0.3: the same seed drops the same probabilities.
    check_against_full<Flash>({.config = {.hidden = 16, .heads = 2, .dropout = 0.3, .causal = true},
                               .seq = S,
                               .padding = true,
                               .position_bias = true},
                              14);
    check_against_full<Flash>({.config = {.hidden = 16, .heads = 2, .dropout = 0.3}, .seq = S, .padding = true}, 15);
  }
}

TEST_CASE("FlashAttention: a query that sees no key gets the mean of V; logsumexp marks it") {
  nexa::Rng rng(21);
  nexa::FlashAttention<4, 4> attn({.hidden = 4, .heads = 2, .causal = true}, rng);
  auto x = Tensor<float>::randn({2, 6, 4}, rng, 10.0);
  // Sequence 1 is all padding; in sequence 0 queries 0 and 1 see only padding (causal).
  const auto mask = Tensor<std::int32_t>::from_host({2, 6}, {0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0});
  nexa::FlashAttention<4, 4>::Cache cache;
  auto y = attn.forward(x, mask, cache);
  const auto v = attn.value.apply(x.cview());
  for (index_t b = 0; b < 2; ++b)
    for (index_t i = 0; i < 6; ++i) {
      const bool blind = b == 1 || i < 2;
      CHECK(std::isinf(cache.saved.logsumexp(b, 0, i)) == blind);
      if (!blind) continue;
      for (index_t c = 0; c < 4; ++c) {
        float mean = 0;
        for (index_t j = 0; j < 6; ++j) mean += v(b, j, c) / 6;
        CHECK(y(b, i, c) == doctest::Approx(mean).epsilon(1e-5));
      }
    }
  auto dx = attn.backward(Tensor<float>::full(y.shape(), 1.0f), cache);
  for (index_t i = 0; i < dx.numel(); ++i) REQUIRE(std::isfinite(dx.data()[i]));
}

TEST_CASE("FlashAttention ignores global-token flags, as FullAttention does") {
  nexa::Rng rng(25);
  nexa::FlashAttention<8, 8> attn({.hidden = 8, .heads = 2}, rng);
  const auto x = Tensor<float>::randn({1, 20, 8}, rng);
  std::vector<std::int32_t> flags(20, 0);
  flags[0] = flags[7] = 1;
  const auto global = Tensor<std::int32_t>::from_host({1, 20}, flags);
  CHECK(bitwise_equal(attn.apply(x, {}, {}, global), attn.apply(x)));
}

TEST_CASE("FlashAttention keeps O(S) state: Saved doubles when S doubles") {
  nexa::Rng rng(22);
  nexa::FlashAttention<> attn({.hidden = 16, .heads = 2, .causal = true}, rng);
  auto saved_numel = [&](index_t S) {
    nexa::FlashAttention<>::Cache cache;
    (void)attn.forward(Tensor<float>::randn({1, S, 16}, rng), Tensor<std::int32_t>(), cache);
    return cache.saved.output.numel() + cache.saved.logsumexp.numel();
  };
  const index_t at512 = saved_numel(512), at1024 = saved_numel(1024);
  CHECK(at512 == 512 * 16 + 2 * 512);
  CHECK(at1024 == 2 * at512);
}

TEST_CASE("FlashAttention results do not depend on the thread count") {
  const Case c{.config = {.hidden = 16, .heads = 2, .dropout = 0.3, .causal = true},
               .batch = 3,
               .seq = 150,
               .padding = true,
               .position_bias = true};
  nexa::testing::set_threads(1);
  const Run one = run_float<nexa::FlashAttention<32, 16>>(c, 23);
  nexa::testing::set_threads(2);
  const Run two = run_float<nexa::FlashAttention<32, 16>>(c, 23);
  CHECK(bitwise_equal(one.y, two.y));
  CHECK(bitwise_equal(one.dx, two.dx));
  CHECK(bitwise_equal(one.dbias, two.dbias));
  for (std::size_t i = 0; i < one.grads.size(); ++i) CHECK(bitwise_equal(one.grads[i].second, two.grads[i].second));
}

TEST_CASE("FlashAttention reports bad configs, shapes and a missing forward") {
  using nexa::Error;
  nexa::Rng rng(24);
  CHECK_THROWS_WITH_AS(nexa::FlashAttention<>({.hidden = 6, .heads = 4}, rng),
                       doctest::Contains("FlashAttention: hidden (6) must be a multiple of heads (4)"), Error);
  nexa::FlashAttention<> attn({.hidden = 4, .heads = 2}, rng);
  nexa::FlashAttention<>::Cache cache;
  const Tensor<std::int32_t> none;
  CHECK_THROWS_WITH_AS((void)attn.forward(Tensor<float>({2, 3, 5}), none, cache),
                       doctest::Contains("FlashAttention: input shape expected [batch, seq, 4]"), Error);
  CHECK_THROWS_WITH_AS((void)attn.forward(Tensor<float>({2, 3, 4}), Tensor<std::int32_t>({2, 4}), cache),
                       doctest::Contains("attention mask shape expected [2, 3], got [2, 4]"), Error);
  CHECK_THROWS_WITH_AS((void)attn.forward(Tensor<float>({2, 3, 4}), none, cache, Tensor<float>({2, 4})),
                       doctest::Contains("position bias shape expected [2, 5], got [2, 4]"), Error);
  CHECK_THROWS_WITH_AS((void)attn.backward(Tensor<float>({2, 3, 4}), cache),
                       doctest::Contains("FlashAttention: backward needs a forward's cache"), Error);
  (void)attn.forward(Tensor<float>({2, 3, 4}), none, cache);
  CHECK_THROWS_WITH_AS((void)attn.backward(Tensor<float>({2, 3, 3}), cache),
                       doctest::Contains("dy shape expected [2, 3, 4]"), Error);

  // The policy itself refuses a Saved state that is not its forward's on this problem.
  nexa::AttentionProblem<float, nexa::cpu> problem;
  problem.batch = 1, problem.heads = 2, problem.seq = 3, problem.head_dim = 2;
  const std::vector<float> zeros(12, 0.0f);
  problem.q = problem.k = problem.v = zeros.data();
  std::vector<float> dq(12), dk(12), dv(12);
  const nexa::FlashScores<>::Saved<float, nexa::cpu> empty;
  CHECK_THROWS_WITH_AS(
      nexa::FlashScores<>::backward(problem, empty, zeros.data(), {dq.data(), dk.data(), dv.data(), nullptr}),
      doctest::Contains("FlashAttention: backward needs the saved state of a forward on this problem: output [1, 2, "
                        "3, 2] and logsumexp [1, 2, 3], got [0] and [0]"),
      Error);
}
