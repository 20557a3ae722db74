// nexus-shared-expert's pieces on a tiny NEXA-MOE checkpoint written here (random weights, a tiny
// BERT router): the route table routes as the BERT classifier does; the frozen model loaded with
// a zero shared expert computes the NEXA-MOE model exactly; the NF4 model computes what its
// dequantised weights compute; a training step changes only the shared experts; the
// initialisations copy or average the right experts; the saved shared experts load back.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "../nexa_moe/test_tiny.hpp"
#include "frozen_lm.hpp"
#include "nexa/train/train.hpp"
#include "route_table.hpp"

using nexa::index_t;
using nexa::Tensor;
namespace fs = std::filesystem;

namespace {

const nexa_moe::LMConfig kTiny = nexa_moe::tiny::lm_config(/*d_ff=*/64);
nexa::BertConfig tiny_bert() { return nexa_moe::tiny::bert_config(/*vocab=*/12, /*layers=*/1); }

nexa::WordPieceTokenizer tiny_wordpiece() {
  return nexa::WordPieceTokenizer::from_vocab(
      {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "unit", "of", "plants", "genus", "salt", "##s"});
}

// A nexa-moe checkpoint of a tiny random NEXA-MOE model (its LM and BERT router weights).
struct TinyCheckpoint {
  fs::path dir = fs::temp_directory_path() / "nexa_test_nexus_shared_expert";
  nexa_moe::Checkpoint ckpt;
  nexa_moe::NexaMoeLM model;
  TinyCheckpoint() {
    fs::create_directories(dir);
    nexa::Rng rng(7);
    nexa::BertModel<> bert(tiny_bert(), rng);
    model = nexa_moe::NexaMoeLM(kTiny, std::move(bert), 0.0, rng);
    model.set_training(false);
    model.router->classifier.set_training(false);
    nexa::save_safetensors(model, dir / "nexa_moe.safetensors");
    ckpt.dir = dir;
    ckpt.domains = {"PHYS", "BIO", "MAT"};
    ckpt.lm = kTiny;
  }
};

const std::vector<std::string> kTexts = {"a unit of salts", "a genus of plants", "salt", "plants of a genus a unit"};

// LM tokens for texts 1 and 3: [BOS] ... [EOS], the first padded.
struct Batch {
  Tensor<std::int32_t> ids = Tensor<std::int32_t>::from_host({2, 5}, {2, 9, 11, 3, 0, 2, 15, 17, 12, 3});
  Tensor<std::int32_t> targets = Tensor<std::int32_t>::from_host({2, 5}, {9, 11, 3, -100, -100, 15, 17, 12, 3, -100});
  Tensor<std::int32_t> mask = Tensor<std::int32_t>::from_host({2, 5}, {1, 1, 1, 1, 0, 1, 1, 1, 1, 1});
  std::vector<std::size_t> definitions = {1, 3};
  nexa_moe::TokenBatch tokens() const { return {ids.cview(), targets.cview(), mask.cview()}; }
};

std::shared_ptr<nexus_shared::Table> routed_table(nexa_moe::NexaMoeLM& m) {
  auto table = std::make_shared<nexus_shared::Table>(static_cast<index_t>(kTexts.size()), kTiny.experts);
  const std::vector<std::size_t> all{0, 1, 2, 3};
  std::size_t calls = 0;
  const std::size_t n = nexus_shared::route_definitions(*table, m.router->classifier, tiny_wordpiece(), kTexts, all, 0,
                                                        16, 3, [&](std::size_t, std::size_t) { ++calls; });
  CHECK(n == 4);
  CHECK(calls == 2);  // batches of 3, then 1
  return table;
}

template <class Model>
std::map<std::string, std::vector<float>> snapshot(Model& m) {
  std::map<std::string, std::vector<float>> out;
  m.visit_params([&](const std::string& name, auto& p) {
    const auto h = p.value.to_host();
    out[name] = std::vector<float>(h.begin(), h.end());
  });
  return out;
}

}  // namespace

