// LocalGlobalAttention: forward against the naive reference with Longformer's visibility
// (windows 0, odd and even, global tokens at the start, the middle and across the 64-query
// blocks, padding, relative bias, causal), central-difference gradient checks (x, every
// parameter, the relative bias) with padding + global tokens + dropout, equality with
// FullAttention when the window covers the sequence (dropout included), thread-count
// independence, memory linear in S, and error messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "models/grad_util.hpp"
#include "nexa/attention/full_attention.hpp"
#include "nexa/attention/local_global_attention.hpp"
#include "support/attention_reference.hpp"
#include "support/threads.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {

// Sequence b has tokens[b] tokens then padding (empty: no padding) and global tokens at
// globals[b] (empty: none).
struct Layout {
  index_t batch = 2, seq = 70;
  std::vector<index_t> tokens = {};
  std::vector<std::vector<index_t>> globals = {};
};

Tensor<std::int32_t> padding_mask(const Layout& l) {
  if (l.tokens.empty()) return {};
  Tensor<std::int32_t> mask({l.batch, l.seq});
  for (index_t b = 0; b < l.batch; ++b)
    for (index_t s = 0; s < l.tokens[std::size_t(b)]; ++s) mask(b, s) = 1;
  return mask;
}

Tensor<std::int32_t> global_mask(const Layout& l) {
  if (l.globals.empty()) return {};
  Tensor<std::int32_t> mask({l.batch, l.seq});
  for (index_t b = 0; b < l.batch; ++b)
    for (index_t s : l.globals[std::size_t(b)]) mask(b, s) = 1;
  return mask;
}

bool is_padding(const Tensor<std::int32_t>& mask, index_t b, index_t s) { return !mask.empty() && mask(b, s) == 0; }

template <class T>
double max_abs(const Tensor<T>& t) {
  double m = 0;
  for (index_t i = 0; i < t.numel(); ++i) m = std::max(m, double(std::abs(t.data()[i])));
  return m;
}

