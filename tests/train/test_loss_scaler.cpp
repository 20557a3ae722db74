// DynamicLossScaler on the CPU: scale growth and backoff, skipped steps on overflow, and a
// scaled step that equals the unscaled one (power-of-two scales divide exactly).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "nexa/train/adamw.hpp"
#include "nexa/train/loss_scaler.hpp"
#include "toy_module.hpp"

using nexa::testing::set_grad;
using nexa::testing::Toy;
using nexa::train::DynamicLossScaler;

TEST_CASE("the scale grows after growth_interval finite steps and halves on an overflow") {
  DynamicLossScaler scaler({.init_scale = 8.0, .growth_interval = 3});
  CHECK(scaler.scale() == 8.0);
  CHECK(scaler.update(true));
  CHECK(scaler.update(true));
  CHECK(scaler.scale() == 8.0);
  CHECK(scaler.good_steps() == 2);
  CHECK(scaler.update(true));
  CHECK(scaler.scale() == 16.0);
  CHECK(scaler.good_steps() == 0);
  CHECK(scaler.update(true));
  CHECK_FALSE(scaler.update(false));
  CHECK(scaler.scale() == 8.0);
  CHECK(scaler.good_steps() == 0);
  CHECK(scaler.skipped_steps() == 1);
  CHECK_FALSE(scaler.update(false));
  CHECK(scaler.scale() == 4.0);
  CHECK(scaler.skipped_steps() == 2);
}

TEST_CASE("scale_gradient multiplies the loss gradient by the scale") {
  DynamicLossScaler scaler({.init_scale = 1024.0});
  auto dloss = nexa::Tensor<float>::from_host({3}, {0.5f, -1.0f, 0x1p-20f});
  scaler.scale_gradient(dloss);
  CHECK(dloss.to_host() == std::vector<float>{512.0f, -1024.0f, 0x1p-10f});
}

TEST_CASE("a scaled step equals the unscaled AdamW step, bit for bit") {
  const std::vector<float> w{0.5f, -1.25f, 2.0f}, b{0.1f}, f{3.0f};
  const std::vector<float> g{0.01f, -0.2f, 3.0f}, gb{-0.5f};
  Toy<float> plain(w, b, f), scaled(w, b, f);
  nexa::train::AdamW plain_opt(plain, {.lr = 0.1});
  nexa::train::AdamW scaled_opt(scaled, {.lr = 0.1});
  DynamicLossScaler scaler({.init_scale = 4096.0, .growth_interval = 2});
  for (int step = 0; step < 3; ++step) {
    set_grad(plain.weight, g);
    set_grad(plain.bias, gb);
    plain_opt.step();
    // What backward gives for a scaled loss gradient: every gradient times the scale.
    std::vector<float> sg(g), sgb(gb);
    for (float& v : sg) v *= static_cast<float>(scaler.scale());
    for (float& v : sgb) v *= static_cast<float>(scaler.scale());
    set_grad(scaled.weight, sg);
    set_grad(scaled.bias, sgb);
    CHECK(scaler.step(scaled, scaled_opt));
    CHECK(scaled.weight.grad.to_host() == g);  // left unscaled
  }
  CHECK(scaled.weight.value.to_host() == plain.weight.value.to_host());
  CHECK(scaled.bias.value.to_host() == plain.bias.value.to_host());
  CHECK(scaled.frozen.value.to_host() == f);
  CHECK(scaled_opt.steps() == 3);
  CHECK(scaler.scale() == 8192.0);  // grew once, after two finite steps
}

TEST_CASE("an overflow skips the optimizer step and halves the scale") {
  Toy<double> model({1.0, 2.0}, {3.0}, {4.0});
  nexa::train::AdamW optimizer(model, {.lr = 0.1});
  DynamicLossScaler scaler({.init_scale = 256.0});
  for (const double bad : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    set_grad(model.weight, {1.0, bad});
    set_grad(model.bias, {1.0});
    CHECK_FALSE(scaler.step(model, optimizer));
  }
  CHECK(optimizer.steps() == 0);
  CHECK(model.weight.value.to_host() == std::vector<double>{1.0, 2.0});
  CHECK(scaler.scale() == 64.0);
  CHECK(scaler.skipped_steps() == 2);
  // A gradient that is finite when scaled but overflows once divided by a scale below 1.
  DynamicLossScaler small({.init_scale = 0x1p-4, .growth_interval = 10});
  set_grad(model.weight, {std::numeric_limits<double>::max(), 0.0});
  CHECK_FALSE(small.step(model, optimizer));
  CHECK(optimizer.steps() == 0);
}

TEST_CASE("DynamicLossScaler rejects bad configurations, naming itself") {
  CHECK_THROWS_WITH_AS(DynamicLossScaler({.init_scale = 0.0}), doctest::Contains("DynamicLossScaler: init_scale"),
                       nexa::Error);
  CHECK_THROWS_WITH_AS(DynamicLossScaler({.growth_factor = 1.0}), doctest::Contains("growth_factor"), nexa::Error);
  CHECK_THROWS_WITH_AS(DynamicLossScaler({.backoff_factor = 1.0}), doctest::Contains("backoff_factor"), nexa::Error);
  CHECK_THROWS_WITH_AS(DynamicLossScaler({.growth_interval = 0}), doctest::Contains("growth_interval"), nexa::Error);
}
