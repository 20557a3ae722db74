// A tiny BertModel (2 layers, hidden 8, 2 heads, padding in the batch): central-difference
// gradient checks to the input embeddings and every parameter (with and without dropout),
// Hugging Face parameter names, load_bert's name policy and error report, BertConfig::from_json,
// and error messages for bad inputs.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "models/grad_util.hpp"
#include "nexa/io/safetensors.hpp"
#include "nexa/models/bert.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {

nexa::BertConfig tiny_config(double dropout = 0.0, index_t num_labels = 3) {
  return {.vocab_size = 20,
          .hidden = 8,
          .layers = 2,
          .heads = 2,
          .intermediate = 16,
          .max_position = 12,
          .type_vocab = 2,
          .layer_norm_eps = 1e-12,
          .dropout = dropout,
          .num_labels = num_labels,
          .attention_dropout = dropout};
}

// Moves every parameter away from its structured init (LayerNorm 1/0, zero biases) so that the
// gradient checks see a generic point.
template <class Model>
void perturb(Model& model, nexa::Rng& rng) {
  model.visit_params([&](const std::string&, auto& p) {
    const auto noise = Tensor<double>::randn(p.value.shape(), rng, 0.3);
    for (index_t i = 0; i < p.numel(); ++i) p.value.data()[i] += noise.data()[i];
  });
}

struct Batch {
  // Sequence 0 is full, 1 has two padding tokens, 2 has four (pad id 0).
  Tensor<std::int32_t> ids = Tensor<std::int32_t>::from_host({3, 5}, {2, 7, 9, 4, 3, 2, 11, 3, 0, 0, 2, 0, 0, 0, 0});
  Tensor<std::int32_t> types = Tensor<std::int32_t>::from_host({3, 5}, {0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0});
  Tensor<std::int32_t> mask = Tensor<std::int32_t>::from_host({3, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0});
};

void check_model_gradients(double dropout, std::uint64_t seed) {
  using Model = nexa::BertModel<double>;
  nexa::Rng rng(seed);
  Model model(tiny_config(dropout), rng);
  perturb(model, rng);
  const Batch batch;
  const auto r_hidden = Tensor<double>::randn({3, 5, 8}, rng);
  const auto r_pool = Tensor<double>::randn({3, 8}, rng);
  const auto r_logits = Tensor<double>::randn({3, 3}, rng);
  auto total = [&](const Model::Output& out) {
    return nexa::testing::weighted_sum(out.last_hidden_state, r_hidden) +
           nexa::testing::weighted_sum(out.pooler_output, r_pool) + nexa::testing::weighted_sum(out.logits, r_logits);
  };

  SUBCASE("every parameter (token ids)") {
    Model::Cache cache;
    model.rewind(0);
    const auto out = model.forward(batch.ids, batch.types, batch.mask, cache);
    REQUIRE(out.logits.shape() == nexa::Shape{3, 3});
    (void)model.backward({r_hidden, r_pool, r_logits}, cache);
    auto loss = [&] {
      Model::Cache c;
      model.rewind(0);
      return total(model.forward(batch.ids, batch.types, batch.mask, c));
    };
    index_t checked = 0;
    for (auto& [name, p] : nexa::testing::trainable_params(model)) {
      const std::string param_name = name;
      INFO(param_name);
      index_t skip = 0;
      if (param_name == "embeddings.word_embeddings.weight") {
        // The pad row (id 0) gets no gradient, as with nn.Embedding(padding_idx = 0).
        for (index_t c = 0; c < 8; ++c) CHECK(p->grad.data()[c] == 0.0);
        skip = 8;
      }
      nexa::testing::check_param_gradient(loss, param_name, p->value.data() + skip, p->grad.data() + skip,
                                          p->numel() - skip);
      ++checked;
    }
    CHECK(checked == 5 + 2 * 16 + 2 + 2);
  }
  SUBCASE("input embeddings") {
    auto embeds = Tensor<double>::randn({3, 5, 8}, rng);
    Model::Cache cache;
    model.rewind(0);
    (void)model.forward_embeds(embeds, batch.types, batch.mask, cache);
    const auto dx = model.backward({r_hidden, r_pool, r_logits}, cache);
    auto loss = [&] {
      Model::Cache c;
      model.rewind(0);
      return total(model.forward_embeds(embeds, batch.types, batch.mask, c));
    };
    CHECK(nexa::testing::gradient_error(loss, embeds.data(), embeds.numel(), dx.data()) < 1e-6);
    // The word table is not used on this path.
    for (index_t i = 0; i < model.embeddings.word_embeddings.weight.numel(); ++i)
      REQUIRE(model.embeddings.word_embeddings.weight.grad.data()[i] == 0.0);
  }
}

