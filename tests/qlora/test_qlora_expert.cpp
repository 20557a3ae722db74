#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "nexa/lora/adapters_io.hpp"
#include "nexa/lora/qlora_expert.hpp"
#include "nexa/moe/topk_router.hpp"
#include "nexa/train/train.hpp"
#include "support/gradcheck.hpp"

namespace qlora_expert_test {
namespace {

using nexa::index_t;
using nexa::LoRA;
using nexa::MoELayer;
using nexa::NF4;
using nexa::QuantizedExpert;
using nexa::Relu;
using nexa::T5FFN;
using nexa::Tensor;
using nexa::TopKRouter;

template <class Act>
using QLoRAExpert = LoRA<QuantizedExpert<T5FFN<Act>, NF4>>;

static_assert(nexa::Expert<QLoRAExpert<Relu>>);
static_assert(nexa::Expert<QLoRAExpert<nexa::GatedGelu>>);

template <class M>
std::vector<std::string> names_of(M& m) {
  std::vector<std::string> out;
  m.visit_params([&](const std::string& name, auto&) { out.push_back(name); });
  return out;
}

template <class T>
double max_abs_diff(const Tensor<T>& a, const Tensor<T>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (index_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
  return m;
}
template <class T>
double max_abs(const Tensor<T>& a) {
  double m = 0;
  for (index_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(double(a.data()[i])));
  return m;
}

template <class Act>
void check_step0(std::uint64_t seed) {
  nexa::Rng rng(seed);
  QuantizedExpert<T5FFN<Act>, NF4> base(T5FFN<Act>({.d_model = 16, .d_ff = 40}, rng));
  QLoRAExpert<Act> m(base, {.r = 4, .alpha = 8}, rng);
  const auto x = Tensor<float>::randn({7, 16}, rng);
  typename QuantizedExpert<T5FFN<Act>, NF4>::Cache c0;
  typename QLoRAExpert<Act>::Cache c1;
  CHECK(m.forward(x, c1).to_host() == base.forward(x, c0).to_host());
  const auto dy = Tensor<float>::randn({7, 16}, rng);
  CHECK(m.backward(dy, c1).to_host() == base.backward(dy, c0).to_host());
}

// Central differences in double over A, B of every adapter and over x (expert and adapter
// dropouts on, replayed by rewinding their streams).
template <class Act>
void check_gradients(std::uint64_t seed) {
  using M = LoRA<QuantizedExpert<T5FFN<Act>, NF4>, double>;
  nexa::Rng rng(seed);
  M m({.d_model = 6, .d_ff = 80, .dropout = 0.2}, {.r = 3, .alpha = 6, .dropout = 0.25}, rng);
  m.base.set_tile_rows(32);  // several tiles per GEMM
  m.visit_params([&](const std::string& name, nexa::Param<double>& p) {
    if (name.ends_with("lora_B.weight")) p.value = Tensor<double>::randn(p.value.shape(), rng, 0.5);
  });
  auto x = Tensor<double>::randn({5, 6}, rng);
  const auto r = Tensor<double>::randn({5, 6}, rng);
  auto rewind = [&] { m.visit_dropouts([](auto& d) { d.rewind(0); }); };
  auto loss = [&] {
    rewind();
    typename M::Cache c;
    return nexa::testing::weighted_sum(m.forward(x, c), r);
  };
  rewind();
  nexa::testing::zero_grads(m);
  typename M::Cache cache;
  (void)m.forward(x, cache);
  const Tensor<double> dx = m.backward(r, cache);
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  const auto params = nexa::testing::trainable_params(m);
  CHECK(params.size() == (nexa::quant_detail::ExpertAct<Act>::gated ? 6u : 4u));
  for (const auto& [name, param] : params) {
    INFO(name);
    CHECK(name.find("lora_") != std::string::npos);
    CHECK(nexa::testing::gradient_error(loss, param->value.data(), param->numel(), param->grad.data()) < 1e-6);
  }
}

}  // namespace

TEST_CASE("LoRA<QuantizedExpert>: peft names, adapters only, equal to the NF4 expert at step 0") {
  nexa::Rng rng(31);
  QLoRAExpert<Relu> relu({.d_model = 8, .d_ff = 12}, {.r = 2, .alpha = 4}, rng);
  CHECK(names_of(relu) ==
        std::vector<std::string>{"wi.lora_A.weight", "wi.lora_B.weight", "wo.lora_A.weight", "wo.lora_B.weight"});
  QLoRAExpert<nexa::GatedGelu> gated({.d_model = 8, .d_ff = 12}, rng);
  CHECK(names_of(gated).size() == 6u);
  CHECK(names_of(gated).front() == "wi_0.lora_A.weight");
  check_step0<Relu>(32);
  check_step0<nexa::GatedGelu>(33);
}

TEST_CASE("LoRA<QuantizedExpert> gradients in double equal central differences") {
  check_gradients<Relu>(34);
  check_gradients<nexa::Gelu>(35);
  check_gradients<nexa::GatedGelu>(36);
}

TEST_CASE("LoRA<QuantizedExpert> equals LoRA<T5FFN> over the dequantised expert, forward and backward") {
  nexa::Rng rng(37);
  QuantizedExpert<T5FFN<Relu>, NF4> qbase(T5FFN<Relu>({.d_model = 32, .d_ff = 96}, rng));
  nexa::Rng scratch(1), ra(5), rb(5);
  QLoRAExpert<Relu> q(qbase, {.r = 4, .alpha = 8}, ra);
  LoRA<T5FFN<Relu>> d(qbase.dequantized(scratch), {.r = 4, .alpha = 8}, rb);
  nexa::Rng rv(6);
  q.wi.lora_B.value = Tensor<float>::randn(q.wi.lora_B.value.shape(), rv, 0.05);
  q.wo.lora_B.value = Tensor<float>::randn(q.wo.lora_B.value.shape(), rv, 0.05);
  d.wi.lora_B.value = q.wi.lora_B.value;
  d.wo.lora_B.value = q.wo.lora_B.value;
  const auto x = Tensor<float>::randn({9, 32}, rng);
  const auto dy = Tensor<float>::randn({9, 32}, rng);
  decltype(q)::Cache cq;
  decltype(d)::Cache cd;
  const auto yq = q.forward(x, cq);
  const auto yd = d.forward(x, cd);
  CHECK(max_abs_diff(yq, yd) <= 1e-5 * max_abs(yd));
  const auto dxq = q.backward(dy, cq);
  const auto dxd = d.backward(dy, cd);
  CHECK(max_abs_diff(dxq, dxd) <= 1e-5 * max_abs(dxd));
  CHECK(max_abs_diff(q.wi.lora_A.grad, d.wi.lora_A.grad) <= 1e-5 * max_abs(d.wi.lora_A.grad));
  CHECK(max_abs_diff(q.wo.lora_B.grad, d.wo.lora_B.grad) <= 1e-5 * max_abs(d.wo.lora_B.grad));
  // The dense expert with the adapters merged computes the same.
  nexa::Rng scratch2(2);
  auto merged = q.dequantized_with_adapters(scratch2);
  decltype(merged)::Cache cm;
  CHECK(max_abs_diff(merged.forward(x, cm), yq) <= 1e-5 * max_abs(yq));
}

TEST_CASE("MoELayer of NF4 experts with LoRA: AdamW moves only the adapters; saved adapters reload exactly") {
  using Dense = MoELayer<TopKRouter<1>, T5FFN<Relu>>;
  nexa::Rng rng(38);
  const Dense trained({.d_model = 16, .d_ff = 64, .num_experts = 3}, rng);
  auto make = [&](std::uint64_t seed) {
    nexa::Rng adapters(seed);
    Dense copy = trained;
    return nexa::with_lora(nexa::with_quantized_experts<NF4>(std::move(copy)), {.r = 4, .alpha = 8}, adapters);
  };
  auto layer = make(1);
  static_assert(std::same_as<decltype(layer), MoELayer<TopKRouter<1>, QLoRAExpert<Relu>>>);
  const auto codes = layer.experts[0].base.wi().codes;
  nexa::train::AdamW opt(layer, {.lr = 1e-2, .weight_decay = 0.0});
  CHECK(opt.num_params() == 3u * 4u);  // 3 experts x (wi, wo) x (A, B): the router is frozen
  for (const auto& name : opt.param_names()) CHECK(nexa::is_lora_param(name));
  const auto x = Tensor<float>::randn({4, 6, 16}, rng);
  const auto dy = Tensor<float>::randn({4, 6, 16}, rng);
  decltype(layer)::Cache c0;
  const auto y0 = layer.forward(x, c0);
  for (int step = 0; step < 3; ++step) {
    decltype(layer)::Cache c;
    (void)layer.forward(x, c);
    (void)layer.backward(dy, c);
    opt.step();
    opt.zero_grad();
  }
  CHECK(layer.experts[0].base.wi().codes == codes);
  decltype(layer)::Cache c1;
  const auto y1 = layer.forward(x, c1);
  CHECK(y1.to_host() != y0.to_host());

  const auto path = std::filesystem::temp_directory_path() / "nexa_test_qlora_expert_adapters.safetensors";
  nexa::save_adapters(layer, path, "base_model.model");
  auto fresh = make(99);  // other adapters, the same quantised base
  decltype(fresh)::Cache cf;
  CHECK(fresh.forward(x, cf).to_host() != y1.to_host());
  nexa::load_adapters(fresh, path, "base_model.model");
  decltype(fresh)::Cache cr;
  CHECK(fresh.forward(x, cr).to_host() == y1.to_host());
  std::filesystem::remove(path);
}

}  // namespace qlora_expert_test
