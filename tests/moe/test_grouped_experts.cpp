// MoELayer runs T5FFN experts grouped (moe/grouped_t5_ffn.hpp: one grouped GEMM per projection,
// one activation call over every slot). On the CPU that must be bitwise the expert-by-expert
// path, which the same expert seen under another type still takes: outputs, dx and every
// gradient, with dropout, a capacity limit, experts nobody reaches and a frozen expert.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nexa/moe.hpp"

using nexa::Tensor;

namespace grouped_experts_test {
namespace {

// T5FFN under another name: no GroupedExperts specialisation, so MoELayer loops over experts.
template <class Act, class T = float, class D = nexa::cpu>
struct PerExpertT5FFN : nexa::T5FFN<Act, T, D> {
  using nexa::T5FFN<Act, T, D>::T5FFN;
  template <class T2, class D2>
  using rebind = PerExpertT5FFN<Act, T2, D2>;
};

static_assert(nexa::GroupedExpertType<nexa::T5FFN<nexa::Relu>>);
static_assert(nexa::GroupedExpertType<nexa::T5FFN<nexa::GatedGelu, double>>);
static_assert(!nexa::GroupedExpertType<PerExpertT5FFN<nexa::Relu>>);

template <class Layer>
std::vector<std::pair<std::string, std::vector<float>>> grads_of(Layer& layer) {
  std::vector<std::pair<std::string, std::vector<float>>> out;
  layer.visit_params([&](const std::string& name, auto& p) {
    if (p.trainable) out.emplace_back(name, p.grad.to_host());
  });
  return out;
}

template <class Act>
void compare_paths(const nexa::MoEConfig& config, nexa::index_t tokens, bool freeze_one, std::uint64_t seed) {
  CAPTURE(tokens);
  CAPTURE(config.num_experts);
  CAPTURE(config.capacity_factor);
  using Grouped = nexa::MoELayer<nexa::TopKRouter<2>, nexa::T5FFN<Act>, nexa::NoShared, nexa::cpu, float>;
  using Looped = nexa::MoELayer<nexa::TopKRouter<2>, PerExpertT5FFN<Act>, nexa::NoShared, nexa::cpu, float>;
  static_assert(Grouped::grouped && !Looped::grouped);
  nexa::Rng rng_a(seed), rng_b(seed), data(seed + 1);
  Grouped grouped(config, rng_a);
  Looped looped(config, rng_b);
  grouped.set_training(true);
  looped.set_training(true);
  if (freeze_one) {  // expert 1's input projection(s): no gradient there, dx still flows
    const auto freeze = [](const std::string& name, auto& p) {
      if (name.starts_with("experts.expert_1.wi")) p.set_trainable(false);
    };
    grouped.visit_params(freeze);
    looped.visit_params(freeze);
  }
  const auto x = Tensor<float>::randn({tokens, config.d_model}, data);
  const auto dy = Tensor<float>::randn({tokens, config.d_model}, data);
  typename Grouped::Cache cg;
  typename Looped::Cache cl;
  // Two steps: the second reuses the caches and draws new dropout masks.
  for (int step = 0; step < 2; ++step) {
    CAPTURE(step);
    const auto yg = grouped.forward(x.cview(), cg);
    const auto yl = looped.forward(x.cview(), cl);
    CHECK(yg.to_host() == yl.to_host());
    CHECK(cg.tokens_per_expert() == cl.tokens_per_expert());
    const auto dxg = grouped.backward(dy.cview(), cg);
    const auto dxl = looped.backward(dy.cview(), cl);
    CHECK(dxg.to_host() == dxl.to_host());
    const auto gg = grads_of(grouped), gl = grads_of(looped);
    REQUIRE(gg.size() == gl.size());
    for (std::size_t i = 0; i < gg.size(); ++i) {
      CAPTURE(gg[i].first);
      CHECK(gg[i].first == gl[i].first);
      CHECK(gg[i].second == gl[i].second);
    }
  }
}

}  // namespace

TEST_CASE("grouped T5FFN experts are bitwise the expert-by-expert path (relu, dropout)") {
  const nexa::MoEConfig config{.d_model = 24, .d_ff = 40, .num_experts = 4, .dropout = 0.2};
  compare_paths<nexa::Relu>(config, 37, false, 11);
  compare_paths<nexa::Relu>(config, 1, false, 12);
}

TEST_CASE("grouped T5FFN experts are bitwise the expert-by-expert path (gated-gelu, frozen expert, unused experts)") {
  const nexa::MoEConfig config{.d_model = 16, .d_ff = 24, .num_experts = 9, .dropout = 0.1};
  compare_paths<nexa::GatedGelu>(config, 5, true, 13);  // 10 assignments over 9 experts: some get none
  compare_paths<nexa::Silu>(config, 64, true, 14);
}

TEST_CASE("grouped T5FFN experts are bitwise the expert-by-expert path under a capacity limit") {
  const nexa::MoEConfig config{.d_model = 16, .d_ff = 32, .num_experts = 4, .capacity_factor = 0.6};
  compare_paths<nexa::Relu>(config, 50, false, 15);
  compare_paths<nexa::GatedGelu>(config, 50, false, 16);
}

}  // namespace grouped_experts_test