std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("nexa_test_bert_" + name);
}

std::vector<std::string> names_of(nexa::BertModel<>& m) {
  std::vector<std::string> out;
  m.visit_params([&](const std::string& n, auto&) { out.push_back(n); });
  return out;
}

}  // namespace

TEST_CASE("BertModel gradients check to the input embeddings and every parameter (padding in the batch)") {
  check_model_gradients(0.0, 100);
}

TEST_CASE("BertModel gradients check with every dropout on (masks replayed with rewind)") {
  check_model_gradients(0.2, 101);
}

TEST_CASE("BertModel backward without the input's gradient stops below the lowest trainable layer") {
  using Model = nexa::BertModel<double>;
  nexa::Rng rng(102);
  Model full(tiny_config(), rng);
  perturb(full, rng);
  // Layer 1, the pooler and the head train; the embeddings and layer 0 are frozen.
  full.visit_params([](const std::string& name, auto& p) {
    p.set_trainable(name.rfind("encoder.layer.0.", 0) != 0 && name.rfind("embeddings.", 0) != 0);
  });
  Model partial = full;
  const Batch batch;
  const auto r_logits = Tensor<double>::randn({3, 3}, rng);
  Model::Cache full_cache, partial_cache;
  (void)full.forward(batch.ids, batch.types, batch.mask, full_cache);
  (void)partial.forward(batch.ids, batch.types, batch.mask, partial_cache);
  CHECK(full.backward({.logits = r_logits}, full_cache).numel() == 3 * 5 * 8);
  CHECK(partial.backward({.logits = r_logits, .input = false}, partial_cache).empty());
  std::vector<std::vector<double>> full_grads, partial_grads;
  index_t trainable = 0;
  full.visit_params([&](const std::string&, auto& p) {
    full_grads.push_back(p.grad.to_host());
    trainable += p.trainable ? 1 : 0;
  });
  partial.visit_params([&](const std::string&, auto& p) { partial_grads.push_back(p.grad.to_host()); });
  CHECK(trainable == 16 + 2 + 2);
  CHECK(full_grads == partial_grads);
}

TEST_CASE("BertModel parameter names are Hugging Face's BertModel / BertForSequenceClassification names") {
  nexa::Rng rng(1);
  auto cfg = tiny_config();
  cfg.layers = 1;
  nexa::BertModel<> model(cfg, rng);
  const std::vector<std::string> expected{"embeddings.word_embeddings.weight",
                                          "embeddings.position_embeddings.weight",
                                          "embeddings.token_type_embeddings.weight",
                                          "embeddings.LayerNorm.weight",
                                          "embeddings.LayerNorm.bias",
                                          "encoder.layer.0.attention.self.query.weight",
                                          "encoder.layer.0.attention.self.query.bias",
                                          "encoder.layer.0.attention.self.key.weight",
                                          "encoder.layer.0.attention.self.key.bias",
                                          "encoder.layer.0.attention.self.value.weight",
                                          "encoder.layer.0.attention.self.value.bias",
                                          "encoder.layer.0.attention.output.dense.weight",
                                          "encoder.layer.0.attention.output.dense.bias",
                                          "encoder.layer.0.attention.output.LayerNorm.weight",
                                          "encoder.layer.0.attention.output.LayerNorm.bias",
                                          "encoder.layer.0.intermediate.dense.weight",
                                          "encoder.layer.0.intermediate.dense.bias",
                                          "encoder.layer.0.output.dense.weight",
                                          "encoder.layer.0.output.dense.bias",
                                          "encoder.layer.0.output.LayerNorm.weight",
                                          "encoder.layer.0.output.LayerNorm.bias",
                                          "pooler.dense.weight",
                                          "pooler.dense.bias",
                                          "classifier.weight",
                                          "classifier.bias"};
  CHECK(names_of(model) == expected);
  cfg.num_labels = 0;
  nexa::BertModel<> base(cfg, rng);
  CHECK(names_of(base).size() == expected.size() - 2);
  CHECK(model.embeddings.word_embeddings.weight.value(0, 3) == 0.0f);  // pad row starts at zero
}

