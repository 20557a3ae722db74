#pragma once
// checkpoint.hpp: the demo's checkpoint directory, which nexa-route and nexa-generate load.
//   config.json              {"format": "nexa-moe-demo", "domains": [...], "lm": {sizes}, "vocab": "vocab.txt",
//                             "classifier_config": "classifier_config.json", "classifier_vocab": ...}
//   vocab.txt                the LM's compact vocabulary (lm_data::Vocab)
//   classifier_config.json   the router's BERT config (MiniLM's config.json; num_labels from "domains")
//   classifier_vocab.txt     the router's WordPiece vocabulary (MiniLM's vocab.txt)
//   nexa_moe.safetensors     NEXA-MOE: the LM (T5 names) and router.classifier_model.* (BERT names)
//   token_moe.safetensors, dense.safetensors   the baselines
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "../common/files.hpp"
#include "../common/lm_data.hpp"
#include "lm.hpp"
#include "nexa/io/json.hpp"

namespace nexa_moe {

inline constexpr const char* kCheckpointFormat = "nexa-moe-demo";

[[nodiscard]] inline std::string lm_config_json(const LMConfig& c) {
  return nexa::detail::concat("{\"vocab\": ", c.vocab, ", \"d_model\": ", c.d_model, ", \"heads\": ", c.heads,
                              ", \"layers\": ", c.layers, ", \"d_ff\": ", c.d_ff, ", \"experts\": ", c.experts,
                              ", \"relative_buckets\": ", c.relative_buckets,
                              ", \"relative_max_distance\": ", c.relative_max_distance, "}");
}

// The domain names as a JSON array's contents ("\"PHYS\", \"BIO\", \"MAT\"").
[[nodiscard]] inline std::string domains_json(const std::vector<std::string>& domains) {
  std::string names;
  for (std::size_t i = 0; i < domains.size(); ++i) names += (i ? ", " : "") + nexa::json::quote(domains[i]);
  return names;
}

// Writes config.json and copies the vocabularies and the classifier's config; the caller saves
// the models' safetensors next to them.
inline void write_checkpoint_config(const std::filesystem::path& dir, const LMConfig& lm,
                                    const std::vector<std::string>& domains, const std::filesystem::path& minilm,
                                    const lm_data::Vocab& vocab, std::size_t classifier_len) {
  std::filesystem::create_directories(dir);
  examples::write_file(
      dir / "config.json",
      nexa::detail::concat("{\"format\": \"", kCheckpointFormat, "\", \"domains\": [", domains_json(domains),
                           "], \"lm\": ", lm_config_json(lm), ", \"classifier_max_len\": ", classifier_len,
                           ", \"vocab\": \"vocab.txt\", \"classifier_config\": "
                           "\"classifier_config.json\", \"classifier_vocab\": "
                           "\"classifier_vocab.txt\", \"models\": {\"nexa-moe\": "
                           "\"nexa_moe.safetensors\", \"token-moe\": \"token_moe.safetensors\", "
                           "\"dense\": \"dense.safetensors\"}}\n"),
      "nexa-moe");
  vocab.save(dir / "vocab.txt");
  examples::write_file(dir / "classifier_config.json", examples::read_file(minilm / "config.json", "nexa-moe"),
                       "nexa-moe");
  examples::write_file(dir / "classifier_vocab.txt", examples::read_file(minilm / "vocab.txt", "nexa-moe"), "nexa-moe");
}

// A checkpoint's config.json, read; every problem is a nexa::Error naming the file and the field.
// nexa-moe's checkpoints and the checkpoints of the examples built on them share this reader.
struct ConfigJson {
  std::string context;
  nexa::json::Value root;

