#include "nexa/train/adamw.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "nexa/nn/linear.hpp"
#include "nexa/train/loss.hpp"
#include "nexa/train/schedule.hpp"
#include "toy_module.hpp"

using nexa::testing::set_grad;
using nexa::testing::Toy;
using nexa::train::AdamW;
using nexa::train::AdamWConfig;

namespace adamw_test {
namespace {
const AdamWConfig hand_config{.lr = 0.1, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};

// A module holding one float and one double Toy.
struct Mixed {
  Toy<float>* f;
  Toy<double>* d;
  template <class F>
  void visit_params(F&& fn, const std::string& prefix = "") {
    f->visit_params(fn, nexa::join_name(prefix, "f"));
    d->visit_params(fn, nexa::join_name(prefix, "d"));
  }
};
}  // namespace

// Worked by hand for w0 = [1, -2, 0.5], lr 0.1, beta1 0.9, beta2 0.95, eps 1e-8, weight_decay 0.1.
// Step 1, g1 = [0.1, -0.2, 0.3]:
//   decay:  w <- w * (1 - 0.1 * 0.1) = 0.99 w                 = [0.99, -1.98, 0.495]
//   m1 = 0.1 g1 = [0.01, -0.02, 0.03];  v1 = 0.05 g1^2 = [0.0005, 0.002, 0.0045]
//   bias corrections 1 - 0.9 = 0.1 and 1 - 0.95 = 0.05, so step size lr / 0.1 = 1 and
//   denom = sqrt(v1) / sqrt(0.05) + eps = |g1| + eps = [0.1, 0.2, 0.3] + 1e-8
//   w1 = 0.99 w0 - m1 / denom
//      = [0.99 - 0.01 / 0.10000001, -1.98 + 0.02 / 0.20000001, 0.495 - 0.03 / 0.30000001]
//      ~ [0.89000001, -1.880000005, 0.3950000033]
// Step 2, g2 = [-0.1, 0, 0.3]:
//   m2 = 0.9 m1 + 0.1 g2 = [-0.001, -0.018, 0.057];  v2 = 0.95 v1 + 0.05 g2^2 = [0.000975, 0.0019, 0.008775]
//   bias corrections 1 - 0.81 = 0.19 and 1 - 0.9025 = 0.0975: step size 0.1 / 0.19,
//   denom = sqrt(v2 / 0.0975) + eps = [0.1, sqrt(0.0194871795) ~ 0.1395965, 0.3] + 1e-8
//   w2 = 0.99 w1 - (0.1 / 0.19) m2 / denom ~ [0.8863631673, -1.7933352351, 0.2910500066]
TEST_CASE("AdamW: two steps against hand-computed values (double)") {
  Toy<double> toy({1.0, -2.0, 0.5}, {0.0}, {7.0});
  AdamW opt(toy, hand_config);
  set_grad(toy.weight, {0.1, -0.2, 0.3});
  opt.step();
  const double w1[3] = {0.99 * 1.0 - 0.01 / (0.1 + 1e-8), 0.99 * -2.0 + 0.02 / (0.2 + 1e-8),
                        0.99 * 0.5 - 0.03 / (0.3 + 1e-8)};
  CHECK(w1[0] == doctest::Approx(0.89000001).epsilon(1e-12));
  CHECK(w1[1] == doctest::Approx(-1.880000005).epsilon(1e-12));
  for (int i = 0; i < 3; ++i) CHECK(toy.weight.value(i) == doctest::Approx(w1[i]).epsilon(1e-13));

  set_grad(toy.weight, {-0.1, 0.0, 0.3});
  opt.step();
  const double step2 = 0.1 / 0.19;
  const double w2[3] = {0.99 * w1[0] - step2 * -0.001 / (0.1 + 1e-8),
                        0.99 * w1[1] - step2 * -0.018 / (std::sqrt(0.0019 / 0.0975) + 1e-8),
                        0.99 * w1[2] - step2 * 0.057 / (0.3 + 1e-8)};
  CHECK(w2[0] == doctest::Approx(0.8863631673).epsilon(1e-9));
  CHECK(w2[1] == doctest::Approx(-1.7933352351).epsilon(1e-9));
  CHECK(w2[2] == doctest::Approx(0.2910500066).epsilon(1e-9));
  for (int i = 0; i < 3; ++i) CHECK(toy.weight.value(i) == doctest::Approx(w2[i]).epsilon(1e-13));
  CHECK(opt.steps() == 2);
}

TEST_CASE("AdamW: the same two steps in float") {
  Toy<float> toy({1.0f, -2.0f, 0.5f}, {0.0f}, {7.0f});
  AdamW opt(toy, hand_config);
  set_grad(toy.weight, {0.1f, -0.2f, 0.3f});
  opt.step();
  set_grad(toy.weight, {-0.1f, 0.0f, 0.3f});
  opt.step();
  CHECK(toy.weight.value(0) == doctest::Approx(0.8863631673).epsilon(1e-6));
  CHECK(toy.weight.value(1) == doctest::Approx(-1.7933352351).epsilon(1e-6));
  CHECK(toy.weight.value(2) == doctest::Approx(0.2910500066).epsilon(1e-6));
}

TEST_CASE("AdamW: a frozen parameter has no state and stays bit-identical") {
  Toy<float> toy({1.0f, 2.0f, 3.0f}, {0.5f}, {0.1f, -0.2f, 3e-38f, 1e30f});
  const auto before = toy.frozen.value.to_host();
  AdamW opt(toy, hand_config);
  CHECK(opt.num_params() == 2);
  CHECK(opt.num_elements() == 4);
  CHECK(opt.param_names() == std::vector<std::string>{"dense.weight", "dense.bias"});
  CHECK(opt.state_bytes() == 2 * 4 * sizeof(float));  // m and v for 3 + 1 floats
  for (int s = 0; s < 5; ++s) {
    set_grad(toy.weight, {0.3f, -0.1f, 0.2f});
    set_grad(toy.bias, {1.0f});
    opt.step();
  }
  CHECK(toy.frozen.grad.empty());
  CHECK(std::memcmp(toy.frozen.value.data(), before.data(), before.size() * sizeof(float)) == 0);
  CHECK(toy.weight.value(0) != 1.0f);
}

TEST_CASE("AdamW: weight decay is decoupled from the gradient") {
  // With a zero gradient m = v = 0, so the Adam part is 0 / (0 + eps) = 0 and only the decay
  // acts: w <- w * (1 - lr * wd) exactly. (Adam with L2 in the gradient would instead move w by
  // about lr, the normalised step of a gradient wd * w.)
  Toy<double> toy({1.0, -2.0, 0.5}, {3.0}, {1.0});
  AdamW opt(toy, {.lr = 0.1, .weight_decay = 0.1, .no_weight_decay = nexa::train::no_decay_norms_and_biases});
  CHECK(opt.decays("dense.weight"));
  CHECK_FALSE(opt.decays("dense.bias"));
  opt.step();
  const double factor = 1.0 - 0.1 * 0.1;
  CHECK(toy.weight.value(0) == 1.0 * factor);
  CHECK(toy.weight.value(1) == -2.0 * factor);
  CHECK(toy.weight.value(2) == 0.5 * factor);
  CHECK(toy.bias.value(0) == 3.0);  // no-decay parameter with zero gradient: untouched

  // With a gradient, the decay is the same whatever the gradient's scale: w1 = 0.99 w0 - lr * g / (|g| + eps).
  Toy<double> a({1.0, 1.0}, {0.0}, {0.0});
  AdamW opt_a(a, {.lr = 0.1, .weight_decay = 0.1});
  set_grad(a.weight, {1e-3, 1e3});
  opt_a.step();
  CHECK(a.weight.value(0) == doctest::Approx(0.99 - 0.1 * 1e-3 / (1e-3 + 1e-8)).epsilon(1e-14));
  CHECK(a.weight.value(1) == doctest::Approx(0.99 - 0.1 * 1e3 / (1e3 + 1e-8)).epsilon(1e-14));
}

TEST_CASE("AdamW: zero_grad, set_lr, mixed float/double modules and config errors") {
  Toy<float> f({1.0f}, {1.0f}, {1.0f});
  Toy<double> d({1.0}, {1.0}, {1.0});
  Mixed mixed{&f, &d};
  AdamW opt(mixed);
  CHECK(opt.state_bytes() == 2 * (2 * sizeof(float) + 2 * sizeof(double)));
  CHECK(opt.lr() == 1e-3);
  CHECK(opt.config().beta2 == 0.95);
  opt.set_lr(0.5);
  CHECK(opt.lr() == 0.5);
  set_grad(f.weight, {2.0f});
  set_grad(d.bias, {3.0});
  opt.zero_grad();
  CHECK(f.weight.grad(0) == 0.0f);
  CHECK(d.bias.grad(0) == 0.0);
  CHECK_THROWS_AS(opt.set_lr(-1.0), nexa::Error);
  CHECK_THROWS_WITH_AS(AdamW(f, {.beta1 = 1.0}), doctest::Contains("AdamW"), nexa::Error);
  CHECK_THROWS_AS(AdamW(f, {.beta2 = -0.1}), nexa::Error);
  CHECK_THROWS_AS(AdamW(f, {.weight_decay = -1.0}), nexa::Error);
}

TEST_CASE("AdamW with the cosine schedule fits a linear regression through a Linear module") {
  nexa::Rng rng(42);
  nexa::Linear<double> lin({.in_features = 3, .out_features = 1, .bias = true}, rng);
  auto x = nexa::Tensor<double>::randn({32, 3}, rng);
  nexa::Tensor<double> y({32, 1});
  for (nexa::index_t i = 0; i < 32; ++i) y(i, 0) = 0.5 * x(i, 0) - 1.0 * x(i, 1) + 2.0 * x(i, 2) + 0.25;
  AdamW opt(lin, {.lr = 0.05, .weight_decay = 0.0});
  CHECK(opt.state_bytes() == 2 * 4 * sizeof(double));
  const nexa::train::CosineSchedule schedule{.peak_lr = 0.05, .warmup_steps = 10, .total_steps = 400};
  double loss = 0;
  for (int step = 0; step < 400; ++step) {
    opt.set_lr(schedule(step));
    nexa::Linear<double>::Cache cache;
    auto pred = lin.forward(x, cache);
    auto [l, dpred] = nexa::train::mse(pred, y);
    loss = l;
    opt.zero_grad();
    (void)lin.backward(dpred, cache);
    opt.step();
  }
  CHECK(loss < 1e-6);
  CHECK(lin.weight.value(0, 2) == doctest::Approx(2.0).epsilon(1e-3));
  CHECK(lin.bias.value(0) == doctest::Approx(0.25).epsilon(1e-3));
}

}  // namespace adamw_test
