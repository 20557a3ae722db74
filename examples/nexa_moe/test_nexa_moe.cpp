// The demo trainer's pieces: the three LMs' shapes, names and active parameters; NEXA-MOE routes
// every layer by the classifier (tokens of a sequence share one expert; the classifier trains);
// the tag dropout's share; the checkpoint config round trip and its errors; the SVG writer.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "../common/svg_plot.hpp"
#include "checkpoint.hpp"
#include "data.hpp"
#include "lm.hpp"
#include "nexa/train/adamw.hpp"
#include "test_tiny.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {

const nexa_moe::LMConfig kTiny = nexa_moe::tiny::lm_config();
using nexa_moe::tiny::Batch;
nexa::BertConfig tiny_bert() { return nexa_moe::tiny::bert_config(); }

template <class Model>
index_t params_of(Model& m) {
  index_t n = 0;
  m.visit_params([&](const std::string&, auto& p) { n += p.value.numel(); });
  return n;
}

}  // namespace

TEST_CASE("The three LMs: the same active parameters per token, T5 names, a finite loss that falls") {
  nexa::Rng rng(1);
  nexa_moe::DenseLM dense(kTiny, nexa_moe::dense_ffn(kTiny), rng);
  nexa_moe::TokenMoELM token(kTiny, nexa_moe::moe_ffn(kTiny), rng);
  nexa_moe::NexaMoeLM nexa(kTiny, nexa::BertModel<>(tiny_bert(), rng), 1.0, rng);
  const index_t expert = 2 * kTiny.d_model * kTiny.d_ff * kTiny.layers;
  auto& nexa_lm = static_cast<nexa_moe::DecoderLM<nexa_moe::NexaMoeFFN>&>(nexa);
  // Routers aside, an MoE holds two more experts per layer than the dense model.
  const index_t router = kTiny.layers * kTiny.experts * kTiny.d_model;
  CHECK(params_of(token) - router - 2 * expert == params_of(dense));
  CHECK(params_of(nexa_lm) - 2 * expert == params_of(dense));
  CHECK(params_of(nexa) > params_of(nexa_lm));  // the BERT router's parameters come on top
  std::vector<std::string> names;
  nexa.visit_params([&](const std::string& n, auto&) { names.push_back(n); });
  CHECK(names.front() == "shared.weight");
  CHECK(std::find(names.begin(), names.end(), "decoder.block.1.layer.1.mlp.experts.expert_2.wo.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "lm_head.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "router.classifier_model.classifier.weight") != names.end());

  const Batch b;
  const auto no_layer = [](std::size_t, auto&) {};
  const double before = dense.step(b.tokens(), false, no_layer).lm;
  CHECK(std::isfinite(before));
  CHECK(before == doctest::Approx(std::log(30.0)).epsilon(0.3));
  nexa::train::AdamW opt(dense, {.lr = 1e-2});
  for (int i = 0; i < 20; ++i) {
    const auto l = dense.step(b.tokens(), true, no_layer);
    CHECK(l.targets == 6);
    opt.step();
    opt.zero_grad();
  }
  CHECK(dense.step(b.tokens(), false, no_layer).lm < 0.5 * before);
}

TEST_CASE("NEXA-MOE: one classification routes every layer; the classifier learns from both losses") {
  nexa::Rng rng(2);
  nexa_moe::NexaMoeLM model(kTiny, nexa::BertModel<>(tiny_bert(), rng), 1.0, rng);
  const Batch b;
  std::vector<std::vector<std::int32_t>> experts;
  const auto l = model.step(b.route(), b.tokens(), true, [&](std::size_t, auto& cache) {
    experts.push_back(cache.router.routing.experts.to_host());
  });
  REQUIRE(experts.size() == 2);
  const auto& seq = model.router->sequence_routing();
  for (const auto& layer : experts)
    for (index_t t = 0; t < 10; ++t) CHECK(layer[static_cast<std::size_t>(t)] == seq.experts.data()[t / 5]);
  CHECK(l.aux > 0);  // the supervised routing loss, counted once
  double head_grad = 0, encoder_grad = 0;
  model.router->visit_params([&](const std::string& n, auto& p) {
    double s = 0;
    for (index_t i = 0; i < p.grad.numel(); ++i) s += std::abs(p.grad.data()[i]);
    (n.find("classifier.") != std::string::npos && n.find("classifier_model.classifier") != std::string::npos
         ? head_grad
         : encoder_grad) += s;
  });
  CHECK(head_grad > 0);
  CHECK(encoder_grad > 0);
}

