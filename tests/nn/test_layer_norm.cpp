#include "nexa/nn/layer_norm.hpp"

#include <doctest/doctest.h>

#include <cmath>

#include "support/gradcheck.hpp"

using nexa::Tensor;

TEST_CASE("LayerNorm forward against hand-computed values") {
  nexa::Rng rng(21);
  nexa::LayerNorm<double> ln({.dim = 4, .eps = 0.0}, rng);
  CHECK(ln.config().dim == 4);
  // Row [1, 2, 3, 6]: mean 3, deviations [-2, -1, 0, 3], biased variance (4 + 1 + 0 + 9) / 4 = 3.5.
  auto x = Tensor<double>::from_host({1, 4}, {1, 2, 3, 6});
  const double s = std::sqrt(3.5);
  auto y = ln.apply(x);
  CHECK(y(0, 0) == doctest::Approx(-2 / s));
  CHECK(y(0, 1) == doctest::Approx(-1 / s));
  CHECK(y(0, 2) == doctest::Approx(0.0));
  CHECK(y(0, 3) == doctest::Approx(3 / s));
  // weight [1, 2, 0.5, -1], bias [0, 1, 2, 3]; eps 0.5 -> rstd = 1 / sqrt(4).
  nexa::LayerNorm<double> ln2({.dim = 4, .eps = 0.5}, rng);
  ln2.weight.value = Tensor<double>::from_host({4}, {1, 2, 0.5, -1});
  ln2.bias.value = Tensor<double>::from_host({4}, {0, 1, 2, 3});
  nexa::LayerNorm<double>::Cache cache;
  y = ln2.forward(x, cache);
  CHECK(y(0, 0) == doctest::Approx(-2 / 2.0 * 1 + 0));
  CHECK(y(0, 1) == doctest::Approx(-1 / 2.0 * 2 + 1));
  CHECK(y(0, 2) == doctest::Approx(0 / 2.0 * 0.5 + 2));
  CHECK(y(0, 3) == doctest::Approx(3 / 2.0 * -1 + 3));
  CHECK(cache.mean(0) == doctest::Approx(3.0));
  CHECK(cache.rstd(0) == doctest::Approx(0.5));
}

TEST_CASE("LayerNorm is stable for a large offset (two-pass variance) in float") {
  nexa::Rng rng(22);
  nexa::LayerNorm<float> ln({.dim = 2}, rng);
  auto y = ln.apply(Tensor<float>::from_host({1, 2}, {10000.0f, 10002.0f}));
  CHECK(y(0, 0) == doctest::Approx(-1.0).epsilon(1e-4));
  CHECK(y(0, 1) == doctest::Approx(1.0).epsilon(1e-4));
}

TEST_CASE("LayerNorm gradients match central differences (input, weight, bias)") {
  for (double eps : {1e-5, 1e-12}) {
    nexa::Rng rng(23);
    nexa::LayerNorm<double> ln({.dim = 70, .eps = eps}, rng);  // 70 > one 64-column block
    ln.weight.value = Tensor<double>::randn({70}, rng, 1.0, 1.0);
    ln.bias.value = Tensor<double>::randn({70}, rng);
    auto x = Tensor<double>::randn({2, 3, 70}, rng, 2.0, 0.5);
    auto r = Tensor<double>::randn({2, 3, 70}, rng);
    nexa::LayerNorm<double>::Cache cache;
    (void)ln.forward(x, cache);
    auto dx = ln.backward(r, cache);
    auto loss = [&] { return nexa::testing::weighted_sum(ln.apply(x), r); };
    CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
    const auto params = nexa::testing::trainable_params(ln);
    REQUIRE(params.size() == 2);
    CHECK(params[0].first == "weight");
    CHECK(params[1].first == "bias");
    for (const auto& entry : params) {
      INFO(entry.first);  // not a structured binding: clang cannot capture those in INFO's lambda
      nexa::Param<double>* p = entry.second;
      CHECK(nexa::testing::gradient_error(loss, p->value.data(), p->numel(), p->grad.data()) < 1e-6);
    }
  }
}

TEST_CASE("LayerNorm with frozen parameters still returns dx") {
  nexa::Rng rng(24);
  nexa::LayerNorm<double> ln({.dim = 3}, rng);
  ln.weight.set_trainable(false);
  ln.bias.set_trainable(false);
  auto x = Tensor<double>::randn({4, 3}, rng);
  nexa::LayerNorm<double>::Cache cache;
  (void)ln.forward(x, cache);
  auto dx = ln.backward(Tensor<double>::randn({4, 3}, rng), cache);
  CHECK(dx.shape() == nexa::Shape{4, 3});
  CHECK(ln.weight.grad.empty());
  CHECK(ln.bias.grad.empty());
}

TEST_CASE("LayerNorm rejects bad input, dy and configs") {
  nexa::Rng rng(25);
  nexa::LayerNorm<float> ln({.dim = 3}, rng);
  nexa::LayerNorm<float>::Cache cache;
  CHECK_THROWS_WITH_AS((void)ln.forward(Tensor<float>({2, 4}), cache), doctest::Contains("LayerNorm"), nexa::Error);
  (void)ln.forward(Tensor<float>({2, 3}), cache);
  CHECK_THROWS_AS((void)ln.backward(Tensor<float>({3, 3}), cache), nexa::Error);
  CHECK_THROWS_AS(nexa::LayerNorm<float>({.dim = 0}, rng), nexa::Error);
  CHECK_THROWS_AS(nexa::LayerNorm<float>({.dim = 3, .eps = -1.0}, rng), nexa::Error);
}

TEST_CASE("LayerNorm on a large batch (parallel path) matches row-by-row results") {
  nexa::Rng rng(26);
  nexa::LayerNorm<double> ln({.dim = 130}, rng);
  ln.weight.value = Tensor<double>::randn({130}, rng, 1.0, 1.0);
  auto x = Tensor<double>::randn({300, 130}, rng);
  auto dy = Tensor<double>::randn({300, 130}, rng);
  nexa::LayerNorm<double>::Cache cache;
  auto y = ln.forward(x, cache);
  auto dx = ln.backward(dy, cache);
  const auto dw = ln.weight.grad.to_host();
  const auto db = ln.bias.grad.to_host();
  std::vector<double> db_ref(130, 0.0);
  for (nexa::index_t r = 0; r < 300; ++r) {
    nexa::LayerNorm<double>::Cache row_cache;
    auto yr = ln.forward(clone(x.view().slice_rows(r, r + 1)), row_cache);
    auto dxr = ln.backward(dy.view().slice_rows(r, r + 1), row_cache);
    for (nexa::index_t j = 0; j < 130; ++j) {
      REQUIRE(yr(0, j) == y(r, j));
      REQUIRE(dxr(0, j) == dx(r, j));
      db_ref[static_cast<std::size_t>(j)] += dy(r, j);
    }
  }
  CHECK(db == db_ref);  // rows summed in order
  // The row-by-row backwards above accumulated the same gradient a second time.
  for (std::size_t j = 0; j < 130; ++j) CHECK(ln.weight.grad.data()[j] == doctest::Approx(2 * dw[j]));
}
