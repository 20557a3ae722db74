#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "nexa/lora/lora_linear.hpp"
#include "nexa/train/adamw.hpp"
#include "support/gradcheck.hpp"

using nexa::Error;
using nexa::index_t;
using nexa::Linear;
using nexa::LoRA;
using nexa::LoRAConfig;
using nexa::Tensor;

namespace {

template <class T>
std::vector<std::string> names_of(LoRA<Linear<>, T>& m) {
  std::vector<std::string> out;
  m.visit_params([&](const std::string& name, auto&) { out.push_back(name); });
  return out;
}

// y = x W0^T + b + scale * x A^T B^T, straight from the definition, in double.
template <class M>
Tensor<double> reference(M& m, const Tensor<double>& x) {
  const index_t n = x.rows(), in = m.in_features(), out = m.out_features(), r = m.lora_config().r;
  const double s = m.lora_config().scale();
  Tensor<double> y({n, out});
  for (index_t t = 0; t < n; ++t)
    for (index_t o = 0; o < out; ++o) {
      double acc = m.base.config().bias ? double(m.base.bias.value(o)) : 0.0;
      for (index_t i = 0; i < in; ++i) acc += double(m.base.weight.value(o, i)) * x(t, i);
      for (index_t k = 0; k < r; ++k) {
        double z = 0;
        for (index_t i = 0; i < in; ++i) z += double(m.adapter.lora_A.value(k, i)) * x(t, i);
        acc += s * double(m.adapter.lora_B.value(o, k)) * z;
      }
      y(t, o) = acc;
    }
  return y;
}

}  // namespace

TEST_CASE("LoRA<Linear>: peft initialisation, names and a frozen base") {
  nexa::Rng rng(1);
  LoRA<Linear<>> m({.base = {.in_features = 16, .out_features = 6, .bias = true}, .lora = {.r = 4, .alpha = 8}}, rng);
  CHECK(m.adapter.lora_A.value.shape() == nexa::Shape{4, 16});
  CHECK(m.adapter.lora_B.value.shape() == nexa::Shape{6, 4});
  double max_abs = 0;
  for (index_t i = 0; i < m.adapter.lora_A.value.numel(); ++i)
    max_abs = std::max(max_abs, std::abs(double(m.adapter.lora_A.value.data()[i])));
  CHECK(max_abs <= 0.25);  // 1 / sqrt(16)
  CHECK(max_abs > 0.2);
  for (index_t i = 0; i < m.adapter.lora_B.value.numel(); ++i) CHECK(m.adapter.lora_B.value.data()[i] == 0.0f);
  CHECK(names_of(m) == std::vector<std::string>{"weight", "bias", "lora_A.weight", "lora_B.weight"});
  CHECK_FALSE(m.base.weight.trainable);
  CHECK(m.base.weight.grad.empty());
  CHECK_FALSE(m.base.bias.trainable);
  CHECK(m.adapter.lora_A.trainable);
  CHECK(m.lora_config().scale() == 2.0);

  // Wrapping an existing base keeps its weights.
  Linear<> plain({.in_features = 5, .out_features = 3}, rng);
  const std::vector<float> w = plain.weight.value.to_host();
  LoRA<Linear<>> wrapped(plain, {.r = 2}, rng);
  CHECK(wrapped.base.weight.value.to_host() == w);
  CHECK_FALSE(wrapped.base.weight.trainable);
}

TEST_CASE("LoRA<Linear> at step 0 equals its base bit for bit") {
  nexa::Rng rng(2);
  Linear<> plain({.in_features = 12, .out_features = 7, .bias = true}, rng);
  LoRA<Linear<>> m(plain, {.r = 3, .alpha = 16, .dropout = 0.3}, rng);
  auto x = Tensor<float>::randn({2, 5, 12}, rng);
  LoRA<Linear<>>::Cache cache;
  const Tensor<float> y = m.forward(x, cache);
  const Tensor<float> y0 = plain.apply(x);
  CHECK(y.shape() == y0.shape());
  CHECK(y.to_host() == y0.to_host());
}

TEST_CASE("LoRA<Linear> output matches the definition, with and without rsLoRA") {
  for (bool rslora : {false, true}) {
    nexa::Rng rng(3);
    LoRA<Linear<>, double> m(
        {.base = {.in_features = 6, .out_features = 5, .bias = true}, .lora = {.r = 4, .alpha = 3, .rslora = rslora}},
        rng);
    CHECK(m.lora_config().scale() == doctest::Approx(rslora ? 1.5 : 0.75));
    m.adapter.lora_B.value = Tensor<double>::randn({5, 4}, rng);
    auto x = Tensor<double>::randn({7, 6}, rng);
    LoRA<Linear<>, double>::Cache cache;
    const Tensor<double> y = m.forward(x, cache);
    const Tensor<double> ref = reference(m, x);
    for (index_t i = 0; i < y.numel(); ++i) CHECK(y.data()[i] == doctest::Approx(ref.data()[i]).epsilon(1e-12));
  }
}

