#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "nexa/lora/lora_expert.hpp"
#include "nexa/moe/topk_router.hpp"
#include "nexa/train/adamw.hpp"
#include "support/gradcheck.hpp"

using nexa::Error;
using nexa::GatedGelu;
using nexa::index_t;
using nexa::LoRA;
using nexa::LoRAConfig;
using nexa::MoELayer;
using nexa::Relu;
using nexa::T5FFN;
using nexa::Tensor;
using nexa::TopKRouter;

static_assert(nexa::Expert<LoRA<T5FFN<Relu>>>);
static_assert(nexa::Expert<LoRA<T5FFN<GatedGelu>>>);
static_assert(nexa::Expert<LoRA<T5FFN<nexa::SwiGLU>>>);

namespace {

template <class M>
std::vector<std::string> names_of(M& m, const std::string& prefix = "") {
  std::vector<std::string> out;
  m.visit_params([&](const std::string& name, auto&) { out.push_back(name); }, prefix);
  return out;
}

template <class Act>
void check_step0(std::uint64_t seed) {
  nexa::Rng rng(seed);
  T5FFN<Act> plain({.d_model = 8, .d_ff = 12, .dropout = 0.2}, rng);
  LoRA<T5FFN<Act>> m(plain, {.r = 4, .alpha = 8, .dropout = 0.1}, rng);
  auto x = Tensor<float>::randn({6, 8}, rng);
  typename T5FFN<Act>::Cache c0;
  typename LoRA<T5FFN<Act>>::Cache c1;
  const Tensor<float> y0 = plain.forward(x, c0);  // both dropouts draw call 0 of the same stream
  const Tensor<float> y1 = m.forward(x, c1);
  CHECK(y1.to_host() == y0.to_host());
  const auto dy = Tensor<float>::randn({6, 8}, rng);
  CHECK(m.backward(dy, c1).to_host() == plain.backward(dy, c0).to_host());
}

template <class Act>
void check_gradients(std::uint64_t seed) {
  nexa::Rng rng(seed);
  LoRA<T5FFN<Act>, double> m({.d_model = 5, .d_ff = 7, .dropout = 0.2}, {.r = 3, .alpha = 6, .dropout = 0.25}, rng);
  m.visit_params([&](const std::string& name, nexa::Param<double>& p) {
    if (name.ends_with("lora_B.weight")) p.value = Tensor<double>::randn(p.value.shape(), rng, 0.5);
  });
  auto x = Tensor<double>::randn({6, 5}, rng);
  const auto r = Tensor<double>::randn({6, 5}, rng);
  auto rewind = [&] { m.visit_dropouts([](auto& d) { d.rewind(0); }); };
  auto loss = [&] {
    rewind();
    typename LoRA<T5FFN<Act>, double>::Cache c;
    return nexa::testing::weighted_sum(m.forward(x, c), r);
  };
  rewind();
  nexa::testing::zero_grads(m);
  typename LoRA<T5FFN<Act>, double>::Cache cache;
  (void)m.forward(x, cache);
  const Tensor<double> dx = m.backward(r, cache);
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  const auto params = nexa::testing::trainable_params(m);
  CHECK(params.size() == (nexa::lora_detail::ExpertAct<Act>::gated ? 6u : 4u));
  for (const auto& [name, param] : params) {
    INFO(name);
    CHECK(name.find("lora_") != std::string::npos);
    CHECK(nexa::testing::gradient_error(loss, param->value.data(), param->numel(), param->grad.data()) < 1e-6);
  }
}

template <class Act>
void check_merge(std::uint64_t seed) {
  nexa::Rng rng(seed);
  LoRA<T5FFN<Act>> m({.d_model = 16, .d_ff = 24}, {.r = 4, .alpha = 8}, rng);
  m.visit_params([&](const std::string& name, nexa::Param<float>& p) {
    if (name.ends_with("lora_B.weight")) p.value = Tensor<float>::randn(p.value.shape(), rng, 0.1);
  });
  auto x = Tensor<float>::randn({10, 16}, rng);
  typename LoRA<T5FFN<Act>>::Cache cache;
  const Tensor<float> y = m.forward(x, cache);
  m.merge();
  const Tensor<float> ym = m.forward(x, cache);
  double max_err = 0, max_y = 0;
  for (index_t i = 0; i < y.numel(); ++i) {
    max_err = std::max(max_err, std::abs(double(y.data()[i]) - double(ym.data()[i])));
    max_y = std::max(max_y, std::abs(double(y.data()[i])));
  }
  CHECK(max_err <= 1e-5 * max_y);
  CHECK_THROWS_WITH_AS(m.merge(), doctest::Contains("already merged"), Error);
  CHECK_THROWS_WITH_AS((void)m.backward(Tensor<float>({10, 16}), cache), doctest::Contains("LoRA<T5FFN"), Error);
  m.unmerge();
  const Tensor<float> yu = m.forward(x, cache);
  for (index_t i = 0; i < y.numel(); ++i) CHECK(yu.data()[i] == doctest::Approx(y.data()[i]).epsilon(1e-4));
  CHECK_THROWS_WITH_AS(m.unmerge(), doctest::Contains("LoRA<T5FFN"), Error);
}

}  // namespace