TEST_CASE("Tag dropout keeps the tag on about 1 - p of the training sequences, deterministically") {
  auto wp = nexa::WordPieceTokenizer::from_vocab({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"});
  std::vector<lm_data::Sample> samples(2000, lm_data::Sample{"h", 1, "a b"});
  const lm_data::Vocab vocab = lm_data::Vocab::build(wp, samples, {});
  const auto seqs = nexa_moe::training_sequences(vocab, samples, 16, 0.25, 7);
  std::size_t tagged = 0;
  for (const auto& s : seqs) tagged += s.tagged ? 1 : 0;
  CHECK(static_cast<double>(tagged) / 2000.0 == doctest::Approx(0.75).epsilon(0.05));
  const auto again = nexa_moe::training_sequences(vocab, samples, 16, 0.25, 7);
  for (std::size_t i = 0; i < seqs.size(); ++i) CHECK(seqs[i].ids == again[i].ids);
  const auto batch = nexa_moe::classifier_batch(wp, samples, std::vector<std::size_t>{0, 1}, 8, true);
  CHECK(batch.ids.shape() == nexa::Shape{2, 4});  // [CLS] a b [SEP]
  CHECK(batch.domain_labels == std::vector<std::int32_t>{1, 1});
}

TEST_CASE("Checkpoint config: written, read back, and a broken one named") {
  const auto dir = std::filesystem::temp_directory_path() / "nexa_test_nexa_moe_ckpt";
  std::filesystem::remove_all(dir);
  const auto minilm = std::filesystem::temp_directory_path() / "nexa_test_nexa_moe_minilm";
  std::filesystem::create_directories(minilm);
  examples::write_file(minilm / "config.json", "{}", "test");
  examples::write_file(minilm / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n", "test");
  auto wp = nexa::WordPieceTokenizer::from_vocab_file(minilm / "vocab.txt");
  std::vector<lm_data::Sample> samples{{"h", 0, "a a"}};
  const auto vocab = lm_data::Vocab::build(wp, samples, {});
  nexa_moe::write_checkpoint_config(dir, kTiny, {"PHYS", "BIO", "MAT"}, minilm, vocab, 40);
  const auto c = nexa_moe::Checkpoint::open(dir);
  CHECK(c.domains == std::vector<std::string>{"PHYS", "BIO", "MAT"});
  CHECK(c.lm.d_model == 16);
  CHECK(c.lm.relative_buckets == 8);
  CHECK(c.classifier_max_len == 40);
  CHECK(std::filesystem::exists(dir / "classifier_vocab.txt"));
  examples::write_file(dir / "config.json", "{\"format\": \"nexa-moe-demo\", \"domains\": [\"A\"]}", "test");
  CHECK_THROWS_WITH_AS(nexa_moe::Checkpoint::open(dir), doctest::Contains("missing field \"lm\""), nexa::Error);
  examples::write_file(dir / "config.json", "{\"format\": \"other\"}", "test");
  CHECK_THROWS_WITH_AS(nexa_moe::Checkpoint::open(dir), doctest::Contains("a nexa-moe checkpoint"), nexa::Error);
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(minilm);
}

TEST_CASE("SVG charts: escaped text, one path per series, non-finite points skipped") {
  svg::Chart c{.title = "loss <a & b>", .x_label = "step", .y_label = "y", .series = {}};
  c.series.push_back({.name = "one", .points = {{0, 1}, {1, NAN}, {2, 3}}});
  c.series.push_back({.name = "two", .points = {{0, 2}, {2, 2}}, .dashed = true});
  const std::string s = svg::render({c, c});
  CHECK(s.rfind("<svg", 0) == 0);
  CHECK(s.find("loss &lt;a &amp; b&gt;") != std::string::npos);
  std::size_t paths = 0;
  for (std::size_t at = s.find("<path"); at != std::string::npos; at = s.find("<path", at + 1)) ++paths;
  CHECK(paths == 4);
  CHECK(s.find("nan") == std::string::npos);
  CHECK_THROWS_AS((void)svg::render({}), nexa::Error);
}
