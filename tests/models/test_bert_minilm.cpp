// Parity with Hugging Face transformers on the real all-MiniLM-L6-v2 checkpoint: last hidden
// states, pooler output and sentence-transformers embeddings for 4 padded sentences must match
// tests/fixtures/bert/minilm_reference.safetensors (written by make_fixtures.py) within 1e-4 max
// abs error in fp32. The checkpoint is read from $NEXA_MINILM_DIR or
// $HOME/.cache/nexa/all-MiniLM-L6-v2; without it this test exits 77, which ctest reports as
// skipped (run scripts/fetch-minilm.sh to fetch it).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>

#include "nexa/io/safetensors.hpp"
#include "nexa/models/bert.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {

std::filesystem::path minilm_dir() {
  if (const char* env = std::getenv("NEXA_MINILM_DIR"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home ? home : "") / ".cache" / "nexa" / "all-MiniLM-L6-v2";
}

bool have_checkpoint(const std::filesystem::path& dir) {
  return std::filesystem::exists(dir / "model.safetensors") && std::filesystem::exists(dir / "config.json");
}

Tensor<std::int32_t> ints(const nexa::TensorData& d) {
  REQUIRE(d.dtype == nexa::Dtype::I64);
  std::vector<std::int32_t> out(static_cast<std::size_t>(d.shape.numel()));
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::int64_t v = 0;
    std::memcpy(&v, d.bytes.data() + i * 8, 8);
    out[i] = static_cast<std::int32_t>(v);
  }
  return Tensor<std::int32_t>::from_host(d.shape, out);
}

double max_abs_error(const Tensor<float>& actual, const Tensor<float>& expected) {
  REQUIRE(actual.shape() == expected.shape());
  double err = 0;
  for (index_t i = 0; i < actual.numel(); ++i)
    err = std::max(err, std::abs(double(actual.data()[i]) - double(expected.data()[i])));
  return err;
}

}  // namespace

TEST_CASE("all-MiniLM-L6-v2: config, checkpoint names and parity with transformers (fp32)") {
  const auto dir = minilm_dir();
  const auto config = nexa::BertConfig::from_json(dir);
  CHECK(config.hidden == 384);
  CHECK(config.layers == 6);
  CHECK(config.heads == 12);
  CHECK(config.num_labels == 0);

  nexa::Rng rng(0);
  nexa::BertModel<> model(config, rng);
  const auto report = nexa::load_bert(model, dir);
  CHECK(report.missing.empty());
  CHECK(report.skipped == std::vector<std::string>{"embeddings.position_ids"});
  CHECK(report.loaded.size() == 103);  // 5 embedding + 6 x 16 layer + 2 pooler tensors
  model.set_training(false);

  const auto fixture =
      nexa::read_safetensors(std::filesystem::path(NEXA_BERT_FIXTURE_DIR) / "minilm_reference.safetensors");
  const auto& t = fixture.tensors;
  const auto ids = ints(t.at("input_ids"));
  const auto mask = ints(t.at("attention_mask"));
  const auto types = ints(t.at("token_type_ids"));
  const auto out = model.apply(ids, types, mask);
  const auto embedding = nexa::bert_sentence_embedding(out.last_hidden_state, mask);

  const double hidden_err = max_abs_error(out.last_hidden_state, t.at("last_hidden_state").to_tensor<float>());
  const double pooler_err = max_abs_error(out.pooler_output, t.at("pooler_output").to_tensor<float>());
  const double embed_err = max_abs_error(embedding, t.at("sentence_embedding").to_tensor<float>());
  MESSAGE("max abs error vs transformers ", fixture.metadata.at("transformers"), ": last_hidden_state ", hidden_err,
          ", pooler_output ", pooler_err, ", sentence_embedding ", embed_err, " (shape ", ids.shape(), ")");
  CHECK(hidden_err < 1e-4);
  CHECK(pooler_err < 1e-4);
  CHECK(embed_err < 1e-4);

  // The training path gives the same outputs in eval mode, and its backward runs at this size.
  nexa::BertModel<>::Cache cache;
  const auto trained = model.forward(ids, types, mask, cache);
  CHECK(max_abs_error(trained.last_hidden_state, out.last_hidden_state) == 0.0);
  nexa::SentenceEmbeddingCache<float> ec;
  const auto e = nexa::bert_sentence_embedding(trained.last_hidden_state, mask, ec);
  const auto dh = nexa::bert_sentence_embedding_backward(Tensor<float>::full(e.shape(), 1.0f), ec);
  const auto dx = model.backward({.last_hidden_state = dh}, cache);
  bool finite = true;
  for (index_t i = 0; i < dx.numel(); ++i) finite = finite && std::isfinite(dx.data()[i]);
  CHECK(finite);

  // nexa fp32 against the float64 reference: the same size of rounding error as HF's own fp32.
  auto first8 = Tensor<float>::uninitialized({4, 8, 384});
  for (index_t b = 0; b < 4; ++b)
    std::copy_n(out.last_hidden_state.data() + b * ids.dim(1) * 384, 8 * 384, first8.data() + b * 8 * 384);
  const auto ref64 = t.at("last_hidden_state_f64_first8").to_tensor<float>();
  MESSAGE("nexa fp32 vs transformers fp64, first 8 tokens: max abs error ", max_abs_error(first8, ref64));
}

