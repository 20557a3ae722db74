#include <doctest/doctest.h>

#include <algorithm>

#include "nexa/moe.hpp"
#include "support/gradcheck.hpp"

using nexa::Tensor;

namespace nexus_router_test {
namespace {
using Router = nexa::NexusRouter<2, double>;
const nexa::RouterConfig router_config{.d_model = 6,
                                       .num_experts = 3,
                                       .load_balance_coef = 0.1,
                                       .z_loss_coef = 0.05,
                                       .domain_dim = 5,
                                       .projection_hidden = 4,
                                       .score_scale = 0.7};
using Layer = nexa::MoELayer<nexa::NexusRouter<2>, nexa::T5FFN<nexa::Relu>, nexa::NoShared, nexa::cpu, double>;
const nexa::MoEConfig layer_config{.d_model = 6,
                                   .d_ff = 8,
                                   .num_experts = 3,
                                   .load_balance_coef = 0.1,
                                   .z_loss_coef = 0.05,
                                   .domain_dim = 5,
                                   .projection_hidden = 4};

template <class Module>
void check_all_gradients(Module& m, const Tensor<double>& x, const Tensor<double>& dx,
                         const std::function<double()>& loss) {
  CHECK(nexa::testing::gradient_error(loss, const_cast<double*>(x.data()), x.numel(), dx.data()) < 1e-6);
  for (auto& [name, p] : nexa::testing::trainable_params(m)) {
    const std::string param_name = name;  // clang cannot capture a structured binding
    INFO(param_name);
    CHECK(nexa::testing::gradient_error(loss, p->value.data(), p->numel(), p->grad.data()) < 1e-6);
  }
}
}  // namespace

TEST_CASE("Nexus expert embeddings are W_down (silu(W_gate d) * W_up d)") {
  nexa::Rng rng(100);
  Router router(router_config, rng);
  const auto e = router.expert_embeddings();
  REQUIRE(e.shape() == nexa::Shape{3, 6});
  for (nexa::index_t i = 0; i < 3; ++i) {
    std::vector<double> h(4);
    for (nexa::index_t j = 0; j < 4; ++j) {
      double g = 0, u = 0;
      for (nexa::index_t c = 0; c < 5; ++c) {
        g += router.gate_proj.value(j, c) * router.domain_embeddings.value(i, c);
        u += router.up_proj.value(j, c) * router.domain_embeddings.value(i, c);
      }
      h[std::size_t(j)] = nexa::Silu::value(g) * u;
    }
    for (nexa::index_t o = 0; o < 6; ++o) {
      double ref = 0;
      for (nexa::index_t j = 0; j < 4; ++j) ref += router.down_proj.value(o, j) * h[std::size_t(j)];
      CHECK(e(i, o) == doctest::Approx(ref));
    }
  }
}

TEST_CASE("Nexus router gradients (projection, unfrozen domain embeddings, input) check") {
  nexa::Rng rng(101);
  Router router(router_config, rng);
  router.domain_embeddings.set_trainable(true);
  auto x = Tensor<double>::randn({7, 6}, rng, 2.0);
  auto r = Tensor<double>::randn({7, 2}, rng);
  Router::Cache cache;
  (void)router.route(x, cache);
  auto dx = router.backward(r.cview(), cache);
  check_all_gradients(router, x, dx, [&] {
    Router::Cache c;
    const auto& routing = router.route(x, c);
    return nexa::testing::weighted_sum(routing.weights, r) + c.aux.total();
  });
}

TEST_CASE("An MoE layer with the Nexus router checks, before and after add_expert") {
  nexa::Rng rng(102);
  Layer layer(layer_config, rng);
  auto x = Tensor<double>::randn({9, 6}, rng, 2.0);
  auto r = Tensor<double>::randn({9, 6}, rng);
  auto loss = [&] {
    Layer::Cache c;
    return nexa::testing::weighted_sum(layer.forward(x, c), r) + c.aux_loss();
  };
  {
    Layer::Cache cache;
    (void)layer.forward(x, cache);
    auto dx = layer.backward(r, cache);
    check_all_gradients(layer, x, dx, loss);
  }
  nexa::testing::zero_grads(layer);
  layer.add_expert(Tensor<double>::randn({5}, rng), nexa::T5FFN<nexa::Relu, double>(layer_config.expert(), rng));
  CHECK(layer.num_experts() == 4);
  Layer::Cache cache;
  (void)layer.forward(x, cache);
  auto dx = layer.backward(r, cache);
  check_all_gradients(layer, x, dx, loss);
}

TEST_CASE("add_expert: equals a layer built with E+1 experts; old routes change only where the new expert wins") {
  nexa::Rng rng(103);
  Layer layer(layer_config, rng);
  auto x = Tensor<double>::randn({64, 6}, rng, 2.0);
  Layer::Cache before;
  (void)layer.forward(x, before);

  const auto new_domain = Tensor<double>::randn({5}, rng);
  nexa::T5FFN<nexa::Relu, double> new_expert(layer_config.expert(), rng);
  layer.add_expert(new_domain, new_expert);
  Layer::Cache after;
  const auto y = layer.forward(x, after);

  // The same layer built from scratch with four experts.
  auto config = layer_config;
  config.num_experts = 4;
  nexa::Rng other(7);
  Layer scratch(config, other);
  std::map<std::string, Tensor<double>> values;
  layer.visit_params([&](const std::string& name, auto& p) { values[name] = p.value; });
  scratch.visit_params([&](const std::string& name, auto& p) {
    REQUIRE(values.count(name) == 1);
    REQUIRE(values[name].shape() == p.value.shape());
    p.value = values[name];
  });
  Layer::Cache sc;
  CHECK(scratch.forward(x, sc).to_host() == y.to_host());

  // Tokens whose top-2 does not include expert 3 keep their experts and (renormalised) weights.
  int unchanged = 0, rerouted = 0;
  for (nexa::index_t t = 0; t < 64; ++t) {
    const bool new_chosen = after.router.routing.experts(t, 0) == 3 || after.router.routing.experts(t, 1) == 3;
    if (new_chosen) {
      ++rerouted;
      // It was chosen because it outranks an old choice.
      const double p_new = after.router.routing.probs(t, 3);
      const int dropped = before.router.routing.experts(t, 1);
      CHECK(p_new >= after.router.routing.probs(t, dropped));
      continue;
    }
    ++unchanged;
    for (int j = 0; j < 2; ++j) {
      CHECK(after.router.routing.experts(t, j) == before.router.routing.experts(t, j));
      CHECK(after.router.routing.weights(t, j) == doctest::Approx(before.router.routing.weights(t, j)).epsilon(1e-12));
    }
  }
  CHECK(unchanged > 0);
  MESSAGE("tokens rerouted to the new expert: " << rerouted << " of 64");
  CHECK_THROWS_AS(layer.add_expert(Tensor<double>::randn({4}, rng), new_expert), nexa::Error);
}

TEST_CASE("nexus_merge keeps the running mean of the shared parameters") {
  nexa::Rng rng(104);
  nexa::Linear<double> merged({.in_features = 3, .out_features = 2, .bias = true}, rng);
  nexa::Linear<double> incoming({.in_features = 3, .out_features = 2, .bias = true}, rng);
  const auto a = merged.weight.value, b = incoming.weight.value;
  nexa::nexus_merge(merged, incoming, 2);  // lambda = 1/3: merged held the mean of two models
  for (nexa::index_t i = 0; i < a.numel(); ++i)
    CHECK(merged.weight.value.data()[i] == doctest::Approx(2.0 / 3.0 * a.data()[i] + 1.0 / 3.0 * b.data()[i]));
  nexa::Linear<double> other({.in_features = 4, .out_features = 2}, rng);
  CHECK_THROWS_WITH_AS(nexa::nexus_merge(merged, other, 1), doctest::Contains("weight (shape"), nexa::Error);
}

}  // namespace nexus_router_test
