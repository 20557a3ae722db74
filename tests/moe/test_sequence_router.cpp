#include <doctest/doctest.h>

#include "nexa/models/bert.hpp"
#include "nexa/moe.hpp"
#include "support/gradcheck.hpp"

using nexa::Tensor;

namespace sequence_router_test {
namespace {
using Router = nexa::SequenceClassifierRouter<nexa::BertModel<>, 2>;
using Layer = nexa::MoELayer<Router, nexa::T5FFN<nexa::Relu>, nexa::NoShared, nexa::cpu, double>;

nexa::BertConfig tiny_bert() {
  nexa::BertConfig c;
  c.vocab_size = 12;
  c.hidden = 8;
  c.layers = 1;
  c.heads = 2;
  c.intermediate = 12;
  c.max_position = 8;
  c.num_labels = 3;
  c.dropout = 0.0;
  c.attention_dropout = 0.0;
  c.pad_token_id = -1;
  c.init_std = 0.5;  // large enough that the attention scores, and so dQ and dK, are not tiny
  return c;
}

const nexa::MoEConfig layer_config{
    .d_model = 5, .d_ff = 6, .num_experts = 3, .load_balance_coef = 0.1, .z_loss_coef = 0.05};

nexa::SequenceBatch batch(std::vector<std::int32_t> labels = {}, std::vector<std::int32_t> overrides = {}) {
  nexa::SequenceBatch b;
  b.ids = Tensor<std::int32_t>::from_host({3, 4}, {1, 5, 7, 2, 1, 9, 3, 2, 1, 4, 11, 6});
  b.mask = Tensor<std::int32_t>::from_host({3, 4}, {1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1});
  b.domain_labels = std::move(labels);
  b.domain_override = std::move(overrides);
  return b;
}

Layer make_layer(std::uint64_t seed, double supervised = 0.0) {
  nexa::Rng rng(seed);
  auto config = layer_config;
  config.supervised_coef = supervised;
  Layer layer(config, rng);
  layer.router.set_classifier(nexa::BertModel<double>(tiny_bert(), rng));
  return layer;
}
}  // namespace

TEST_CASE("Sequence router: every token takes its sequence's experts and weights") {
  Layer layer = make_layer(120);
  nexa::Rng rng(1);
  auto x = Tensor<double>::randn({12, 5}, rng);
  const auto& seq = layer.router.classify(batch());
  Layer::Cache cache;
  (void)layer.forward(x, cache);
  for (nexa::index_t t = 0; t < 12; ++t) {
    for (int j = 0; j < 2; ++j) {
      CHECK(cache.router.routing.experts(t, j) == seq.experts(t / 4, j));
      CHECK(cache.router.routing.weights(t, j) == seq.weights(t / 4, j));
    }
  }
  // The layer's sequences may be tokenised differently from the classifier's: here 2 tokens each.
  (void)layer.forward(Tensor<double>::randn({6, 5}, rng), cache);
  for (nexa::index_t t = 0; t < 6; ++t) CHECK(cache.router.routing.experts(t, 0) == seq.experts(t / 2, 0));
}

TEST_CASE("Sequence router trains jointly: gradients of experts and classifier check (with supervision)") {
  Layer layer = make_layer(121, 0.5);
  nexa::Rng rng(2);
  auto x = Tensor<double>::randn({12, 5}, rng);
  auto r = Tensor<double>::randn({12, 5}, rng);
  const auto b = batch({0, 2, 1}, {-1, -1, 2});  // the third sequence is overridden
  (void)layer.router.classify(b);
  Layer::Cache cache;
  (void)layer.forward(x, cache);
  CHECK(cache.aux().supervised > 0);
  auto dx = layer.backward(r, cache);
  auto loss = [&] {
    (void)layer.router.classify(b);
    Layer::Cache c;
    return nexa::testing::weighted_sum(layer.forward(x, c), r) + c.aux_loss();
  };
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  int classifier_params = 0;
  for (auto& [name, p] : nexa::testing::trainable_params(layer)) {
    const std::string param_name = name;  // clang cannot capture a structured binding
    INFO(param_name);
    classifier_params += param_name.find("classifier_model") != std::string::npos ? 1 : 0;
    CHECK(nexa::testing::gradient_error(loss, p->value.data(), p->numel(), p->grad.data()) < 1e-6);
  }
  CHECK(classifier_params > 10);
}

TEST_CASE("Domain override bypasses the classifier; head-only training freezes the encoder") {
  Layer layer = make_layer(122);
  const auto& seq = layer.router.classify(batch({}, {-1, 2, 0}));
  CHECK(seq.experts(1, 0) == 2);
  CHECK(seq.weights(1, 0) == 1.0);
  CHECK(seq.weights(1, 1) == 0.0);
  CHECK(seq.experts(2, 0) == 0);

  layer.router.set_training_scope(nexa::RouterTraining::HeadOnly);
  std::vector<std::string> trainable;
  layer.router.visit_params([&](const std::string& n, auto& p) {
    if (p.trainable) trainable.push_back(n);
  });
  CHECK(trainable ==
        std::vector<std::string>{"classifier_model.classifier.weight", "classifier_model.classifier.bias"});
}

TEST_CASE("Sequence router rejects misuse with clear errors") {
  Layer layer = make_layer(123);
  nexa::Rng rng(3);
  Layer::Cache cache;
  CHECK_THROWS_WITH_AS((void)layer.forward(Tensor<double>({12, 5}), cache), doctest::Contains("classify"), nexa::Error);
  (void)layer.router.classify(batch());
  CHECK_THROWS_WITH_AS((void)layer.forward(Tensor<double>({10, 5}), cache),
                       doctest::Contains("multiple of the classified batch's B = 3"), nexa::Error);
  CHECK_THROWS_AS(layer.router.classify(batch({0, 1})), nexa::Error);
  auto wrong = tiny_bert();
  wrong.num_labels = 4;
  CHECK_THROWS_WITH_AS(layer.router.set_classifier(nexa::BertModel<double>(wrong, rng)),
                       doctest::Contains("num_labels 3, got 4"), nexa::Error);
}

TEST_CASE("DomainTags strip NEXA-MOE's tag prefixes into labels") {
  const auto tags = nexa::DomainTags::nexa_moe();
  const auto phys = tags.split("  [PHYS]  Light bends in a prism.");
  CHECK(phys.domain == 0);
  CHECK(phys.text == "Light bends in a prism.");
  CHECK(tags.split("[MAT]Steel").domain == 2);
  const auto none = tags.split("No tag [BIO] here");
  CHECK(none.domain == -1);
  CHECK(none.text == "No tag [BIO] here");
  CHECK(tags.index_of("[BIO]") == 1);
  CHECK_THROWS_WITH_AS((void)tags.index_of("[MED]"), doctest::Contains("known: [PHYS], [BIO], [MAT]"), nexa::Error);
  CHECK_THROWS_AS(nexa::DomainTags({"[A]", "[A]"}), nexa::Error);
}

namespace {
using SharedRouter = nexa::SharedSequenceRouter<nexa::BertModel<>, 2>;
using SharedLayer = nexa::MoELayer<SharedRouter, nexa::T5FFN<nexa::Relu>, nexa::NoShared, nexa::cpu, double>;
using Hub = SharedRouter::rebind<double, nexa::cpu>::Hub;

// Two layers, one classifier: x -> layer0 -> layer1, routed by the hub's one classify().
struct TwoSharedLayers {
  std::shared_ptr<Hub> hub;
  SharedLayer first, second;

