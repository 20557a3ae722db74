#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "nexa/moe.hpp"
#include "nexa/moe/shared_expert_init.hpp"
#include "nexa/train/train.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {
// Router probabilities [tokens, E] = base + a_t * u + b_t * v, with a and b zero-mean and
// orthogonal over the tokens, so the covariance is var(a) u u^T + var(b) v v^T exactly.
std::vector<double> constructed_probs(index_t tokens, const std::vector<double>& base, const std::vector<double>& u,
                                      double a, const std::vector<double>& v, double b) {
  std::vector<double> p;
  for (index_t t = 0; t < tokens; ++t) {
    const double at = (t % 4 < 2) ? a : -a;   // + + - -
    const double bt = (t % 2 == 0) ? b : -b;  // + - + -
    for (std::size_t e = 0; e < base.size(); ++e) p.push_back(base[e] + at * u[e] + bt * v[e]);
  }
  return p;
}

std::map<std::string, std::vector<float>> snapshot(auto& module, bool trainable) {
  std::map<std::string, std::vector<float>> out;
  module.visit_params([&](const std::string& name, auto& p) {
    if (p.trainable != trainable) return;
    const auto host = p.value.to_host();
    out[name] = std::vector<float>(host.begin(), host.end());
  });
  return out;
}
}  // namespace

TEST_CASE("PCA scoring: experts 1 and 3 carry all the variance") {
  // Experts 0, 2 and 4 are constant; 1 and 3 trade probability mass: one component, loadings
  // +-1/sqrt(2) on experts 1 and 3, explained variance ratio 1.
  const auto probs = constructed_probs(64, {0.1, 0.3, 0.2, 0.3, 0.1}, {0, 1, 0, -1, 0}, 0.1, {0, 0, 0, 0, 0}, 0.0);
  const auto s = nexa::pca_expert_scores(probs, 64, 5, 20, 2);
  REQUIRE(s.explained_variance_ratio.size() == 5);  // min(20, tokens, E)
  CHECK(s.explained_variance_ratio[0] == doctest::Approx(1.0).epsilon(1e-12));
  for (std::size_t c = 1; c < 5; ++c) CHECK(std::abs(s.explained_variance_ratio[c]) < 1e-12);
  const double h = 1.0 / std::sqrt(2.0);
  const std::vector<double> expected{0, h, 0, h, 0};
  for (std::size_t e = 0; e < 5; ++e) CHECK(std::abs(s.scores[e] - expected[e]) < 1e-9);
  CHECK(std::set<index_t>(s.selected.begin(), s.selected.end()) == std::set<index_t>{1, 3});
  CHECK(s.importance_fraction == doctest::Approx(1.0).epsilon(1e-9));
}

TEST_CASE("PCA scoring: two components with explained variance 0.8 and 0.2") {
  // a = +-0.2 along (1, -1, 0, 0) and b = +-0.1 along (0, 0, 1, -1): eigenvalues in ratio 4 : 1,
  // loadings 1/sqrt(2), so the scores are 0.8/sqrt(2) (experts 0, 1) and 0.2/sqrt(2) (2, 3).
  const auto probs = constructed_probs(400, {0.25, 0.25, 0.25, 0.25}, {1, -1, 0, 0}, 0.2, {0, 0, 1, -1}, 0.1);
  const auto s = nexa::pca_expert_scores(probs, 400, 4, 20, 2);
  REQUIRE(s.explained_variance_ratio.size() == 4);
  CHECK(s.explained_variance_ratio[0] == doctest::Approx(0.8).epsilon(1e-12));
  CHECK(s.explained_variance_ratio[1] == doctest::Approx(0.2).epsilon(1e-12));
  const double h = 1.0 / std::sqrt(2.0);
  const std::vector<double> expected{0.8 * h, 0.8 * h, 0.2 * h, 0.2 * h};
  for (std::size_t e = 0; e < 4; ++e) CHECK(std::abs(s.scores[e] - expected[e]) < 1e-9);
  CHECK(std::set<index_t>(s.selected.begin(), s.selected.end()) == std::set<index_t>{0, 1});
  CHECK(s.importance_fraction == doctest::Approx(0.8).epsilon(1e-9));

  // One component only: experts 2 and 3 score nothing. K larger than E selects every expert.
  const auto one = nexa::pca_expert_scores(probs, 400, 4, 1, 24);
  REQUIRE(one.explained_variance_ratio.size() == 1);
  CHECK(std::abs(one.scores[2]) < 1e-9);
  CHECK(one.selected.size() == 4);
  CHECK(one.importance_fraction == doctest::Approx(1.0));
}