TEST_CASE("LoRA<T5FFN>: peft names, a frozen base, adapters on every linear") {
  nexa::Rng rng(10);
  LoRA<T5FFN<Relu>> relu({.d_model = 8, .d_ff = 12}, {.r = 2}, rng);
  CHECK(names_of(relu, "experts.expert_0") ==
        std::vector<std::string>{"experts.expert_0.wi.weight", "experts.expert_0.wo.weight",
                                 "experts.expert_0.wi.lora_A.weight", "experts.expert_0.wi.lora_B.weight",
                                 "experts.expert_0.wo.lora_A.weight", "experts.expert_0.wo.lora_B.weight"});
  CHECK(relu.wi.lora_A.value.shape() == nexa::Shape{2, 8});
  CHECK(relu.wi.lora_B.value.shape() == nexa::Shape{12, 2});
  CHECK(relu.wo.lora_A.value.shape() == nexa::Shape{2, 12});
  CHECK(relu.wo.lora_B.value.shape() == nexa::Shape{8, 2});
  CHECK_FALSE(relu.base.wi.trainable);
  CHECK(relu.base.wo.grad.empty());
  LoRA<T5FFN<GatedGelu>> gated({.d_model = 8, .d_ff = 12}, rng);  // LoRAConfig's defaults (peft's)
  CHECK(gated.lora_config().r == 8);
  CHECK(names_of(gated) == std::vector<std::string>{"wi_0.weight", "wi_1.weight", "wo.weight", "wi_0.lora_A.weight",
                                                    "wi_0.lora_B.weight", "wi_1.lora_A.weight", "wi_1.lora_B.weight",
                                                    "wo.lora_A.weight", "wo.lora_B.weight"});
  CHECK_THROWS_WITH_AS((LoRA<T5FFN<Relu>>({.d_model = 8, .d_ff = 12}, {.r = 0}, rng)),
                       doctest::Contains("LoRA: r must be positive"), Error);
  typename LoRA<T5FFN<Relu>>::Cache cache;
  auto out = Tensor<float>::uninitialized({3, 8});
  CHECK_THROWS_WITH_AS(relu.forward_into(Tensor<float>({3, 7}), cache, out.view()), doctest::Contains("LoRA<T5FFN>"),
                       Error);
}

TEST_CASE("a LoRA-wrapped expert at step 0 equals its base exactly, forward and backward") {
  check_step0<Relu>(11);
  check_step0<GatedGelu>(12);
}

TEST_CASE("LoRA<T5FFN> gradients in double (adapter and expert dropout on)") {
  check_gradients<Relu>(13);
  check_gradients<nexa::GeluNew>(14);
  check_gradients<GatedGelu>(15);
}

TEST_CASE("LoRA<T5FFN> merged forward equals unmerged within fp32 rounding") {
  check_merge<Relu>(16);
  check_merge<nexa::SwiGLU>(17);
}