TEST_CASE("The route table routes as the BERT classifier, once per definition") {
  TinyCheckpoint t;
  const auto table = routed_table(t.model);
  // Each row is the classifier's logits for that text alone.
  for (std::size_t i = 0; i < kTexts.size(); ++i) {
    const std::vector<std::string> one{kTexts[i]};
    const nexa::SequenceBatch enc = nexa_moe::classifier_batch(tiny_wordpiece(), one, 16);
    const auto out = t.model.router->classifier.apply(enc.ids.cview(), enc.token_types.cview(), enc.mask.cview());
    for (index_t e = 0; e < 3; ++e)
      CHECK(table->row(static_cast<index_t>(i))[e] == doctest::Approx(out.logits.data()[e]).epsilon(1e-5));
  }
  // The hub's routing of definitions 3 and 0: the softmax of those rows, top-1.
  nexus_shared::Hub hub({.d_model = kTiny.d_model, .num_experts = 3}, nexus_shared::RouteTable<>(table));
  const std::vector<std::size_t> pick{3, 0};
  const auto& r = hub.classify(nexus_shared::table_batch(pick));
  for (std::size_t b = 0; b < 2; ++b) {
    const float* row = table->row(static_cast<index_t>(pick[b]));
    double z = 0;
    for (index_t e = 0; e < 3; ++e) z += std::exp(double(row[e]));
    for (index_t e = 0; e < 3; ++e)
      CHECK(r.probs.data()[b * 3 + e] == doctest::Approx(std::exp(double(row[e])) / z).epsilon(1e-6));
    CHECK(r.experts.data()[b] == std::max_element(row, row + 3) - row);
  }
  // Routing twice costs nothing; unrouted or unknown definitions are errors.
  const std::vector<std::size_t> again{0, 1};
  CHECK(nexus_shared::route_definitions(*table, t.model.router->classifier, tiny_wordpiece(), kTexts, again, 0, 16, 3,
                                        [](std::size_t, std::size_t) {}) == 0);
  auto empty = std::make_shared<nexus_shared::Table>(4, 3);
  nexus_shared::Hub unrouted({.d_model = kTiny.d_model, .num_experts = 3}, nexus_shared::RouteTable<>(empty));
  CHECK_THROWS_WITH_AS((void)unrouted.classify(nexus_shared::table_batch(pick)),
                       doctest::Contains("has not been routed"), nexa::Error);
  const std::vector<std::size_t> outside{4};
  CHECK_THROWS_AS((void)hub.classify(nexus_shared::table_batch(outside)), nexa::Error);
}

TEST_CASE(
    "With zero shared experts the frozen model is the checkpoint's NEXA-MOE model; NF4 = its dequantised weights") {
  TinyCheckpoint t;
  const auto table = routed_table(t.model);
  const Batch batch;

  // NEXA-MOE as nexa-moe runs it: BERT classifies the batch's texts, then the LM.
  std::vector<std::string> texts;
  for (const std::size_t i : batch.definitions) texts.push_back(kTexts[i]);
  const nexa::SequenceBatch route = nexa_moe::classifier_batch(tiny_wordpiece(), texts, 16);
  const double reference = t.model.step(route, batch.tokens(), false, [](std::size_t, auto&) {}).lm;

  const auto experts = nexus_shared::load_dense_experts(t.ckpt);
  REQUIRE(experts.size() == 2);
  CHECK(experts[1][2].wo.value.to_host() == t.model.stack.blocks[1].ffn.experts[2].wo.value.to_host());
  auto fp32 = nexus_shared::load_frozen_lm<nexus_shared::DenseExpert>(t.ckpt, experts, 0.2, table);
  const double frozen = fp32.step(nexus_shared::table_batch(batch.definitions), batch.tokens(), false).lm;
  CHECK(frozen == doctest::Approx(reference).epsilon(1e-6));

  // NF4: the loss of the fp32 model whose experts are the NF4 experts' dequantised weights.
  auto nf4 = nexus_shared::load_frozen_lm<nexus_shared::NF4Expert>(t.ckpt, experts, 0.2, table);
  nexa::Rng rng(3);
  nexus_shared::LayerExperts dequantized(2);
  for (std::size_t l = 0; l < 2; ++l)
    for (auto& e : nf4.stack.blocks[l].ffn.experts) dequantized[l].push_back(e.dequantized(rng));
  auto deq = nexus_shared::load_frozen_lm<nexus_shared::DenseExpert>(t.ckpt, dequantized, 0.2, table);
  const double nf4_loss = nf4.step(nexus_shared::table_batch(batch.definitions), batch.tokens(), false).lm;
  const double deq_loss = deq.step(nexus_shared::table_batch(batch.definitions), batch.tokens(), false).lm;
  CHECK(nf4_loss == doctest::Approx(deq_loss).epsilon(1e-6));
  CHECK(nf4_loss != frozen);  // quantisation changes the weights
  CHECK(std::abs(nf4_loss - frozen) < 0.05);
}