TEST_CASE("LoRA<Linear> gradients in double: x, lora_A, lora_B (with dropout); none for the base") {
  for (double p : {0.0, 0.25}) {
    INFO("dropout ", p);
    nexa::Rng rng(4);
    LoRA<Linear<>, double> m(
        {.base = {.in_features = 5, .out_features = 4, .bias = true}, .lora = {.r = 3, .alpha = 6, .dropout = p}}, rng);
    m.adapter.lora_B.value = Tensor<double>::randn({4, 3}, rng, 0.5);
    auto x = Tensor<double>::randn({3, 2, 5}, rng);
    const auto r = Tensor<double>::randn({3, 2, 4}, rng);
    auto loss = [&] {
      m.adapter.dropout().rewind(0);
      LoRA<Linear<>, double>::Cache c;
      return nexa::testing::weighted_sum(m.forward(x, c), r);
    };
    m.adapter.dropout().rewind(0);
    nexa::testing::zero_grads(m);
    LoRA<Linear<>, double>::Cache cache;
    (void)m.forward(x, cache);
    const Tensor<double> dx = m.backward(r, cache);
    CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-7);
    const auto params = nexa::testing::trainable_params(m);
    REQUIRE(params.size() == 2);
    for (const auto& [name, param] : params) {
      INFO(name);
      CHECK(nexa::testing::gradient_error(loss, param->value.data(), param->numel(), param->grad.data()) < 1e-7);
    }
    CHECK(m.base.weight.grad.empty());
    CHECK(m.base.bias.grad.empty());
  }
}

TEST_CASE("LoRA<Linear> merge and unmerge: merged forward equals unmerged within fp32 rounding") {
  nexa::Rng rng(5);
  LoRA<Linear<>> m({.base = {.in_features = 32, .out_features = 24}, .lora = {.r = 8, .alpha = 16}}, rng);
  m.adapter.lora_B.value = Tensor<float>::randn({24, 8}, rng, 0.1);
  const std::vector<float> w0 = m.base.weight.value.to_host();
  auto x = Tensor<float>::randn({9, 32}, rng);
  LoRA<Linear<>>::Cache cache;
  const Tensor<float> y = m.forward(x, cache);
  m.merge();
  CHECK(m.merged());
  CHECK(m.base.weight.value.to_host() != w0);
  const Tensor<float> ym = m.forward(x, cache);
  double max_err = 0, max_y = 0;
  for (index_t i = 0; i < y.numel(); ++i) {
    max_err = std::max(max_err, std::abs(double(y.data()[i]) - double(ym.data()[i])));
    max_y = std::max(max_y, std::abs(double(y.data()[i])));
  }
  CHECK(max_err <= 1e-5 * max_y);
  CHECK_THROWS_WITH_AS(m.merge(), doctest::Contains("LoRA: the adapter is already merged"), Error);
  CHECK_THROWS_WITH_AS((void)m.backward(Tensor<float>({9, 24}), cache),
                       doctest::Contains("LoRA: backward through merged"), Error);
  m.unmerge();
  CHECK_FALSE(m.merged());
  const std::vector<float> w1 = m.base.weight.value.to_host();
  for (std::size_t i = 0; i < w0.size(); ++i) CHECK(w1[i] == doctest::Approx(w0[i]).epsilon(1e-5));
  CHECK_THROWS_WITH_AS(m.unmerge(), doctest::Contains("LoRA: unmerge"), Error);
}

TEST_CASE("LoRA<Linear> under AdamW: the base has no state and stays bit-identical") {
  nexa::Rng rng(6);
  LoRA<Linear<>> m({.base = {.in_features = 8, .out_features = 4, .bias = true}, .lora = {.r = 2}}, rng);
  const std::vector<float> w = m.base.weight.value.to_host();
  const std::vector<float> b = m.base.bias.value.to_host();
  nexa::train::AdamW opt(m, {.lr = 1e-2, .weight_decay = 0.1});
  CHECK(opt.param_names() == std::vector<std::string>{"lora_A.weight", "lora_B.weight"});
  CHECK(opt.num_elements() == 2 * 8 + 4 * 2);
  auto x = Tensor<float>::randn({5, 8}, rng);
  const auto r = Tensor<float>::randn({5, 4}, rng);
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    LoRA<Linear<>>::Cache cache;
    (void)m.forward(x, cache);
    (void)m.backward(r, cache);
    opt.step();
  }
  CHECK(m.base.weight.value.to_host() == w);
  CHECK(m.base.bias.value.to_host() == b);
  double b_norm = 0;
  for (index_t i = 0; i < m.adapter.lora_B.value.numel(); ++i) b_norm += std::abs(m.adapter.lora_B.value.data()[i]);
  CHECK(b_norm > 0);  // the adapter learned
}

TEST_CASE("LoRA<Linear> errors name LoRA") {
  nexa::Rng rng(7);
  CHECK_THROWS_WITH_AS((LoRA<Linear<>>({.base = {.in_features = 4, .out_features = 4}, .lora = {.r = 0}}, rng)),
                       doctest::Contains("LoRA: r must be positive, got 0"), Error);
  CHECK_THROWS_WITH_AS((LoRA<Linear<>>({.base = {.in_features = 4, .out_features = 4}, .lora = {.r = -2}}, rng)),
                       doctest::Contains("LoRA: r must be positive"), Error);
  CHECK_THROWS_WITH_AS(
      (LoRA<Linear<>>({.base = {.in_features = 4, .out_features = 4}, .lora = {.r = 2, .dropout = 1.0}}, rng)),
      doctest::Contains("LoRA: dropout"), Error);
  LoRA<Linear<>> m({.base = {.in_features = 4, .out_features = 3}, .lora = {.r = 2}}, rng);
  LoRA<Linear<>>::Cache cache;
  CHECK_THROWS_WITH_AS((void)m.forward(Tensor<float>({2, 5}), cache),
                       doctest::Contains("LoRA: input's last axis expected 4"), Error);
  (void)m.forward(Tensor<float>({2, 4}), cache);
  CHECK_THROWS_WITH_AS((void)m.backward(Tensor<float>({2, 4}), cache), doctest::Contains("LoRA: dy shape"), Error);
  Tensor<float> wrong({3, 5});
  CHECK_THROWS_WITH_AS(m.adapter.add_to(wrong, 1.0f), doctest::Contains("LoRA: merge expects a weight [3, 4]"), Error);
}