TEST_CASE("BertModel: eval mode is deterministic, training mode drops, apply equals forward") {
  nexa::Rng rng(2);
  nexa::BertModel<> model(tiny_config(0.3), rng);
  const Batch batch;
  model.set_training(false);
  nexa::BertModel<>::Cache c1;
  const auto a = model.forward(batch.ids, batch.types, batch.mask, c1);
  const auto b = model.apply(batch.ids, batch.types, batch.mask);
  for (index_t i = 0; i < a.last_hidden_state.numel(); ++i)
    REQUIRE(a.last_hidden_state.data()[i] == b.last_hidden_state.data()[i]);
  for (index_t i = 0; i < a.logits.numel(); ++i) REQUIRE(a.logits.data()[i] == b.logits.data()[i]);
  model.set_training(true);
  nexa::BertModel<>::Cache c2;
  const auto d = model.forward(batch.ids, batch.types, batch.mask, c2);
  double diff = 0;
  for (index_t i = 0; i < d.last_hidden_state.numel(); ++i)
    diff += std::abs(d.last_hidden_state.data()[i] - a.last_hidden_state.data()[i]);
  CHECK(diff > 0);
}

TEST_CASE("BertModel reports bad inputs") {
  using nexa::Error;
  nexa::Rng rng(3);
  nexa::BertModel<> model(tiny_config(0.0, 0), rng);
  nexa::BertModel<>::Cache cache;
  const Tensor<std::int32_t> none;
  const Batch batch;
  CHECK_THROWS_WITH_AS(
      (void)model.forward(Tensor<std::int32_t>::from_host({2, 3}, {1, 2, 3, 4, 5, 20}), none, none, cache),
      doctest::Contains("BertEmbeddings: input id 20 at [1, 2] is out of range for vocab_size 20"), Error);
  CHECK_THROWS_WITH_AS((void)model.forward(Tensor<std::int32_t>::from_host({1, 2}, {1, -1}), none, none, cache),
                       doctest::Contains("input id -1"), Error);
  CHECK_THROWS_WITH_AS((void)model.forward(Tensor<std::int32_t>({6}), none, none, cache),
                       doctest::Contains("input ids shape expected [batch, seq], got [6]"), Error);
  CHECK_THROWS_WITH_AS((void)model.forward(Tensor<std::int32_t>({1, 13}), none, none, cache),
                       doctest::Contains("sequence length 13 exceeds max_position 12"), Error);
  CHECK_THROWS_WITH_AS((void)model.forward(batch.ids, Tensor<std::int32_t>::full({3, 5}, 2), none, cache),
                       doctest::Contains("token type id 2 at [0, 0] is out of range for type_vocab 2"), Error);
  CHECK_THROWS_WITH_AS((void)model.forward(batch.ids, Tensor<std::int32_t>({3, 4}), none, cache),
                       doctest::Contains("token type ids shape expected [3, 5], got [3, 4]"), Error);
  CHECK_THROWS_WITH_AS((void)model.forward(batch.ids, none, Tensor<std::int32_t>({5, 3}), cache),
                       doctest::Contains("BertModel: attention mask shape expected [3, 5], got [5, 3]"), Error);
  CHECK_THROWS_WITH_AS((void)model.forward_embeds(Tensor<float>({3, 5, 7}), none, none, cache),
                       doctest::Contains("input embeddings shape expected [batch, seq, 8], got [3, 5, 7]"), Error);
  (void)model.forward(batch.ids, none, batch.mask, cache);
  CHECK_THROWS_WITH_AS((void)model.backward({.logits = Tensor<float>({3, 2})}, cache),
                       doctest::Contains("the model has no classifier"), Error);
  CHECK_THROWS_WITH_AS((void)model.backward({.last_hidden_state = Tensor<float>({3, 5, 4})}, cache),
                       doctest::Contains("d(last_hidden_state) shape expected [3, 5, 8], got [3, 5, 4]"), Error);
  auto bad = tiny_config();
  bad.heads = 3;
  CHECK_THROWS_WITH_AS(nexa::BertModel<>(bad, rng), doctest::Contains("hidden (8) must be a multiple of heads (3)"),
                       Error);
}