TEST_CASE("Training changes only the shared experts") {
  TinyCheckpoint t;
  const auto table = routed_table(t.model);
  const auto experts = nexus_shared::load_dense_experts(t.ckpt);
  auto m = nexus_shared::load_frozen_lm<nexus_shared::NF4Expert>(t.ckpt, experts, 0.2, table);
  nexa::ExpertActivity activity(3);
  const std::vector<double> probs{0.1, 0.7, 0.2, 0.2, 0.3, 0.5, 0.6, 0.3, 0.1, 0.1, 0.8, 0.1};
  const std::vector<std::int32_t> top{1, 2, 0, 1};
  activity.add(probs.data(), 4, top.data(), 1);
  (void)nexus_shared::init_shared(m, experts, "pca", activity, 1, 20, 24);

  const auto report = nexa::trainable_report(m);
  CHECK(report.trainable == kTiny.layers * 2 * kTiny.d_model * kTiny.d_ff);
  CHECK(report.gradient_bytes == static_cast<std::size_t>(report.trainable) * sizeof(float));
  nexa::train::AdamW optimizer(m, {.lr = 1e-2});
  CHECK(report.optimizer_bytes == optimizer.state_bytes());
  for (const auto& name : optimizer.param_names()) CHECK(nexus_shared::is_shared_param(name));

  std::vector<std::vector<std::uint8_t>> codes_before;
  for (auto& block : m.stack.blocks)
    for (auto& e : block.ffn.experts) codes_before.push_back(e.wi().codes);
  const auto before = snapshot(m);
  const Batch batch;
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    last = m.step(nexus_shared::table_batch(batch.definitions), batch.tokens(), true).lm;
    if (step == 0) first = last;
    optimizer.step();
    optimizer.zero_grad();
  }
  CHECK(last < first);
  const auto after = snapshot(m);
  for (const auto& [name, values] : before) {
    if (nexus_shared::is_shared_param(name) && name.find(".scale") == std::string::npos)
      CHECK_MESSAGE(after.at(name) != values, name);
    else
      CHECK_MESSAGE(after.at(name) == values, name);
  }
  std::size_t i = 0;
  for (auto& block : m.stack.blocks)
    for (auto& e : block.ffn.experts) CHECK(e.wi().codes == codes_before[i++]);

  // The shared experts saved alone load back into a fresh model, bit for bit.
  const fs::path file = t.dir / "shared.safetensors";
  auto saved = nexus_shared::shared_params(m);
  nexa::save_safetensors(saved, file);
  auto other = nexus_shared::load_frozen_lm<nexus_shared::NF4Expert>(t.ckpt, experts, 0.2, table);
  auto loaded = nexus_shared::shared_params(other);
  nexa::load_safetensors(loaded, file);
  const auto reloaded = snapshot(other);
  for (const auto& [name, values] : after) CHECK_MESSAGE(reloaded.at(name) == values, name);
}