TEST_CASE("PCA scoring rejects bad input with nexa::Error") {
  const std::vector<double> constant(10 * 3, 1.0 / 3);
  CHECK_THROWS_WITH_AS((void)nexa::pca_expert_scores(constant, 10, 3), doctest::Contains("zero variance"), nexa::Error);
  CHECK_THROWS_AS((void)nexa::pca_expert_scores(constant, 10, 4), nexa::Error);
  CHECK_THROWS_AS((void)nexa::pca_expert_scores(constant, 10, 3, 0), nexa::Error);
}

TEST_CASE("Router probabilities are collected over batches, and the initialisations average experts") {
  using Layer = nexa::MoELayer<nexa::TopKRouter<2, nexa::Frozen>, nexa::T5FFN<nexa::Relu>,
                               nexa::SharedExpert<nexa::T5FFN<nexa::Relu>>>;
  nexa::Rng rng(500);
  Layer layer({.d_model = 8, .d_ff = 16, .num_experts = 6, .router_init_std = 0.5}, rng);
  std::vector<Tensor<float>> batches{Tensor<float>::randn({2, 10, 8}, rng), Tensor<float>::randn({7, 8}, rng)};
  const auto activity = nexa::collect_router_probabilities(layer, batches);
  REQUIRE(activity.tokens == 27);
  index_t assigned = 0;
  for (const auto n : activity.assignments) assigned += n;
  CHECK(assigned == 27 * 2);
  // The same probabilities as full forwards' router caches: the streamed covariance and the PCA
  // agree with the exact two-pass ones over the stored probabilities.
  std::vector<double> all;
  std::vector<index_t> counts(6, 0);
  for (const auto& batch : batches) {
    Layer::Cache cache;
    (void)layer.forward(batch, cache);
    for (const float p : cache.router.routing.probs.to_host()) all.push_back(p);
    for (const auto e : cache.router.routing.experts.to_host()) ++counts[static_cast<std::size_t>(e)];
  }
  CHECK(counts == activity.assignments);
  double total = 0;
  for (const double m : activity.mean_probability()) total += m;
  CHECK(total == doctest::Approx(1.0).epsilon(1e-6));
  const auto streamed = nexa::pca_expert_scores(activity, 20, 3);
  const auto exact = nexa::pca_expert_scores(all, 27, 6, 20, 3);
  CHECK(streamed.selected == exact.selected);
  for (std::size_t e = 0; e < 6; ++e) CHECK(streamed.scores[e] == doctest::Approx(exact.scores[e]).epsilon(1e-9));
  CHECK(streamed.importance_fraction == doctest::Approx(exact.importance_fraction).epsilon(1e-9));

  // Most activated: a bit-identical copy of that expert.
  nexa::init_shared_most_activated(layer, activity);
  const auto top = activity.ranked()[0];
  CHECK(layer.shared.expert.wi.value.to_host() == layer.experts[static_cast<std::size_t>(top)].wi.value.to_host());
  CHECK(layer.shared.expert.wo.value.to_host() == layer.experts[static_cast<std::size_t>(top)].wo.value.to_host());

  // Top-3 mean, and the PCA-guided mean of the selected experts: element-wise means.
  auto check_mean = [&](const std::vector<index_t>& chosen) {
    const auto got = layer.shared.expert.wi.value.to_host();
    for (std::size_t i = 0; i < got.size(); ++i) {
      double sum = 0;
      for (const index_t e : chosen) sum += layer.experts[static_cast<std::size_t>(e)].wi.value.data()[i];
      CHECK(got[i] == static_cast<float>(sum / static_cast<double>(chosen.size())));
    }
  };
  nexa::init_shared_top_activated(layer, activity, 3);
  auto ranked = activity.ranked();
  check_mean({ranked[0], ranked[1], ranked[2]});
  const auto scores = nexa::init_shared_pca(layer, activity, 20, 4);
  CHECK(scores.selected.size() == 4);
  CHECK(scores.importance_fraction > 0.0);
  CHECK(scores.importance_fraction <= 1.0 + 1e-12);
  check_mean(scores.selected);
  CHECK(layer.shared.scale_value() == doctest::Approx(0.2));

  // Random: N(0, 0.02).
  nexa::init_shared_random(layer.shared, rng);
  const auto w = layer.shared.expert.wi.value.to_host();
  double sq = 0;
  for (const float v : w) sq += double(v) * double(v);
  CHECK(std::sqrt(sq / double(w.size())) == doctest::Approx(0.02).epsilon(0.2));

  CHECK_THROWS_AS(nexa::init_shared_from_experts(layer.shared, layer.experts, {6}), nexa::Error);
  CHECK_THROWS_AS(nexa::init_shared_top_activated(layer, activity, 7), nexa::Error);
}

