#include <doctest/doctest.h>

#include "nexa/nn/linear.hpp"
#include "support/gradcheck.hpp"

using nexa::Tensor;

TEST_CASE("Linear forward equals x W^T + b") {
  nexa::Rng rng(3);
  nexa::Linear<double> lin({.in_features = 4, .out_features = 3, .bias = true}, rng);
  auto x = Tensor<double>::randn({2, 4}, rng);
  nexa::Linear<double>::Cache cache;
  auto y = lin.forward(x, cache);
  for (nexa::index_t i = 0; i < 2; ++i) {
    for (nexa::index_t o = 0; o < 3; ++o) {
      double ref = lin.bias.value(o);
      for (nexa::index_t c = 0; c < 4; ++c) ref += x(i, c) * lin.weight.value(o, c);
      CHECK(y(i, o) == doctest::Approx(ref));
    }
  }
}

TEST_CASE("Linear gradients match central differences (input, weight, bias)") {
  for (bool bias : {false, true}) {
    nexa::Rng rng(4);
    nexa::Linear<double> lin({.in_features = 5, .out_features = 4, .bias = bias}, rng);
    auto x = Tensor<double>::randn({2, 3, 5}, rng);
    auto r = Tensor<double>::randn({2, 3, 4}, rng);
    nexa::Linear<double>::Cache cache;
    (void)lin.forward(x, cache);
    auto dx = lin.backward(r, cache);
    auto loss = [&] { return nexa::testing::weighted_sum(lin.apply(x), r); };
    CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
    for (auto& [name, p] : nexa::testing::trainable_params(lin)) {
      const std::string param_name = name;  // clang cannot capture a structured binding
      INFO(param_name);
      CHECK(nexa::testing::gradient_error(loss, p->value.data(), p->numel(), p->grad.data()) < 1e-6);
    }
  }
}

TEST_CASE("A frozen Linear stores no gradient and still passes dx") {
  nexa::Rng rng(5);
  nexa::Linear<double> lin({.in_features = 3, .out_features = 2}, rng);
  lin.weight.set_trainable(false);
  CHECK(lin.weight.grad.empty());
  auto x = Tensor<double>::randn({4, 3}, rng);
  nexa::Linear<double>::Cache cache;
  (void)lin.forward(x, cache);
  auto dx = lin.backward(Tensor<double>::full({4, 2}, 1.0), cache);
  CHECK(dx.shape() == nexa::Shape{4, 3});
}

TEST_CASE("Linear rejects an input of the wrong width") {
  nexa::Rng rng(6);
  nexa::Linear<float> lin({.in_features = 3, .out_features = 2}, rng);
  nexa::Linear<float>::Cache cache;
  CHECK_THROWS_WITH_AS((void)lin.forward(Tensor<float>({2, 5}), cache), doctest::Contains("Linear"), nexa::Error);
  CHECK_THROWS_AS(nexa::Linear<float>({.in_features = 0, .out_features = 2}, rng), nexa::Error);
}
