#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>

#include "nexa/io/safetensors.hpp"
#include "nexa/moe.hpp"
#include "nexa/train/train.hpp"

using nexa::Tensor;

namespace moe_training_test {
namespace {
using Layer = nexa::MoELayer<nexa::TopKRouter<2, nexa::Frozen>, nexa::T5FFN<nexa::GatedGelu>,
                             nexa::SharedExpert<nexa::T5FFN<nexa::GatedGelu>>>;
const nexa::MoEConfig config{.d_model = 16, .d_ff = 32, .num_experts = 4};

std::filesystem::path temp_file(const char* name) {
  return std::filesystem::temp_directory_path() / (std::string("nexa_test_moe_") + name);
}
}  // namespace

TEST_CASE("An AdamW step leaves a frozen router bit-identical and moves everything else") {
  nexa::Rng rng(70);
  Layer layer(config, rng);
  const std::vector<float> router_before = layer.router.weight.value.to_host();
  const std::vector<float> expert_before = layer.experts[0].wo.value.to_host();
  nexa::train::AdamW optimizer(layer, {.lr = 1e-2});
  // No optimizer state for the frozen router or the fixed shared scale.
  CHECK(optimizer.param_names().size() == 4 * 3 + 3);
  auto x = Tensor<float>::randn({64, 16}, rng);
  auto target = Tensor<float>::randn({64, 16}, rng);
  for (int step = 0; step < 3; ++step) {
    Layer::Cache cache;
    auto [loss, dy] = nexa::train::mse(layer.forward(x, cache), target);
    (void)layer.backward(dy, cache);
    optimizer.step();
    optimizer.zero_grad();
  }
  const std::vector<float> router_after = layer.router.weight.value.to_host();
  CHECK(std::memcmp(router_before.data(), router_after.data(), router_before.size() * sizeof(float)) == 0);
  CHECK(layer.experts[0].wo.value.to_host() != expert_before);
}

TEST_CASE("A saved and loaded MoE layer gives bitwise-identical outputs") {
  nexa::Rng rng(71);
  Layer original(config, rng);
  const auto path = temp_file("roundtrip.safetensors");
  nexa::save_safetensors(original, path);

  nexa::Rng other(99);  // different initial weights, all overwritten by the load
  Layer loaded(config, other);
  nexa::load_safetensors(loaded, path);
  auto x = Tensor<float>::randn({32, 16}, rng);
  Layer::Cache a, b;
  CHECK(original.forward(x, a).to_host() == loaded.forward(x, b).to_host());

  // A layer with a different expert count is rejected with the names that do not fit.
  nexa::MoELayer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::GatedGelu>> wider({.d_model = 16, .d_ff = 32, .num_experts = 5},
                                                                          rng);
  CHECK_THROWS_WITH_AS(nexa::load_safetensors(wider, path), doctest::Contains("experts.expert_4"), nexa::Error);
  std::filesystem::remove(path);
}

TEST_CASE("An MoE layer fits a small regression: the loss falls") {
  nexa::Rng rng(72);
  nexa::MoELayer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::Relu>> layer({.d_model = 8, .d_ff = 32, .num_experts = 4}, rng);
  nexa::train::AdamW optimizer(layer, {.lr = 1e-2, .weight_decay = 0.0});
  auto x = Tensor<float>::randn({128, 8}, rng);
  auto target = Tensor<float>::randn({128, 8}, rng, 0.5);
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    decltype(layer)::Cache cache;
    auto [loss, dy] = nexa::train::mse(layer.forward(x, cache), target);
    (void)layer.backward(dy, cache);
    optimizer.step();
    optimizer.zero_grad();
    if (step == 0) first = loss;
    last = loss;
  }
  CHECK(last < 0.5 * first);
}

}  // namespace moe_training_test