template <class T>
double max_abs_diff(const T* a, const T* b, index_t n) {
  double m = 0;
  for (index_t i = 0; i < n; ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

struct Case {
  nexa::AttentionConfig config;
  Layout layout;
  bool position_bias = false;
  bool gradients = true;  // also run the central-difference checks
};

template <index_t Window>
void check_local_global(const Case& c, std::uint64_t seed) {
  using Attn = nexa::LocalGlobalAttention<Window, double>;
  nexa::Rng rng(seed);
  Attn attn(c.config, rng);
  const index_t B = c.layout.batch, S = c.layout.seq, hid = c.config.hidden;
  auto x = Tensor<double>::randn({B, S, hid}, rng);
  const auto mask = padding_mask(c.layout);
  const auto global = global_mask(c.layout);
  Tensor<double> bias;
  if (c.position_bias) bias = Tensor<double>::randn({c.config.heads, 2 * S - 1}, rng);
  auto r = Tensor<double>::randn({B, S, attn.inner()}, rng);

  typename Attn::Cache cache;
  attn.rewind(0);
  auto y = attn.forward(x, mask, cache, bias, global);
  REQUIRE(y.shape() == nexa::Shape{B, S, attn.inner()});
  if (c.config.dropout == 0) {
    const auto ref = nexa::testing::naive_attention(
        attn, x, nexa::testing::local_global_visibility(mask, global, Window, c.config.causal), bias,
        nexa::testing::EmptyRow::zero);
    CHECK(max_abs_diff(y.data(), ref.data(), y.numel()) < 1e-12);
  }
  for (index_t b = 0; b < B; ++b)
    for (index_t s = 0; s < S; ++s)
      if (is_padding(mask, b, s))
        for (index_t e = 0; e < attn.inner(); ++e) REQUIRE(y(b, s, e) == 0.0);
  if (!c.gradients) return;

  Tensor<double> dbias;
  Tensor<double> dx;
  if (c.position_bias) {
    dbias = Tensor<double>({c.config.heads, 2 * S - 1});
    dx = attn.backward(r, cache, dbias);
  } else {
    dx = attn.backward(r, cache);
  }
  for (index_t b = 0; b < B; ++b)  // padding passes no gradient
    for (index_t s = 0; s < S; ++s)
      if (is_padding(mask, b, s))
        for (index_t e = 0; e < hid; ++e) REQUIRE(dx(b, s, e) == 0.0);
  auto loss = [&] {
    typename Attn::Cache cc;
    attn.rewind(0);
    return nexa::testing::weighted_sum(attn.forward(x, mask, cc, bias, global), r);
  };
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  if (c.position_bias) CHECK(nexa::testing::gradient_error(loss, bias.data(), bias.numel(), dbias.data()) < 1e-6);
  for (auto& [name, p] : nexa::testing::trainable_params(attn))
    nexa::testing::check_param_gradient(loss, name, p->value.data(), p->grad.data(), p->numel());
}

// Two sequences of 70 (two 64-query blocks): the second padded after 50 tokens; global tokens at
// the start and in the middle, and one past the first block; a global mark on padding is ignored.
const Layout padded_with_globals{.batch = 2, .seq = 70, .tokens = {70, 50}, .globals = {{0, 33, 66}, {0, 20, 60}}};

}  // namespace

TEST_CASE("LocalGlobalAttention matches the naive reference (forward only)") {
  const Layout plain{.batch = 2, .seq = 70};
  SUBCASE("window 0: each token sees itself") {
    check_local_global<0>({.config = {.hidden = 6, .heads = 2}, .layout = plain, .gradients = false}, 11);
  }
  SUBCASE("window 1 (odd, half-width 0), padding and global tokens") {
    check_local_global<1>({.config = {.hidden = 6, .heads = 2}, .layout = padded_with_globals, .gradients = false}, 12);
  }
  SUBCASE("window 2, padding, global tokens, relative bias") {
    check_local_global<2>(
        {.config = {.hidden = 6, .heads = 2}, .layout = padded_with_globals, .position_bias = true, .gradients = false},
        13);
  }
  SUBCASE("window 7, causal, padding, global tokens, relative bias") {
    check_local_global<7>({.config = {.hidden = 8, .heads = 2, .causal = true},
                           .layout = padded_with_globals,
                           .position_bias = true,
                           .gradients = false},
                          14);
  }
  SUBCASE("window 16, unscaled, no projection bias, head_dim != hidden / heads, more than one block of globals") {
    Layout many{.batch = 2, .seq = 150, .tokens = {150, 131}, .globals = {{}, {}}};
    for (index_t s = 3; s < 150; s += 7) many.globals[0].push_back(s);
    many.globals[1] = {1, 64, 65, 128, 140};  // 140 is padding
    check_local_global<16>({.config = {.hidden = 6, .heads = 2, .head_dim = 4, .bias = false, .scale = false},
                            .layout = many,
                            .position_bias = true,
                            .gradients = false},
                           15);
  }
  SUBCASE("window 64 with a block boundary inside every window, no globals") {
    check_local_global<64>({.config = {.hidden = 6, .heads = 3},
                            .layout = {.batch = 1, .seq = 200, .tokens = {190}},
                            .position_bias = true,
                            .gradients = false},
                           16);
  }
  SUBCASE("window wider than the sequence, causal") {
    check_local_global<500>({.config = {.hidden = 6, .heads = 2, .causal = true},
                             .layout = padded_with_globals,
                             .position_bias = true,
                             .gradients = false},
                            17);
  }
  SUBCASE("an all-padding sequence gives zeros") {
    check_local_global<4>({.config = {.hidden = 6, .heads = 2},
                           .layout = {.batch = 2, .seq = 5, .tokens = {5, 0}, .globals = {{2}, {0}}},
                           .gradients = false},
                          18);
  }
}

TEST_CASE("LocalGlobalAttention gradients check (x, parameters, relative bias)") {
  SUBCASE("window 4, padding, global tokens, relative bias") {
    check_local_global<4>({.config = {.hidden = 6, .heads = 2}, .layout = padded_with_globals, .position_bias = true},
                          21);
  }
  SUBCASE("window 5, padding, global tokens, relative bias, attention dropout (replayed with rewind)") {
    check_local_global<5>(
        {.config = {.hidden = 6, .heads = 2, .dropout = 0.3}, .layout = padded_with_globals, .position_bias = true},
        22);
  }
  SUBCASE("window 6, causal, padding, global tokens, relative bias, dropout") {
    check_local_global<6>({.config = {.hidden = 6, .heads = 2, .dropout = 0.3, .causal = true},
                           .layout = padded_with_globals,
                           .position_bias = true},
                          23);
  }
  SUBCASE("window 0, unscaled, no projection bias, T5 style head_dim") {
    check_local_global<0>({.config = {.hidden = 4, .heads = 2, .head_dim = 3, .bias = false, .scale = false},
                           .layout = {.batch = 2, .seq = 9, .tokens = {9, 6}, .globals = {{4}, {0, 5}}},
                           .position_bias = true},
                          24);
  }
}

namespace {

// LocalGlobalAttention with a window >= 2S against FullAttention from the same seed, in float:
// output on non-padding rows, dx, parameter gradients and d(position bias).
template <index_t Window>
void check_equals_full(const Layout& layout, double dropout, std::uint64_t seed) {
  const nexa::AttentionConfig config{.hidden = 16, .heads = 4, .dropout = dropout};
  nexa::Rng rng_local(seed), rng_full(seed);
  nexa::LocalGlobalAttention<Window> local(config, rng_local);
  nexa::FullAttention<> full(config, rng_full);
  const index_t B = layout.batch, S = layout.seq;
  REQUIRE(Window >= 2 * S);
  nexa::Rng data(seed + 1);
  const auto x = Tensor<float>::randn({B, S, config.hidden}, data);
  const auto bias = Tensor<float>::randn({config.heads, 2 * S - 1}, data);
  auto dy = Tensor<float>::randn({B, S, local.inner()}, data);
  const auto mask = padding_mask(layout);
  const auto global = global_mask(layout);
  for (index_t b = 0; b < B; ++b)  // full attention's padding rows are not 0: give them no gradient
    for (index_t s = 0; s < S; ++s)
      if (is_padding(mask, b, s))
        for (index_t e = 0; e < local.inner(); ++e) dy(b, s, e) = 0.0f;

  typename nexa::LocalGlobalAttention<Window>::Cache local_cache;
  nexa::FullAttention<>::Cache full_cache;
  local.rewind(0);
  full.rewind(0);
  const auto y_local = local.forward(x, mask, local_cache, bias, global);
  const auto y_full = full.forward(x, mask, full_cache, bias, global);
  const double tol = 1e-5 * std::max(1.0, max_abs(y_full));
  double err = 0;
  for (index_t b = 0; b < B; ++b)
    for (index_t s = 0; s < S; ++s)
      for (index_t e = 0; e < local.inner(); ++e) {
        if (is_padding(mask, b, s))
          REQUIRE(y_local(b, s, e) == 0.0f);
        else
          err = std::max(err, double(std::abs(y_local(b, s, e) - y_full(b, s, e))));
      }
  CHECK(err < tol);

  Tensor<float> db_local({config.heads, 2 * S - 1}), db_full({config.heads, 2 * S - 1});
  const auto dx_local = local.backward(dy, local_cache, db_local);
  const auto dx_full = full.backward(dy, full_cache, db_full);
  CHECK(max_abs_diff(dx_local.data(), dx_full.data(), dx_local.numel()) < 1e-5 * std::max(1.0, max_abs(dx_full)));
  CHECK(max_abs_diff(db_local.data(), db_full.data(), db_local.numel()) < 1e-5 * std::max(1.0, max_abs(db_full)));
  std::vector<const nexa::Param<float>*> local_params, full_params;
  local.visit_params([&](const std::string&, nexa::Param<float>& p) { local_params.push_back(&p); });
  full.visit_params([&](const std::string&, nexa::Param<float>& p) { full_params.push_back(&p); });
  REQUIRE(local_params.size() == full_params.size());
  for (std::size_t i = 0; i < local_params.size(); ++i) {
    const auto& gl = local_params[i]->grad;
    const auto& gf = full_params[i]->grad;
    CHECK(max_abs_diff(gl.data(), gf.data(), gl.numel()) < 1e-5 * std::max(1.0, max_abs(gf)));
  }
}

}  // namespace

TEST_CASE("LocalGlobalAttention with a window >= 2S equals FullAttention from the same seed") {
  SUBCASE("dropout 0.3 in training mode, no padding") { check_equals_full<256>({.batch = 2, .seq = 100}, 0.3, 31); }
  SUBCASE("padding, no dropout") { check_equals_full<256>({.batch = 3, .seq = 70, .tokens = {70, 40, 1}}, 0.0, 32); }
  SUBCASE("padding, global tokens and dropout") {
    check_equals_full<256>({.batch = 2, .seq = 90, .tokens = {90, 77}, .globals = {{0, 45}, {3, 80}}}, 0.3, 33);
  }
}

namespace {

struct Run {
  std::vector<float> y, dx, dbias, grads;
};

Run run_with_threads(int threads) {
  nexa::testing::set_threads(threads);
  nexa::Rng rng(41);
  nexa::LocalGlobalAttention<32> attn({.hidden = 32, .heads = 4, .dropout = 0.1}, rng);
  const Layout layout{.batch = 2, .seq = 300, .tokens = {300, 217}, .globals = {{0, 150}, {0, 1, 199}}};
  const auto x = Tensor<float>::randn({layout.batch, layout.seq, 32}, rng);
  const auto bias = Tensor<float>::randn({4, 2 * layout.seq - 1}, rng);
  const auto dy = Tensor<float>::randn({layout.batch, layout.seq, 32}, rng);
  nexa::LocalGlobalAttention<32>::Cache cache;
  Run run;
  run.y = attn.forward(x, padding_mask(layout), cache, bias, global_mask(layout)).to_host();
  Tensor<float> dbias({4, 2 * layout.seq - 1});
  run.dx = attn.backward(dy, cache, dbias).to_host();
  run.dbias = dbias.to_host();
  attn.visit_params([&](const std::string&, nexa::Param<float>& p) {
    const auto g = p.grad.to_host();
    run.grads.insert(run.grads.end(), g.begin(), g.end());
  });
  return run;
}

}  // namespace

TEST_CASE("LocalGlobalAttention is bitwise identical with 1 and 2 threads") {
  const Run one = run_with_threads(1);
  const Run two = run_with_threads(2);
  CHECK(one.y == two.y);
  CHECK(one.dx == two.dx);
  CHECK(one.dbias == two.dbias);
  CHECK(one.grads == two.grads);
}

TEST_CASE("LocalGlobalAttention keeps O(S * (window + globals)), not S^2") {
  auto saved_numel = [](index_t S) {
    nexa::Rng rng(51);
    nexa::LocalGlobalAttention<64> attn({.hidden = 8, .heads = 2}, rng);
    Tensor<std::int32_t> global({1, S});
    global(0, 0) = global(0, S / 2) = 1;
    nexa::LocalGlobalAttention<64>::Cache cache;
    (void)attn.forward(Tensor<float>::randn({1, S, 8}, rng), {}, cache, {}, global);
    const auto& saved = cache.saved;
    CHECK(saved.band.shape() == nexa::Shape{1, 2, S, 65});
    CHECK(saved.global_columns.shape() == nexa::Shape{1, 2, S, 2});
    CHECK(saved.global_rows.shape() == nexa::Shape{1, 2, 2, S});
    return double(saved.band.numel() + saved.global_columns.numel() + saved.global_rows.numel());
  };
  const double small = saved_numel(512), large = saved_numel(1024);
  CHECK(large / small == doctest::Approx(2.0).epsilon(0.01));
  CHECK(large < 2.0 * 1024 * 1024 / 10);  // a tenth of the [heads, S, S] full attention keeps
}

TEST_CASE("LocalGlobalAttention reports bad input") {
  using nexa::Error;
  nexa::Rng rng(61);
  nexa::LocalGlobalAttention<4> attn({.hidden = 4, .heads = 2}, rng);
  nexa::LocalGlobalAttention<4>::Cache cache;
  const Tensor<std::int32_t> none;
  const Tensor<float> no_bias;
  CHECK_THROWS_WITH_AS((void)attn.forward(Tensor<float>({2, 3, 5}), none, cache),
                       doctest::Contains("LocalGlobalAttention: input shape expected [batch, seq, 4]"), Error);
  CHECK_THROWS_WITH_AS((void)attn.forward(Tensor<float>({2, 3, 4}), none, cache, no_bias, Tensor<std::int32_t>({2, 4})),
                       doctest::Contains("LocalGlobalAttention: global mask shape expected [2, 3], got [2, 4]"), Error);
  CHECK_THROWS_WITH_AS((void)attn.forward(Tensor<float>({1, 2, 4}), none, cache, no_bias,
                                          Tensor<std::int32_t>::from_host({1, 2}, {0, 3})),
                       doctest::Contains("LocalGlobalAttention: global mask values must be 0 or 1, got 3"), Error);
  CHECK_THROWS_WITH_AS((void)attn.forward(Tensor<float>({2, 3, 4}), Tensor<std::int32_t>({3, 2}), cache),
                       doctest::Contains("LocalGlobalAttention: attention mask shape expected [2, 3], got [3, 2]"),
                       Error);
  CHECK_THROWS_WITH_AS((void)attn.forward(Tensor<float>({2, 3, 4}), none, cache, Tensor<float>({2, 6})),
                       doctest::Contains("LocalGlobalAttention: position bias shape expected [2, 5], got [2, 6]"),
                       Error);
  CHECK_THROWS_WITH_AS((void)attn.backward(Tensor<float>({2, 3, 4}), cache),
                       doctest::Contains("LocalGlobalAttention: backward needs a forward's cache"), Error);
  (void)attn.forward(Tensor<float>({2, 3, 4}), none, cache);
  CHECK_THROWS_WITH_AS((void)attn.backward(Tensor<float>({2, 3, 3}), cache),
                       doctest::Contains("LocalGlobalAttention: dy shape expected [2, 3, 4], got [2, 3, 3]"), Error);

  // The policy itself refuses probabilities that are not its forward's.
  const Tensor<float> q({1, 1, 3, 2});
  nexa::AttentionProblem<float, nexa::cpu> problem;
  problem.batch = 1;
  problem.heads = 1;
  problem.seq = 3;
  problem.head_dim = 2;
  problem.q = problem.k = problem.v = q.data();
  const nexa::LocalGlobalScores<4>::Saved<float, nexa::cpu> empty;
  Tensor<float> dq({1, 1, 3, 2}), dk({1, 1, 3, 2}), dv({1, 1, 3, 2});
  CHECK_THROWS_WITH_AS(
      nexa::LocalGlobalScores<4>::backward(problem, empty, q.data(), {dq.data(), dk.data(), dv.data()}),
      doctest::Contains("LocalGlobalAttention: saved window probabilities (from this forward) shape "
                        "expected [1, 1, 3, 5], got [0]"),
      Error);
}