  explicit TwoSharedLayers(std::uint64_t seed, double supervised) {
    nexa::Rng rng(seed);
    auto config = layer_config;
    config.supervised_coef = supervised;
    hub = std::make_shared<Hub>(config.router(), nexa::BertModel<double>(tiny_bert(), rng));
    first = SharedLayer(config, rng);
    second = SharedLayer(config, rng);
    first.router.attach(hub);
    second.router.attach(hub);
  }
  template <class F>
  void visit_params(F&& f) {
    hub->visit_params(f, "hub");
    first.visit_params(f, "first");
    second.visit_params(f, "second");
  }
};
}  // namespace

TEST_CASE("Shared sequence router: one classifier routes two layers, gradients check") {
  TwoSharedLayers model(124, 0.5);
  nexa::Rng rng(4);
  auto x = Tensor<double>::randn({12, 5}, rng);
  auto r = Tensor<double>::randn({12, 5}, rng);
  const auto b = batch({0, 2, 1}, {-1, -1, 2});
  const auto loss = [&] {
    (void)model.hub->classify(b);
    SharedLayer::Cache c0, c1;
    const auto h = model.first.forward(x, c0);
    CHECK(c0.aux_loss() == 0.0);  // the hub counts the routing losses once
    return nexa::testing::weighted_sum(model.second.forward(h, c1), r) + model.hub->aux().total();
  };
  (void)model.hub->classify(b);
  SharedLayer::Cache c0, c1;
  const auto h = model.first.forward(x, c0);
  (void)model.second.forward(h, c1);
  const auto dh = model.second.backward(r, c1);
  const auto dx = model.first.backward(dh, c0);
  model.hub->backward_classifier();
  CHECK(model.hub->aux().supervised > 0);
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  int hub_params = 0;
  for (auto& [name, p] : nexa::testing::trainable_params(model)) {
    const std::string param_name = name;
    INFO(param_name);
    hub_params += param_name.rfind("hub.", 0) == 0 ? 1 : 0;
    CHECK(nexa::testing::gradient_error(loss, p->value.data(), p->numel(), p->grad.data()) < 1e-6);
  }
  CHECK(hub_params > 10);
}

TEST_CASE("Shared sequence router: one attached layer equals the layer that owns its router, bitwise") {
  Layer owner = make_layer(125, 0.5);
  auto config = layer_config;
  config.supervised_coef = 0.5;
  nexa::Rng unused(0);
  SharedLayer shared(config, unused);
  shared.experts = owner.experts;
  auto hub = std::make_shared<Hub>(config.router(), owner.router.classifier);
  shared.router.attach(hub);
  nexa::Rng rng(5);
  auto x = Tensor<double>::randn({12, 5}, rng);
  auto r = Tensor<double>::randn({12, 5}, rng);
  const auto b = batch({1, 0, 2});
  (void)owner.router.classify(b);
  (void)hub->classify(b);
  Layer::Cache owner_cache;
  SharedLayer::Cache shared_cache;
  CHECK(owner.forward(x, owner_cache).to_host() == shared.forward(x, shared_cache).to_host());
  CHECK(owner_cache.aux_loss() == hub->aux().total());
  CHECK(owner.backward(r, owner_cache).to_host() == shared.backward(r, shared_cache).to_host());
  hub->backward_classifier();
  std::vector<std::vector<double>> owner_grads, shared_grads;
  owner.router.visit_params([&](const std::string&, auto& p) { owner_grads.push_back(p.grad.to_host()); });
  hub->visit_params([&](const std::string&, auto& p) { shared_grads.push_back(p.grad.to_host()); });
  CHECK(owner_grads == shared_grads);
}

TEST_CASE("Shared sequence router reports misuse") {
  nexa::Rng rng(6);
  SharedLayer layer(layer_config, rng);
  SharedLayer::Cache cache;
  CHECK_THROWS_WITH_AS((void)layer.forward(Tensor<double>({12, 5}), cache), doctest::Contains("attach"), nexa::Error);
  auto other = layer_config.router();
  other.num_experts = 4;
  auto bert = tiny_bert();
  bert.num_labels = 4;
  CHECK_THROWS_WITH_AS(layer.router.attach(std::make_shared<Hub>(other, nexa::BertModel<double>(bert, rng))),
                       doctest::Contains("must route to 3 experts"), nexa::Error);
}

}  // namespace sequence_router_test
