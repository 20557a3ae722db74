#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "nexa/moe.hpp"
#include "support/gradcheck.hpp"

using nexa::Tensor;

namespace moe_layer_test {
namespace {

// The same layer computed token by token, straight from the definitions.
template <class Layer>
Tensor<double> naive_moe(Layer& layer, const Tensor<double>& x) {
  const auto& cfg = layer.config();
  const nexa::index_t tokens = x.rows(), d = cfg.d_model, n = cfg.num_experts;
  Tensor<double> y({tokens, d});
  for (nexa::index_t t = 0; t < tokens; ++t) {
    std::vector<double> p(static_cast<std::size_t>(n));
    for (nexa::index_t e = 0; e < n; ++e) {
      double z = 0;
      for (nexa::index_t c = 0; c < d; ++c) z += layer.router.weight.value(e, c) * x(t, c);
      p[static_cast<std::size_t>(e)] = z;
    }
    const double zmax = *std::max_element(p.begin(), p.end());
    double sum = 0;
    for (double& v : p) sum += (v = std::exp(v - zmax));
    for (double& v : p) v /= sum;
    std::vector<int> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    double chosen = 0;
    for (int j = 0; j < Layer::k; ++j) chosen += p[static_cast<std::size_t>(order[j])];
    auto row = Tensor<double>::uninitialized({1, d});
    std::copy_n(x.data() + t * d, d, row.data());
    for (int j = 0; j < Layer::k; ++j) {
      const int e = order[static_cast<std::size_t>(j)];
      const double w =
          cfg.renormalize && Layer::k > 1 ? p[static_cast<std::size_t>(e)] / chosen : p[static_cast<std::size_t>(e)];
      typename Layer::ExpertT::Cache c;
      auto out = layer.experts[static_cast<std::size_t>(e)].forward(row, c);
      for (nexa::index_t col = 0; col < d; ++col) y(t, col) += w * out(0, col);
    }
    if constexpr (Layer::has_shared) {
      typename Layer::SharedT::Cache c;
      auto out = layer.shared.forward(row, c);
      for (nexa::index_t col = 0; col < d; ++col) y(t, col) += out(0, col);
    }
  }
  return y;
}

template <class Layer>
void check_layer(const nexa::MoEConfig& cfg, std::uint64_t seed) {
  nexa::Rng rng(seed);
  Layer layer(cfg, rng);
  auto x = Tensor<double>::randn({3, 4, cfg.d_model}, rng);  // [batch, seq, d]
  auto r = Tensor<double>::randn({3, 4, cfg.d_model}, rng);
  typename Layer::Cache cache;
  auto y = layer.forward(x, cache);
  REQUIRE(y.shape() == x.shape());

  auto flat = x;
  flat.reshape({12, cfg.d_model});
  auto ref = naive_moe(layer, flat);
  double max_err = 0;
  for (nexa::index_t i = 0; i < y.numel(); ++i) max_err = std::max(max_err, std::abs(y.data()[i] - ref.data()[i]));
  CHECK(max_err < 1e-12);

  auto dx = layer.backward(r, cache);
  auto loss = [&] {
    typename Layer::Cache c;
    auto out = layer.forward(x, c);
    return nexa::testing::weighted_sum(out, r) + c.aux_loss();
  };
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  for (auto& [name, p] : nexa::testing::trainable_params(layer)) {
    const std::string param_name = name;  // clang cannot capture a structured binding
    INFO(param_name);
    CHECK(nexa::testing::gradient_error(loss, p->value.data(), p->numel(), p->grad.data()) < 1e-6);
  }
}

const nexa::MoEConfig small{.d_model = 6, .d_ff = 8, .num_experts = 4, .load_balance_coef = 0.1, .z_loss_coef = 0.05};

}  // namespace

TEST_CASE("MoE layer equals the token-by-token reference and its gradients check (every part)") {
  using namespace nexa;
  SUBCASE("top-1, ReLU experts") {
    check_layer<MoELayer<TopKRouter<1>, T5FFN<Relu>, NoShared, cpu, double>>(small, 40);
  }
  SUBCASE("top-2, gated-GELU experts, renormalised") {
    check_layer<MoELayer<TopKRouter<2>, T5FFN<GatedGelu>, NoShared, cpu, double>>(small, 41);
  }
  SUBCASE("top-2 without renormalisation") {
    auto cfg = small;
    cfg.renormalize = false;
    check_layer<MoELayer<TopKRouter<2>, T5FFN<Relu>, NoShared, cpu, double>>(cfg, 42);
  }
  SUBCASE("shared expert, fixed scale 0.2") {
    check_layer<MoELayer<TopKRouter<2>, T5FFN<Relu>, SharedExpert<T5FFN<Relu>>, cpu, double>>(small, 43);
  }
  SUBCASE("shared expert, learnable scale, frozen router") {
    check_layer<
        MoELayer<TopKRouter<2, Frozen>, T5FFN<GatedGelu>, SharedExpert<T5FFN<GatedGelu>, LearnableScale>, cpu, double>>(
        small, 44);
  }
  SUBCASE("top-4 of 4 (every expert active)") {
    check_layer<MoELayer<TopKRouter<4>, T5FFN<Relu>, NoShared, cpu, double>>(small, 45);
  }
}

TEST_CASE("The shared expert adds scale * shared(x) to the routed output") {
  using namespace nexa;
  using WithShared = MoELayer<TopKRouter<2>, T5FFN<Relu>, SharedExpert<T5FFN<Relu>>, cpu, double>;
  Rng rng(50);
  WithShared layer({.d_model = 4, .d_ff = 6, .num_experts = 3}, rng);
  CHECK(layer.shared.scale_value() == doctest::Approx(0.2));
  CHECK_FALSE(layer.shared.scale.trainable);
  auto x = Tensor<double>::randn({5, 4}, rng);
  WithShared::Cache cache;
  auto y = layer.forward(x, cache);
  // Remove the routed part by hand: y - routed must equal 0.2 * FFN_shared(x).
  T5FFN<Relu, double>::Cache sc;
  auto shared_out = layer.shared.expert.forward(x, sc);
  Tensor<double> routed({5, 4});
  ops::weighted_combine(cache.expert_out, cache.plan, cache.router.routing.weights.data(), routed);
  for (index_t i = 0; i < y.numel(); ++i)
    CHECK(y.data()[i] - routed.data()[i] == doctest::Approx(0.2 * shared_out.data()[i]));
}

TEST_CASE("Parameter names follow Hugging Face Switch Transformers") {
  using namespace nexa;
  Rng rng(51);
  MoELayer<TopKRouter<2>, T5FFN<Relu>, SharedExpert<T5FFN<Relu>>> layer({.d_model = 4, .d_ff = 6, .num_experts = 2},
                                                                        rng);
  std::vector<std::string> names;
  layer.visit_params([&](const std::string& n, auto&) { names.push_back(n); }, "layer.1.mlp");
  CHECK(names ==
        std::vector<std::string>{"layer.1.mlp.router.classifier.weight", "layer.1.mlp.experts.expert_0.wi.weight",
                                 "layer.1.mlp.experts.expert_0.wo.weight", "layer.1.mlp.experts.expert_1.wi.weight",
                                 "layer.1.mlp.experts.expert_1.wo.weight", "layer.1.mlp.shared_expert.wi.weight",
                                 "layer.1.mlp.shared_expert.wo.weight", "layer.1.mlp.shared_expert.scale"});
}

TEST_CASE("Dropless: every token reaches its k experts, even when all pick the same one") {
  using namespace nexa;
  Rng rng(52);
  MoELayer<TopKRouter<1>, T5FFN<Relu>> layer({.d_model = 4, .d_ff = 6, .num_experts = 3}, rng);
  layer.router.weight.value = Tensor<float>::from_host({3, 4}, {0, 0, 0, 0, 5, 5, 5, 5, 0, 0, 0, 0});
  auto x = Tensor<float>::full({64, 4}, 1.0f);
  decltype(layer)::Cache cache;
  (void)layer.forward(x, cache);
  CHECK(cache.tokens_per_expert() == std::vector<index_t>{0, 64, 0});
}

TEST_CASE("MoE layer reports bad shapes and configs") {
  using namespace nexa;
  Rng rng(53);
  CHECK_THROWS_WITH_AS((MoELayer<TopKRouter<2>, T5FFN<Relu>>({.d_model = 4, .d_ff = 6, .num_experts = 1}, rng)),
                       doctest::Contains("num_experts must be at least k = 2, got 1"), Error);
  MoELayer<TopKRouter<2>, T5FFN<Relu>> layer({.d_model = 4, .d_ff = 6, .num_experts = 3}, rng);
  decltype(layer)::Cache cache;
  CHECK_THROWS_WITH_AS((void)layer.forward(Tensor<float>({5, 3}), cache), doctest::Contains("MoELayer"), Error);
  (void)layer.forward(Tensor<float>({5, 4}), cache);
  CHECK_THROWS_WITH_AS((void)layer.backward(Tensor<float>({4, 4}), cache), doctest::Contains("[5, 4]"), Error);
}

}  // namespace moe_layer_test