TEST_CASE("The initialisations: most activated, top-m and PCA average the right fp32 experts; random is small") {
  TinyCheckpoint t;
  const auto table = routed_table(t.model);
  const auto experts = nexus_shared::load_dense_experts(t.ckpt);
  auto m = nexus_shared::load_frozen_lm<nexus_shared::NF4Expert>(t.ckpt, experts, 0.2, table);
  // Expert 2 chosen most, then 0, then 1.
  nexa::ExpertActivity activity(3);
  const std::vector<double> probs{0.2, 0.1, 0.7, 0.5, 0.1, 0.4, 0.1, 0.2, 0.7, 0.3, 0.6, 0.1, 0.6, 0.1, 0.3};
  const std::vector<std::int32_t> top{2, 0, 2, 1, 0};
  activity.add(probs.data(), 5, top.data(), 1);
  CHECK(activity.ranked() == std::vector<index_t>{0, 2, 1});  // 0 and 2 tie (2 each): lower index first

  auto mean_of = [&](std::size_t layer, const std::vector<index_t>& chosen) {
    std::vector<float> out;
    const index_t n = experts[layer][0].wi.value.numel();
    for (index_t i = 0; i < n; ++i) {
      double s = 0;
      for (const index_t e : chosen) s += experts[layer][static_cast<std::size_t>(e)].wi.value.data()[i];
      out.push_back(static_cast<float>(s / static_cast<double>(chosen.size())));
    }
    return out;
  };
  auto shared_wi = [&](std::size_t layer) {
    const auto h = m.stack.blocks[layer].ffn.shared.expert.wi.value.to_host();
    return std::vector<float>(h.begin(), h.end());
  };

  auto r = nexus_shared::init_shared(m, experts, "most", activity, 1, 20, 24);
  CHECK(r.experts == std::vector<index_t>{0});
  for (std::size_t l = 0; l < 2; ++l) CHECK(shared_wi(l) == mean_of(l, {0}));
  r = nexus_shared::init_shared(m, experts, "top2", activity, 1, 20, 24);
  CHECK(r.experts == std::vector<index_t>{0, 2});
  for (std::size_t l = 0; l < 2; ++l) CHECK(shared_wi(l) == mean_of(l, {0, 2}));
  // With 3 experts, PCA's K = min(24, 3) selects them all: the mean of every expert.
  r = nexus_shared::init_shared(m, experts, "pca", activity, 1, 20, 24);
  REQUIRE(r.pca.has_value());
  CHECK(r.experts.size() == 3);
  CHECK(r.pca->importance_fraction == doctest::Approx(1.0));
  for (std::size_t l = 0; l < 2; ++l) CHECK(shared_wi(l) == mean_of(l, r.experts));
  // PCA with K = 1 picks the highest-scoring expert alone.
  r = nexus_shared::init_shared(m, experts, "pca", activity, 1, 20, 1);
  CHECK(r.experts.size() == 1);
  CHECK(r.pca->importance_fraction < 1.0);
  r = nexus_shared::init_shared(m, experts, "random", activity, 1, 20, 24);
  CHECK(r.experts.empty());
  const auto w = shared_wi(0);
  double sq = 0;
  for (const float v : w) sq += double(v) * double(v);
  CHECK(std::sqrt(sq / double(w.size())) == doctest::Approx(0.02).epsilon(0.2));
  CHECK(shared_wi(0) != shared_wi(1));  // each layer its own draw
  CHECK(m.stack.blocks[0].ffn.shared.scale_value() == doctest::Approx(0.2));

  CHECK(nexus_shared::valid_init("top3", 3));
  CHECK_FALSE(nexus_shared::valid_init("top4", 3));
  CHECK_FALSE(nexus_shared::valid_init("top", 3));
  CHECK_FALSE(nexus_shared::valid_init("mean", 3));
  CHECK_THROWS_WITH_AS((void)nexus_shared::init_shared(m, experts, "top0", activity, 1, 20, 24),
                       doctest::Contains("unknown initialisation"), nexa::Error);
}
