#include "nexa/train/loss.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

#include "support/gradcheck.hpp"

using nexa::Tensor;
using Targets = Tensor<std::int32_t>;

TEST_CASE("cross_entropy against hand-computed values") {
  // Row 0: logits log[1, 2, 5] -> softmax [1/8, 2/8, 5/8]; target 2, loss -log(5/8) = log(8/5).
  // Row 1: logits log[3, 3, 2] -> softmax [3/8, 3/8, 2/8]; target 0, loss log(8/3).
  // Mean over 2 rows; dlogits = (softmax - onehot) / 2.
  for (double offset : {0.0, 1000.0}) {  // a large shift changes nothing (log-softmax is shift invariant)
    INFO(offset);
    auto logits =
        Tensor<double>::from_host({2, 3}, {std::log(1.0) + offset, std::log(2.0) + offset, std::log(5.0) + offset,
                                           std::log(3.0) + offset, std::log(3.0) + offset, std::log(2.0) + offset});
    auto [loss, dlogits] = nexa::train::cross_entropy(logits, Targets::from_host({2}, {2, 0}));
    CHECK(loss == doctest::Approx((std::log(8.0 / 5) + std::log(8.0 / 3)) / 2));
    const double expect[2][3] = {{1.0 / 16, 2.0 / 16, (5.0 / 8 - 1) / 2}, {(3.0 / 8 - 1) / 2, 3.0 / 16, 2.0 / 16}};
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) CHECK(dlogits(i, j) == doctest::Approx(expect[i][j]));
  }
}

TEST_CASE("cross_entropy stays finite for huge float logits") {
  auto logits = Tensor<float>::from_host({1, 3}, {1e4f, -1e4f, 1e4f - 1.0f});
  auto [loss, dlogits] = nexa::train::cross_entropy(logits, Targets::from_host({1}, {1}));
  CHECK(std::isfinite(loss));
  CHECK(loss == doctest::Approx(2e4).epsilon(1e-4));
  for (float g : dlogits.to_host()) CHECK(std::isfinite(g));
}

TEST_CASE("cross_entropy gradient matches central differences, with an ignored row") {
  nexa::Rng rng(51);
  auto logits = Tensor<double>::randn({4, 5}, rng, 2.0);
  auto targets = Targets::from_host({4}, {1, -100, 4, 0});
  auto [loss, dlogits] = nexa::train::cross_entropy(logits, targets);
  auto f = [&] { return nexa::train::cross_entropy(logits, targets).loss; };
  CHECK(nexa::testing::gradient_error(f, logits.data(), logits.numel(), dlogits.data()) < 1e-6);
  for (int j = 0; j < 5; ++j) CHECK(dlogits(1, j) == 0.0);
  // Each non-ignored row of dlogits sums to 0 (softmax sums to 1).
  double row0 = 0;
  for (int j = 0; j < 5; ++j) row0 += dlogits(0, j);
  CHECK(std::abs(row0) < 1e-15);
}

TEST_CASE("cross_entropy ignore_index: mean over the non-ignored rows; all ignored gives zeros") {
  auto logits = Tensor<double>::from_host({3, 2}, {0, 0, 5, -5, 0, 0});
  // Row 1 ignored (custom ignore_index 7): two rows of log(2), mean log(2), gradients / 2.
  auto [loss, dlogits] = nexa::train::cross_entropy(logits, Targets::from_host({3}, {0, 7, 1}), 7);
  CHECK(loss == doctest::Approx(std::log(2.0)));
  CHECK(dlogits(0, 0) == doctest::Approx(-0.25));
  CHECK(dlogits(2, 1) == doctest::Approx(-0.25));
  CHECK(dlogits(1, 0) == 0.0);
  auto [loss0, d0] = nexa::train::cross_entropy(logits, Targets::from_host({3}, {-100, -100, -100}));
  CHECK(loss0 == 0.0);
  for (double g : d0.to_host()) CHECK(g == 0.0);
  auto [loss_empty, d_empty] = nexa::train::cross_entropy(Tensor<double>({0, 4}), Targets({0}));
  CHECK(loss_empty == 0.0);
  CHECK(d_empty.shape() == nexa::Shape{0, 4});
}

TEST_CASE("cross_entropy rejects bad shapes and out-of-range targets") {
  auto logits = Tensor<float>({2, 3});
  CHECK_THROWS_WITH_AS((void)nexa::train::cross_entropy(logits, Targets::from_host({2}, {0, 3})),
                       doctest::Contains("target 3 at row 1 is out of range for 3 classes"), nexa::Error);
  CHECK_THROWS_AS((void)nexa::train::cross_entropy(logits, Targets::from_host({2}, {0, -1})), nexa::Error);
  CHECK_THROWS_AS((void)nexa::train::cross_entropy(logits, Targets::from_host({3}, {0, 1, 2})), nexa::Error);
  CHECK_THROWS_AS((void)nexa::train::cross_entropy(Tensor<float>({2, 3, 1}), Targets({2})), nexa::Error);
  // -100 is out of range when another ignore_index is chosen.
  CHECK_THROWS_AS((void)nexa::train::cross_entropy(logits, Targets::from_host({2}, {0, -100}), 0), nexa::Error);
}

TEST_CASE("mse against hand-computed values and central differences") {
  // pred [1, 2, 3], target [1, 0, 5]: differences [0, 2, -2], loss (0 + 4 + 4) / 3 = 8/3,
  // dpred = 2 * diff / 3 = [0, 4/3, -4/3].
  auto pred = Tensor<double>::from_host({3}, {1, 2, 3});
  auto target = Tensor<double>::from_host({3}, {1, 0, 5});
  auto [loss, dpred] = nexa::train::mse(pred, target);
  CHECK(loss == doctest::Approx(8.0 / 3));
  CHECK(dpred(0) == 0.0);
  CHECK(dpred(1) == doctest::Approx(4.0 / 3));
  CHECK(dpred(2) == doctest::Approx(-4.0 / 3));

  nexa::Rng rng(52);
  auto p = Tensor<double>::randn({3, 4}, rng);
  auto y = Tensor<double>::randn({3, 4}, rng);
  auto [l, dp] = nexa::train::mse(p, y);
  auto f = [&] { return nexa::train::mse(p, y).loss; };
  CHECK(nexa::testing::gradient_error(f, p.data(), p.numel(), dp.data()) < 1e-6);
  CHECK_THROWS_WITH_AS((void)nexa::train::mse(p, Tensor<double>({4, 3})), doctest::Contains("mse"), nexa::Error);
}
