#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "nexa/lora/adapters_io.hpp"
#include "nexa/lora/lora_expert.hpp"
#include "nexa/moe/topk_router.hpp"

using nexa::Error;
using nexa::Linear;
using nexa::LoRA;
using nexa::MoELayer;
using nexa::Relu;
using nexa::T5FFN;
using nexa::Tensor;
using nexa::TopKRouter;

namespace {

std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("nexa_lora_" + std::to_string(::getpid()) + "_" + name);
}

template <class M>
void randomise_adapters(M& m, nexa::Rng& rng) {
  m.visit_params([&](const std::string& name, nexa::Param<float>& p) {
    if (nexa::is_lora_param(name)) p.value = Tensor<float>::randn(p.value.shape(), rng);
  });
}

template <class M>
std::vector<std::vector<float>> values(M& m, bool lora) {
  std::vector<std::vector<float>> out;
  m.visit_params([&](const std::string& name, nexa::Param<float>& p) {
    if (nexa::is_lora_param(name) == lora) out.push_back(p.value.to_host());
  });
  return out;
}

}  // namespace

TEST_CASE("is_lora_param matches peft's adapter names only") {
  CHECK(nexa::is_lora_param("lora_A.weight"));
  CHECK(nexa::is_lora_param("experts.expert_0.wi.lora_B.weight"));
  CHECK_FALSE(nexa::is_lora_param("experts.expert_0.wi.weight"));
  CHECK_FALSE(nexa::is_lora_param("x.notlora_A.weight"));
  CHECK_FALSE(nexa::is_lora_param("lora_A.bias"));
}

TEST_CASE("save_adapters writes only the adapters, under peft's names; load_adapters restores them") {
  using Layer = MoELayer<TopKRouter<2>, LoRA<T5FFN<Relu>>>;
  nexa::Rng rng(30);
  Layer a({.d_model = 8, .d_ff = 12, .num_experts = 3}, rng);
  randomise_adapters(a, rng);
  const auto path = temp_path("moe.safetensors");
  nexa::save_adapters(a, path, "base_model.model");

  nexa::SafetensorsReader reader(path);
  const auto names = reader.names();
  CHECK(names.size() == 3u * 2u * 2u);
  for (const auto& n : names) {
    CHECK(n.starts_with("base_model.model.experts.expert_"));
    CHECK(nexa::is_lora_param(n));
  }
  CHECK(reader.contains("base_model.model.experts.expert_2.wo.lora_B.weight"));
  CHECK(reader.info("base_model.model.experts.expert_0.wi.lora_A.weight").shape == nexa::Shape{8, 8});
  CHECK(reader.info("base_model.model.experts.expert_0.wi.lora_B.weight").shape == nexa::Shape{12, 8});

  nexa::Rng other(31);
  Layer b({.d_model = 8, .d_ff = 12, .num_experts = 3}, other);
  const auto base_before = values(b, false);
  nexa::load_adapters(b, path, "base_model.model");
  CHECK(values(b, true) == values(a, true));
  CHECK(values(b, false) == base_before);  // the base is untouched

  // Without the prefix nothing matches: one error lists every missing tensor.
  CHECK_THROWS_WITH_AS(nexa::load_adapters(b, path), doctest::Contains("missing tensors (12)"), Error);
  nexa::load_adapters(b, path, "base_model.model", /*strict=*/true);
  std::filesystem::remove(path);
}

TEST_CASE("adapter files: shape mismatches and modules without adapters are errors") {
  nexa::Rng rng(32);
  LoRA<Linear<>> small({.base = {.in_features = 4, .out_features = 3}, .lora = {.r = 2}}, rng);
  LoRA<Linear<>> wider({.base = {.in_features = 4, .out_features = 3}, .lora = {.r = 4}}, rng);
  const auto path = temp_path("linear.safetensors");
  nexa::save_adapters(small, path);
  CHECK(nexa::SafetensorsReader(path).names() == std::vector<std::string>{"lora_A.weight", "lora_B.weight"});
  CHECK_THROWS_WITH_AS(nexa::load_adapters(wider, path), doctest::Contains("shape expected [4, 4], got [2, 4]"), Error);
  Linear<> plain({.in_features = 4, .out_features = 3}, rng);
  CHECK_THROWS_WITH_AS(nexa::save_adapters(plain, path), doctest::Contains("LoRA: save_adapters"), Error);
  std::filesystem::remove(path);
}