  [[nodiscard]] static ConfigJson read(const std::filesystem::path& dir) {
    const std::filesystem::path path = dir / "config.json";
    std::string context = nexa::detail::concat("checkpoint ", path.string());
    nexa::json::Value root = nexa::json::parse(examples::read_file(path, "checkpoint"), context);
    return {std::move(context), std::move(root)};
  }
  [[nodiscard]] const nexa::json::Value& field(const nexa::json::Value& obj, std::string_view key) const {
    const nexa::json::Value* f = obj.find(key);
    nexa::require(f != nullptr, context, "missing field \"", key, "\"");
    return *f;
  }
  [[nodiscard]] index_t positive_integer(const nexa::json::Value& obj, std::string_view key) const {
    const nexa::json::Value& f = field(obj, key);
    nexa::require(f.is_int64() && f.as_int64() > 0, context, "\"", key, "\" must be a positive integer");
    return static_cast<index_t>(f.as_int64());
  }
  [[nodiscard]] double number(const nexa::json::Value& obj, std::string_view key) const {
    const nexa::json::Value& f = field(obj, key);
    nexa::require(f.is_number(), context, "\"", key, "\" must be a number");
    return f.number;
  }
  // "format" must be `format`; `what` names the kind for the message ("a nexa-moe checkpoint").
  void require_format(std::string_view format, std::string_view what) const {
    const nexa::json::Value& f = field(root, "format");
    nexa::require(f.is_string() && f.string == format, context, "format expected \"", format, "\" (", what, ")");
  }
  [[nodiscard]] std::vector<std::string> domains() const {
    const nexa::json::Value& list = field(root, "domains");
    nexa::require(list.is_array() && !list.array.empty(), context, "\"domains\" must be a non-empty array");
    std::vector<std::string> out;
    for (const auto& d : list.array) {
      nexa::require(d.is_string(), context, "\"domains\" must hold strings");
      out.push_back(d.string);
    }
    return out;
  }
  [[nodiscard]] LMConfig lm() const {
    const nexa::json::Value& lm = field(root, "lm");
    LMConfig c;
    c.vocab = positive_integer(lm, "vocab");
    c.d_model = positive_integer(lm, "d_model");
    c.heads = positive_integer(lm, "heads");
    c.layers = positive_integer(lm, "layers");
    c.d_ff = positive_integer(lm, "d_ff");
    c.experts = positive_integer(lm, "experts");
    c.relative_buckets = positive_integer(lm, "relative_buckets");
    c.relative_max_distance = positive_integer(lm, "relative_max_distance");
    return c;
  }
};

// A module's parameters under a name prefix (loads one part of a bigger model's file).
template <class Module>
struct PrefixedParams {
  Module& module;
  std::string prefix;
  template <class F>
  void visit_params(F&& f) {
    module.visit_params(f, prefix);
  }
};

// What config.json says, with the directory it came from.
struct Checkpoint {
  std::filesystem::path dir;
  std::vector<std::string> domains;
  LMConfig lm;
  std::size_t classifier_max_len = 48;

  // Reads DIR/config.json; every problem is a nexa::Error naming the file and the field.
  [[nodiscard]] static Checkpoint open(const std::filesystem::path& dir) {
    const ConfigJson config = ConfigJson::read(dir);
    config.require_format(kCheckpointFormat, "a nexa-moe checkpoint");
    Checkpoint c;
    c.dir = dir;
    c.domains = config.domains();
    c.lm = config.lm();
    c.classifier_max_len = static_cast<std::size_t>(config.positive_integer(config.root, "classifier_max_len"));
    return c;
  }

  // The index of a domain name or tag ("PHYS" or "[PHYS]"), or nexa::Error listing the domains.
  [[nodiscard]] int domain_index(std::string_view what, std::string tag) const {
    const std::string given = tag;
    if (tag.size() > 2 && tag.front() == '[' && tag.back() == ']') tag = tag.substr(1, tag.size() - 2);
    std::string known;
    for (std::size_t i = 0; i < domains.size(); ++i) {
      if (domains[i] == tag) return static_cast<int>(i);
      if (i > 0) known += ", ";
      known += domains[i];
    }
    throw nexa::Error(nexa::detail::concat(what, ": '", given, "' is not a domain of the checkpoint (", known, ")"));
  }

  [[nodiscard]] nexa::WordPieceTokenizer classifier_vocab() const {
    return nexa::WordPieceTokenizer::from_vocab_file(dir / "classifier_vocab.txt");
  }

  // The router's BERT config, one label per domain.
  [[nodiscard]] nexa::BertConfig classifier_config() const {
    nexa::BertConfig config = nexa::BertConfig::from_json(dir / "classifier_config.json");
    config.num_labels = static_cast<index_t>(domains.size());
    return config;
  }

  // The NEXA-MOE router alone: its BERT classifier from nexa_moe.safetensors
  // (router.classifier_model.*), in eval mode.
  [[nodiscard]] DomainRouter router() const {
    const nexa::BertConfig config = classifier_config();
    nexa::Rng rng(0);
    nexa::BertModel<> bert(config, rng);
    PrefixedParams prefixed{bert, "router.classifier_model"};
    nexa::load_safetensors(prefixed, dir / "nexa_moe.safetensors", /*strict=*/false);
    bert.set_training(false);
    return DomainRouter({.d_model = config.hidden, .num_experts = config.num_labels}, std::move(bert));
  }

  // The whole NEXA-MOE model (LM and router), from nexa_moe.safetensors, in eval mode.
  [[nodiscard]] NexaMoeLM model() const {
    nexa::Rng rng(0);
    NexaMoeLM m(lm, nexa::BertModel<>(classifier_config(), rng), 0.0, rng);
    nexa::load_safetensors(m, dir / "nexa_moe.safetensors");
    m.set_training(false);
    m.router->classifier.set_training(false);
    return m;
  }
};

// A routing's probabilities for sequence b as a JSON array ("[0.9806, 0.0137, 0.0057]").
template <class Routing>
[[nodiscard]] std::string probs_json(const Routing& routing, index_t b) {
  const index_t E = routing.probs.dim(1);
  std::string out = "[";
  for (index_t e = 0; e < E; ++e) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.4f", e ? ", " : "", static_cast<double>(routing.probs.data()[b * E + e]));
    out += buf;
  }
  return out + "]";
}

}  // namespace nexa_moe