TEST_CASE("load_bert: HF names, the bert. prefix, buffers, a missing classifier and a full error report") {
  using nexa::Error;
  nexa::Rng rng(4);
  nexa::BertModel<> source(tiny_config(), rng);
  const auto plain = temp_path("plain.safetensors");
  nexa::save_safetensors(source, plain);

  SUBCASE("round trip by name") {
    nexa::BertModel<> target(tiny_config(), rng);
    const auto report = nexa::load_bert(target, plain);
    CHECK(report.loaded.size() == names_of(target).size());
    CHECK(report.missing.empty());
    CHECK(target.encoder.layers[1].output_dense.weight.value(3, 5) ==
          source.encoder.layers[1].output_dense.weight.value(3, 5));
  }

  // A task-model style file: "bert." prefix, position_ids buffer (I64), no classifier.
  auto file = nexa::read_safetensors(plain);
  std::map<std::string, nexa::TensorData> prefixed;
  for (auto& [name, data] : file.tensors)
    if (name.rfind("classifier.", 0) != 0) prefixed.emplace("bert." + name, data);
  nexa::TensorData position_ids{nexa::Dtype::I64, nexa::Shape{1, 12}, {}};
  position_ids.bytes.resize(12 * 8);
  for (std::int64_t i = 0; i < 12; ++i) std::memcpy(position_ids.bytes.data() + i * 8, &i, 8);
  prefixed.emplace("bert.embeddings.position_ids", position_ids);
  const auto with_prefix = temp_path("prefixed.safetensors");
  nexa::write_safetensors(with_prefix, prefixed);

  SUBCASE("prefix stripped, buffer skipped, classifier allowed to be missing") {
    nexa::BertModel<> target(tiny_config(), rng);
    const auto report = nexa::load_bert(target, with_prefix);
    CHECK(report.missing == std::vector<std::string>{"classifier.weight", "classifier.bias"});
    CHECK(report.skipped == std::vector<std::string>{"bert.embeddings.position_ids"});
    CHECK(target.pooler.dense.bias.value(2) == source.pooler.dense.bias.value(2));
    CHECK_THROWS_WITH_AS(nexa::load_bert(target, with_prefix, {.allow_missing_classifier = false}),
                         doctest::Contains("missing tensors (2): \"classifier.weight\", \"classifier.bias\""), Error);
  }

  SUBCASE("every problem in one error; nothing written") {
    auto broken = prefixed;
    broken.erase("bert.pooler.dense.weight");
    broken.emplace("cls.predictions.bias", nexa::TensorData::from_tensor(Tensor<float>({20})));
    broken["bert.encoder.layer.1.intermediate.dense.bias"] = nexa::TensorData::from_tensor(Tensor<float>({15}));
    const auto bad = temp_path("broken.safetensors");
    nexa::write_safetensors(bad, broken);
    nexa::BertModel<> target(tiny_config(), rng);
    const float before = target.embeddings.word_embeddings.weight.value(3, 1);
    CHECK_THROWS_WITH_AS(nexa::load_bert(target, bad),
                         doctest::Contains("missing tensors (1): \"pooler.dense.weight\"; mismatched tensors (1): "
                                           "\"bert.encoder.layer.1.intermediate.dense.bias\" shape expected [16], got "
                                           "[15]; unexpected tensors (1): \"cls.predictions.bias\" (load with strict "
                                           "= false to ignore them)"),
                         Error);
    CHECK(target.embeddings.word_embeddings.weight.value(3, 1) == before);
    std::filesystem::remove(bad);
    // strict = false skips unknown tensors (e.g. a pretraining checkpoint's cls.* heads).
    auto extra = prefixed;
    extra.emplace("cls.predictions.bias", nexa::TensorData::from_tensor(Tensor<float>({20})));
    nexa::write_safetensors(bad, extra);
    const auto report = nexa::load_bert(target, bad, {.strict = false});
    CHECK(report.skipped.size() == 2);
    std::filesystem::remove(bad);
  }

  SUBCASE("a directory without model.safetensors") {
    nexa::BertModel<> target(tiny_config(), rng);
    CHECK_THROWS_WITH_AS(nexa::load_bert(target, std::filesystem::temp_directory_path()),
                         doctest::Contains("no model.safetensors in the directory"), Error);
  }
  std::filesystem::remove(plain);
  std::filesystem::remove(with_prefix);
}

