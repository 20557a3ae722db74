#include <doctest/doctest.h>

#include "nexa/moe.hpp"
#include "support/gradcheck.hpp"

using nexa::Tensor;

TEST_CASE("Switch capacity: tokens over an expert's capacity skip it (hand-computed case)") {
  using namespace nexa;
  // 4 tokens, 2 experts, top-1, capacity factor 1: capacity = ceil(1 * 4 * 1 / 2) = 2.
  Rng rng(90);
  MoELayer<TopKRouter<1>, T5FFN<Relu>, NoShared, cpu, double> layer(
      {.d_model = 3, .d_ff = 4, .num_experts = 2, .capacity_factor = 1.0}, rng);
  CHECK(layer.capacity(4) == 2);
  // Every token prefers expert 0.
  layer.router.weight.value = Tensor<double>::from_host({2, 3}, {1, 1, 1, -1, -1, -1});
  auto x = Tensor<double>::from_host({4, 3}, {1, 2, 3, 2, 1, 1, 1, 1, 2, 3, 1, 2});
  decltype(layer)::Cache cache;
  auto y = layer.forward(x, cache);
  CHECK(cache.tokens_per_expert() == std::vector<index_t>{2, 0});
  // Tokens 0 and 1 reach expert 0, scaled by their router probability; tokens 2 and 3 are dropped.
  for (index_t t = 0; t < 2; ++t) {
    auto row = Tensor<double>::from_host({1, 3}, {x(t, 0), x(t, 1), x(t, 2)});
    T5FFN<Relu, double>::Cache c;
    auto expert_out = layer.experts[0].forward(row, c);
    const double p = cache.router.routing.weights(t, 0);
    for (index_t col = 0; col < 3; ++col) CHECK(y(t, col) == doctest::Approx(p * expert_out(0, col)));
  }
  for (index_t t = 2; t < 4; ++t)
    for (index_t col = 0; col < 3; ++col) CHECK(y(t, col) == 0.0);
}

TEST_CASE("With a capacity limit the layer's gradients still check") {
  using namespace nexa;
  Rng rng(91);
  using Layer = MoELayer<TopKRouter<2>, T5FFN<GatedGelu>, SharedExpert<T5FFN<Relu>>, cpu, double>;
  Layer layer({.d_model = 5,
               .d_ff = 6,
               .num_experts = 4,
               .load_balance_coef = 0.1,
               .z_loss_coef = 0.05,
               .capacity_factor = 0.75},
              rng);
  auto x = Tensor<double>::randn({10, 5}, rng);
  auto r = Tensor<double>::randn({10, 5}, rng);
  Layer::Cache cache;
  (void)layer.forward(x, cache);
  CHECK(cache.plan.num_slots() < 20);  // something was dropped
  auto dx = layer.backward(r, cache);
  auto loss = [&] {
    Layer::Cache c;
    return testing::weighted_sum(layer.forward(x, c), r) + c.aux_loss();
  };
  CHECK(testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  for (auto& [name, p] : testing::trainable_params(layer)) {
    const std::string param_name = name;  // clang cannot capture a structured binding
    INFO(param_name);
    CHECK(testing::gradient_error(loss, p->value.data(), p->numel(), p->grad.data()) < 1e-6);
  }
  CHECK_THROWS_AS(Layer({.d_model = 5, .d_ff = 6, .num_experts = 4, .capacity_factor = -1}, rng), Error);
}
