#include "nexa/nn/rms_norm.hpp"

#include <doctest/doctest.h>

#include <cmath>

#include "support/gradcheck.hpp"

using nexa::Tensor;

TEST_CASE("RMSNorm (T5LayerNorm) forward against hand-computed values") {
  nexa::Rng rng(31);
  nexa::RMSNorm<double> rms({.dim = 4}, rng);
  CHECK(rms.config().eps == 1e-6);
  CHECK(rms.weight.value.to_host() == std::vector<double>{1, 1, 1, 1});
  // Row [1, 2, 3, 6]: mean square (1 + 4 + 9 + 36) / 4 = 12.5, no mean subtraction.
  // With eps 1.5: rsqrt(14) ; weight [1, 2, 0.5, -1].
  nexa::RMSNorm<double> rms2({.dim = 4, .eps = 1.5}, rng);
  rms2.weight.value = Tensor<double>::from_host({4}, {1, 2, 0.5, -1});
  auto x = Tensor<double>::from_host({1, 4}, {1, 2, 3, 6});
  nexa::RMSNorm<double>::Cache cache;
  auto y = rms2.forward(x, cache);
  const double s = std::sqrt(14.0);
  CHECK(y(0, 0) == doctest::Approx(1 / s));
  CHECK(y(0, 1) == doctest::Approx(2 * 2 / s));
  CHECK(y(0, 2) == doctest::Approx(0.5 * 3 / s));
  CHECK(y(0, 3) == doctest::Approx(-1 * 6 / s));
  CHECK(cache.rstd(0) == doctest::Approx(1 / s));
  // Default eps 1e-6 on the same row: x / sqrt(12.5 + 1e-6).
  CHECK(rms.apply(x)(0, 3) == doctest::Approx(6 / std::sqrt(12.5 + 1e-6)));
}

TEST_CASE("RMSNorm gradients match central differences (input, weight)") {
  nexa::Rng rng(32);
  nexa::RMSNorm<double> rms({.dim = 70}, rng);
  rms.weight.value = Tensor<double>::randn({70}, rng, 1.0, 1.0);
  auto x = Tensor<double>::randn({3, 2, 70}, rng, 1.5, 0.3);
  auto r = Tensor<double>::randn({3, 2, 70}, rng);
  nexa::RMSNorm<double>::Cache cache;
  (void)rms.forward(x, cache);
  auto dx = rms.backward(r, cache);
  auto loss = [&] { return nexa::testing::weighted_sum(rms.apply(x), r); };
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  const auto params = nexa::testing::trainable_params(rms);
  REQUIRE(params.size() == 1);
  CHECK(params[0].first == "weight");
  CHECK(nexa::testing::gradient_error(loss, rms.weight.value.data(), 70, rms.weight.grad.data()) < 1e-6);
}

TEST_CASE("RMSNorm in float on a large batch matches a double reference") {
  nexa::Rng rng(33);
  nexa::RMSNorm<float> rms({.dim = 256}, rng);
  nexa::RMSNorm<double> ref({.dim = 256}, rng);
  auto x = Tensor<float>::randn({128, 256}, rng, 3.0);
  std::vector<double> xd(x.data(), x.data() + x.numel());
  auto y = rms.apply(x);
  auto yd = ref.apply(Tensor<double>::from_host({128, 256}, xd));
  for (nexa::index_t i = 0; i < y.numel(); ++i) REQUIRE(y.data()[i] == doctest::Approx(yd.data()[i]).epsilon(1e-5));
}

TEST_CASE("RMSNorm rejects bad input and dy; frozen weight gets no gradient") {
  nexa::Rng rng(34);
  nexa::RMSNorm<float> rms({.dim = 3}, rng);
  nexa::RMSNorm<float>::Cache cache;
  CHECK_THROWS_WITH_AS((void)rms.forward(Tensor<float>({2, 4}), cache), doctest::Contains("RMSNorm"), nexa::Error);
  (void)rms.forward(Tensor<float>::full({2, 3}, 1.0f), cache);
  CHECK_THROWS_AS((void)rms.backward(Tensor<float>({2, 2}), cache), nexa::Error);
  rms.weight.set_trainable(false);
  CHECK(rms.backward(Tensor<float>::full({2, 3}, 1.0f), cache).shape() == nexa::Shape{2, 3});
  CHECK(rms.weight.grad.empty());
  CHECK_THROWS_AS(nexa::RMSNorm<float>({.dim = -1}, rng), nexa::Error);
}

TEST_CASE("RMSNorm on a large batch (parallel path) matches row-by-row results") {
  nexa::Rng rng(35);
  nexa::RMSNorm<double> rms({.dim = 130}, rng);
  rms.weight.value = Tensor<double>::randn({130}, rng, 1.0, 1.0);
  auto x = Tensor<double>::randn({300, 130}, rng);
  auto dy = Tensor<double>::randn({300, 130}, rng);
  nexa::RMSNorm<double>::Cache cache;
  auto y = rms.forward(x, cache);
  auto dx = rms.backward(dy, cache);
  const auto dw = rms.weight.grad.to_host();
  for (nexa::index_t r = 0; r < 300; ++r) {
    nexa::RMSNorm<double>::Cache row_cache;
    auto yr = rms.forward(clone(x.view().slice_rows(r, r + 1)), row_cache);
    auto dxr = rms.backward(dy.view().slice_rows(r, r + 1), row_cache);
    for (nexa::index_t j = 0; j < 130; ++j) {
      REQUIRE(yr(0, j) == y(r, j));
      REQUIRE(dxr(0, j) == dx(r, j));
    }
  }
  for (std::size_t j = 0; j < 130; ++j) CHECK(rms.weight.grad.data()[j] == doctest::Approx(2 * dw[j]));
}