TEST_CASE_TEMPLATE("Training only the shared expert: the loss falls, the frozen MoE stays bit-identical", Scale,
                   nexa::FixedScale, nexa::LearnableScale) {
  using Layer =
      nexa::MoELayer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::Relu>, nexa::SharedExpert<nexa::T5FFN<nexa::Relu>, Scale>>;
  constexpr index_t d = 8, d_ff = 32, E = 4;
  nexa::Rng rng(501);
  Layer layer({.d_model = d, .d_ff = d_ff, .num_experts = E}, rng);
  nexa::freeze_routed(layer);
  auto x = Tensor<float>::randn({128, d}, rng);
  const auto activity = nexa::collect_router_probabilities(layer, std::vector<Tensor<float>>{x});
  (void)nexa::init_shared_pca(layer, activity, 20, 2);

  // Target: the frozen MoE plus 0.2 * a teacher FFN, which the shared expert can learn.
  nexa::T5FFN<nexa::Relu> teacher({.d_model = d, .d_ff = d_ff}, rng);
  nexa::T5FFN<nexa::Relu>::Cache teacher_cache;
  auto target = teacher.forward(x, teacher_cache);
  {
    typename Layer::Cache cache;
    const auto y = layer.forward(x, cache);
    for (index_t i = 0; i < target.numel(); ++i) target.data()[i] = y.data()[i] + 0.2f * target.data()[i];
  }

  const auto frozen_before = snapshot(layer, false);
  const index_t shared_params = 2 * d * d_ff + (std::same_as<Scale, nexa::LearnableScale> ? 1 : 0);
  const index_t total = E * d + E * 2 * d * d_ff + 2 * d * d_ff + 1;
  const auto report = nexa::trainable_report(layer);
  CHECK(report.trainable == shared_params);
  CHECK(report.total == total);
  CHECK(report.fraction() == doctest::Approx(double(shared_params) / double(total)));
  CHECK(report.gradient_bytes == static_cast<std::size_t>(shared_params) * sizeof(float));
  nexa::train::AdamW optimizer(layer, {.lr = 3e-3, .weight_decay = 0.0});
  CHECK(report.optimizer_bytes == optimizer.state_bytes());
  CHECK(optimizer.num_elements() == shared_params);
  for (const auto& name : optimizer.param_names()) CHECK(name.rfind("shared_expert.", 0) == 0);
  std::ostringstream text;
  text << report;
  CHECK(text.str().find("trainable") != std::string::npos);

  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    typename Layer::Cache cache;
    auto [loss, dy] = nexa::train::mse(layer.forward(x, cache), target);
    (void)layer.backward(dy, cache);
    optimizer.step();
    optimizer.zero_grad();
    if (step == 0) first = loss;
    last = loss;
  }
  MESSAGE("loss " << first << " -> " << last);
  CHECK(last < 0.3 * first);
  const auto frozen_after = snapshot(layer, false);
  REQUIRE(frozen_after.size() == frozen_before.size());
  for (const auto& [name, values] : frozen_before) {
    const auto& after = frozen_after.at(name);
    CHECK_MESSAGE(std::memcmp(values.data(), after.data(), values.size() * sizeof(float)) == 0, name);
  }
  // Frozen parameters hold no gradient storage.
  layer.visit_params([&](const std::string&, auto& p) {
    if (!p.trainable) CHECK(p.grad.numel() == 0);
  });
}

TEST_CASE("NEXUS at the foundation shape: what trains and what its gradients and optimizer state take") {
  // d_model 512, d_ff 2048, 8 routed experts top-2, one shared expert: only the shared expert trains.
  nexa::Rng rng(90);
  using Layer =
      nexa::MoELayer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::Relu>, nexa::SharedExpert<nexa::T5FFN<nexa::Relu>>>;
  Layer layer({.d_model = 512, .d_ff = 2048, .num_experts = 8}, rng);
  nexa::freeze_routed(layer);
  const auto report = nexa::trainable_report(layer);
  nexa::train::AdamW optimizer(layer, {.lr = 1e-3});
  std::ostringstream text;
  text << report;
  MESSAGE("NEXUS shared expert on a frozen E=8 MoE (d 512, d_ff 2048): ", text.str(), "; AdamW holds ",
          optimizer.state_bytes(), " bytes");
  CHECK(report.trainable == 2 * 512 * 2048);
  CHECK(report.fraction() == doctest::Approx(1.0 / 9.0).epsilon(1e-3));
  CHECK(report.optimizer_bytes == optimizer.state_bytes());
}