TEST_CASE("MoELayer with LoRA experts: equals the base at step 0, trains only the adapters") {
  using Base = MoELayer<TopKRouter<2>, T5FFN<Relu>>;
  nexa::Rng rng(20);
  Base base({.d_model = 8, .d_ff = 16, .num_experts = 4}, rng);
  Base copy = base;
  auto layer = nexa::with_lora(std::move(copy), {.r = 4, .alpha = 8}, rng);
  static_assert(std::same_as<decltype(layer), MoELayer<TopKRouter<2>, LoRA<T5FFN<Relu>>>>);
  auto x = Tensor<float>::randn({3, 5, 8}, rng);
  Base::Cache c0;
  decltype(layer)::Cache c1;
  const Tensor<float> y0 = base.forward(x, c0);
  const Tensor<float> y1 = layer.forward(x, c1);
  CHECK(y1.to_host() == y0.to_host());
  const auto dy = Tensor<float>::randn({3, 5, 8}, rng);
  CHECK(layer.backward(dy, c1).to_host() == base.backward(dy, c0).to_host());

  const auto names = names_of(layer);
  CHECK(std::find(names.begin(), names.end(), "experts.expert_0.wi.lora_A.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "experts.expert_3.wo.lora_B.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "router.classifier.weight") != names.end());

  std::vector<std::vector<float>> frozen;
  layer.visit_params([&](const std::string& name, nexa::Param<float>& p) {
    if (name.find("lora_") == std::string::npos) frozen.push_back(p.value.to_host());
  });
  nexa::train::AdamW opt(layer, {.lr = 1e-2});
  CHECK(opt.num_params() == 4u * 4u);  // 4 experts x (wi, wo) x (A, B)
  for (const auto& name : opt.param_names()) CHECK(name.find("lora_") != std::string::npos);
  for (int step = 0; step < 2; ++step) {
    opt.zero_grad();
    decltype(layer)::Cache c;
    (void)layer.forward(x, c);
    (void)layer.backward(dy, c);
    opt.step();
  }
  std::size_t i = 0;
  layer.visit_params([&](const std::string& name, nexa::Param<float>& p) {
    if (name.find("lora_") == std::string::npos) CHECK(p.value.to_host() == frozen[i++]);
  });
  CHECK(i == frozen.size());
  decltype(layer)::Cache c;
  const Tensor<float> y2 = layer.forward(x, c);
  CHECK(y2.to_host() != y0.to_host());  // the adapters moved the output
}

TEST_CASE("with_lora freezes the router and the shared expert too") {
  using Base = MoELayer<TopKRouter<2>, T5FFN<Relu>, nexa::SharedExpert<T5FFN<Relu>>>;
  nexa::Rng rng(22);
  Base base({.d_model = 8, .d_ff = 16, .num_experts = 3}, rng);
  Base copy = base;
  auto layer = nexa::with_lora(std::move(copy), {.r = 2}, rng);
  auto x = Tensor<float>::randn({7, 8}, rng);
  Base::Cache c0;
  decltype(layer)::Cache c1;
  CHECK(layer.forward(x, c1).to_host() == base.forward(x, c0).to_host());
  std::size_t trainable = 0, shared = 0;
  layer.visit_params([&](const std::string& name, nexa::Param<float>& p) {
    if (name.starts_with("shared_expert")) ++shared;
    if (p.trainable) {
      ++trainable;
      CHECK(name.find(".lora_") != std::string::npos);
    }
  });
  CHECK(shared > 0);
  CHECK(trainable == 3u * 4u);
  CHECK_THROWS_WITH_AS(nexa::with_lora(Base(base), {.r = 0}, rng), doctest::Contains("LoRA: r must be positive"),
                       Error);
}

TEST_CASE("MoELayer<LoRA<T5FFN>> built from an ExpertConfig runs forward and backward in double") {
  nexa::Rng rng(21);
  MoELayer<TopKRouter<1>, LoRA<T5FFN<GatedGelu>>, nexa::NoShared, nexa::cpu, double> layer(
      {.d_model = 6, .d_ff = 8, .num_experts = 3, .load_balance_coef = 0, .z_loss_coef = 0}, rng);
  layer.visit_params([&](const std::string& name, nexa::Param<double>& p) {
    if (name.ends_with("lora_B.weight")) p.value = Tensor<double>::randn(p.value.shape(), rng, 0.5);
  });
  auto x = Tensor<double>::randn({5, 6}, rng);
  const auto r = Tensor<double>::randn({5, 6}, rng);
  auto loss = [&] {
    decltype(layer)::Cache c;
    return nexa::testing::weighted_sum(layer.forward(x, c), r);
  };
  nexa::testing::zero_grads(layer);
  decltype(layer)::Cache cache;
  (void)layer.forward(x, cache);
  (void)layer.backward(r, cache);
  for (const auto& [name, param] : nexa::testing::trainable_params(layer)) {
    INFO(name);
    CHECK(nexa::testing::gradient_error(loss, param->value.data(), param->numel(), param->grad.data()) < 1e-6);
  }
}
