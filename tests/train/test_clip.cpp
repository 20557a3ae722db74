#include "nexa/train/clip.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "toy_module.hpp"

using nexa::testing::set_grad;
using nexa::testing::Toy;

TEST_CASE("clip_grad_norm against hand-computed values") {
  // Gradients [3, 0, 4] and [12]: global norm sqrt(9 + 16 + 144) = 13. The frozen parameter has no
  // gradient and does not count.
  Toy<double> toy({0, 0, 0}, {0}, {5});
  set_grad(toy.weight, {3, 0, 4});
  set_grad(toy.bias, {12});
  CHECK(nexa::train::grad_norm(toy) == 13.0);
  const double norm = nexa::train::clip_grad_norm(toy, 6.5);
  CHECK(norm == 13.0);                      // the norm before clipping
  const double coef = 6.5 / (13.0 + 1e-6);  // torch: max_norm / (norm + 1e-6), ~ 0.49999996
  CHECK(toy.weight.grad(0) == doctest::Approx(3 * coef).epsilon(1e-15));
  CHECK(toy.weight.grad(1) == 0.0);
  CHECK(toy.weight.grad(2) == doctest::Approx(4 * coef).epsilon(1e-15));
  CHECK(toy.bias.grad(0) == doctest::Approx(12 * coef).epsilon(1e-15));
  CHECK(nexa::train::grad_norm(toy) == doctest::Approx(6.5).epsilon(1e-6));
  CHECK(toy.frozen.grad.empty());
}

TEST_CASE("clip_grad_norm leaves gradients below max_norm untouched") {
  Toy<float> toy({0, 0, 0}, {0}, {5});
  set_grad(toy.weight, {0.3f, -0.1f, 0.7f});
  set_grad(toy.bias, {0.2f});
  const auto before = toy.weight.grad.to_host();
  const double norm = nexa::train::clip_grad_norm(toy, 1.0);
  CHECK(norm == doctest::Approx(std::sqrt(0.09 + 0.01 + 0.49 + 0.04)).epsilon(1e-6));
  CHECK(toy.weight.grad.to_host() == before);
  CHECK(toy.bias.grad(0) == 0.2f);
}

TEST_CASE("clip_grad_norm: non-finite norm returned untouched, bad max_norm rejected") {
  Toy<double> toy({0, 0}, {0}, {5});
  set_grad(toy.weight, {std::numeric_limits<double>::infinity(), 1.0});
  CHECK(std::isinf(nexa::train::clip_grad_norm(toy, 1.0)));
  CHECK(toy.weight.grad(1) == 1.0);
  CHECK_THROWS_AS(nexa::train::clip_grad_norm(toy, -1.0), nexa::Error);
}