TEST_CASE("BertConfig::from_json reads a Hugging Face config.json") {
  using nexa::Error;
  const auto path = temp_path("config.json");
  auto write = [&](const std::string& text) {
    std::ofstream(path) << text;
    return path;
  };
  const std::string minilm = R"({
  "_name_or_path": "nreimers/MiniLM-L6-H384-uncased", "architectures": ["BertModel"],
  "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": false, "hidden_act": "gelu",
  "hidden_dropout_prob": 0.25, "hidden_size": 384, "initializer_range": 0.02, "intermediate_size": 1536,
  "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
  "num_hidden_layers": 6, "pad_token_id": 0, "position_embedding_type": "absolute", "transformers_version": "4.8.2",
  "type_vocab_size": 2, "use_cache": true, "vocab_size": 30522, "label2id": {}, "nothing": null, "x": [1.5, -2E3]
})";
  const auto c = nexa::BertConfig::from_json(write(minilm));
  CHECK(c.vocab_size == 30522);
  CHECK(c.hidden == 384);
  CHECK(c.layers == 6);
  CHECK(c.heads == 12);
  CHECK(c.intermediate == 1536);
  CHECK(c.max_position == 512);
  CHECK(c.type_vocab == 2);
  CHECK(c.layer_norm_eps == 1e-12);
  CHECK(c.dropout == 0.25);
  CHECK(c.attention_dropout == 0.1);
  CHECK(c.num_labels == 0);

  std::string classifier = minilm;
  classifier.replace(classifier.find("[\"BertModel\"]"), 13,
                     R"(["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b", "2": "c"})");
  CHECK(nexa::BertConfig::from_json(write(classifier)).num_labels == 3);

  std::string relu = minilm;
  relu.replace(relu.find("\"gelu\""), 6, "\"relu\"");
  CHECK_THROWS_WITH_AS((void)nexa::BertConfig::from_json(write(relu)),
                       doctest::Contains("hidden_act \"relu\" is not supported"), Error);
  CHECK_THROWS_WITH_AS(
      (void)nexa::BertConfig::from_json(write(R"({"vocab_size": 10, "hidden_size": 4})")),
      doctest::Contains("missing required keys: num_hidden_layers, num_attention_heads, intermediate_size"), Error);
  CHECK_THROWS_WITH_AS((void)nexa::BertConfig::from_json(write(R"({"vocab_size": 10,)")),
                       doctest::Contains("invalid JSON"), Error);
  std::filesystem::remove(path);
  CHECK_THROWS_WITH_AS((void)nexa::BertConfig::from_json(path), doctest::Contains("cannot open"), Error);
}