TEST_CASE("all-MiniLM-L6-v2 in double matches transformers in float64 (no fp32 rounding on either side)") {
  const auto dir = minilm_dir();
  nexa::Rng rng(0);
  nexa::BertModel<double> model(nexa::BertConfig::from_json(dir), rng);
  (void)nexa::load_bert(model, dir);
  model.set_training(false);
  const auto fixture =
      nexa::read_safetensors(std::filesystem::path(NEXA_BERT_FIXTURE_DIR) / "minilm_reference.safetensors");
  const auto& t = fixture.tensors;
  const auto ids = ints(t.at("input_ids"));
  const auto mask = ints(t.at("attention_mask"));
  const auto out = model.apply(ids, ints(t.at("token_type_ids")), mask);
  const auto embedding = nexa::bert_sentence_embedding(out.last_hidden_state, mask);
  const auto hidden = t.at("last_hidden_state_f64_first8").to_tensor<double>();
  double hidden_err = 0;
  for (index_t b = 0; b < 4; ++b)
    for (index_t i = 0; i < 8 * 384; ++i)
      hidden_err = std::max(hidden_err, std::abs(out.last_hidden_state.data()[b * ids.dim(1) * 384 + i] -
                                                 hidden.data()[b * 8 * 384 + i]));
  const auto pooler = t.at("pooler_output_f64").to_tensor<double>();
  const auto emb = t.at("sentence_embedding_f64").to_tensor<double>();
  double pooler_err = 0, embed_err = 0;
  for (index_t i = 0; i < pooler.numel(); ++i) {
    pooler_err = std::max(pooler_err, std::abs(out.pooler_output.data()[i] - pooler.data()[i]));
    embed_err = std::max(embed_err, std::abs(embedding.data()[i] - emb.data()[i]));
  }
  MESSAGE("double vs transformers fp64: last_hidden_state (first 8 tokens) ", hidden_err, ", pooler_output ",
          pooler_err, ", sentence_embedding ", embed_err);
  CHECK(hidden_err < 1e-10);
  CHECK(pooler_err < 1e-10);
  CHECK(embed_err < 1e-10);
}

int main(int argc, char** argv) {
  const auto dir = minilm_dir();
  if (!have_checkpoint(dir)) {
    std::cout << "SKIPPED: the all-MiniLM-L6-v2 checkpoint is not at " << dir.string()
              << " (set NEXA_MINILM_DIR, or run scripts/fetch-minilm.sh to fetch it)\n";
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
