#pragma once
// BertConfig: the hyperparameters of a BERT encoder, defaults as bert-base-uncased, and
// BertConfig::from_json reading a Hugging Face config.json.
//
// The file is read with nexa/io/json.hpp; every error names the file (and, for malformed JSON,
// the byte offset).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/shape.hpp"
#include "nexa/io/json.hpp"

namespace nexa {

struct BertConfig {
  index_t vocab_size = 30522;
  index_t hidden = 768;         // hidden_size
  index_t layers = 12;          // num_hidden_layers
  index_t heads = 12;           // num_attention_heads
  index_t intermediate = 3072;  // intermediate_size
  index_t max_position = 512;   // max_position_embeddings
  index_t type_vocab = 2;       // type_vocab_size
  double layer_norm_eps = 1e-12;
  double dropout = 0.1;            // hidden_dropout_prob: embeddings, sublayer outputs, classifier
  index_t num_labels = 0;          // > 0 adds the sequence-classification head (classifier.*)
  double attention_dropout = 0.1;  // attention_probs_dropout_prob
  double init_std = 0.02;          // initializer_range
  index_t pad_token_id = 0;        // its word-embedding row starts at 0 and gets no gradient; -1: none

  // Throws nexa::Error naming the first invalid field.
  void validate() const {
    require(vocab_size > 0 && hidden > 0 && layers > 0 && heads > 0 && intermediate > 0 && max_position > 0 &&
                type_vocab > 0,
            "BertConfig",
            "vocab_size, hidden, layers, heads, intermediate, max_position and type_vocab must be positive, got ",
            vocab_size, ", ", hidden, ", ", layers, ", ", heads, ", ", intermediate, ", ", max_position, ", ",
            type_vocab);
    require(hidden % heads == 0, "BertConfig", "hidden (", hidden, ") must be a multiple of heads (", heads, ")");
    require(num_labels >= 0, "BertConfig", "num_labels must be non-negative, got ", num_labels);
    require(std::isfinite(layer_norm_eps) && layer_norm_eps >= 0, "BertConfig",
            "layer_norm_eps must be finite and non-negative, got ", layer_norm_eps);
    require(0 <= dropout && dropout < 1 && 0 <= attention_dropout && attention_dropout < 1, "BertConfig",
            "dropout and attention_dropout must be in [0, 1), got ", dropout, " and ", attention_dropout);
    require(init_std >= 0, "BertConfig", "init_std must be non-negative, got ", init_std);
  }

  // Reads a Hugging Face BERT config.json (a file, or a directory holding config.json). Required:
  // vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size; the rest
  // default as above. hidden_act must be "gelu" (erf) and position_embedding_type "absolute".
  // num_labels is the size of id2label when "architectures" names a *ForSequenceClassification
  // model, else 0 (a base BertModel checkpoint has no classifier).
  [[nodiscard]] static BertConfig from_json(const std::filesystem::path& path_in) {
    std::filesystem::path path = path_in;
    if (std::filesystem::is_directory(path)) path /= "config.json";
    const std::string context = detail::concat("BertConfig: ", path.string());
    std::ifstream in(path, std::ios::binary);
    require(in.is_open(), context, ": cannot open the file");
    std::ostringstream text;
    text << in.rdbuf();
    const json::Value root = json::parse(text.str(), context);
    require(root.is_object(), context, ": the top level must be an object");

    BertConfig c;
    std::vector<std::string> missing;
    // An integer, also when written as an integral float (512.0, 5e2).
    const auto integer = [&](std::string_view key, index_t& out, bool required) {
      const auto* v = root.find(key);
      if (!v) {
        if (required) missing.emplace_back(key);
        return;
      }
      if (v->is_int64()) {
        out = static_cast<index_t>(v->as_int64());
        return;
      }
      require(v->is_float() && v->number == std::floor(v->number) && std::abs(v->number) < 9.0e15, context, ": \"", key,
              "\" must be an integer");
      out = static_cast<index_t>(v->number);
    };
    const auto real = [&](std::string_view key, double& out) {
      const auto* v = root.find(key);
      if (!v || v->is_null()) return;
      require(v->is_number(), context, ": \"", key, "\" must be a number");
      out = v->as_double();
    };
    const auto text_field = [&](std::string_view key) -> std::string {
      const auto* v = root.find(key);
      if (!v || !v->is_string()) return {};
      return v->string;
    };
    integer("vocab_size", c.vocab_size, true);
    integer("hidden_size", c.hidden, true);
    integer("num_hidden_layers", c.layers, true);
    integer("num_attention_heads", c.heads, true);
    integer("intermediate_size", c.intermediate, true);
    integer("max_position_embeddings", c.max_position, false);
    integer("type_vocab_size", c.type_vocab, false);
    if (const auto* pad = root.find("pad_token_id"); pad && pad->is_null())
      c.pad_token_id = -1;
    else
      integer("pad_token_id", c.pad_token_id, false);
    real("layer_norm_eps", c.layer_norm_eps);
    real("hidden_dropout_prob", c.dropout);
    real("attention_probs_dropout_prob", c.attention_dropout);
    real("initializer_range", c.init_std);
    if (!missing.empty()) {
      std::string list;
      for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
      throw Error(detail::concat(context, ": missing required keys: ", list));
    }
    const std::string act = text_field("hidden_act");
    require(act.empty() || act == "gelu", context, ": hidden_act \"", act,
            "\" is not supported (only \"gelu\", the exact erf form)");
    const std::string pos = text_field("position_embedding_type");
    require(pos.empty() || pos == "absolute", context, ": position_embedding_type \"", pos,
            "\" is not supported (only \"absolute\")");
    bool classifier = false;
    if (const auto* arch = root.find("architectures"); arch && arch->is_array())
      for (const auto& a : arch->array)
        if (a.is_string() && a.string.find("ForSequenceClassification") != std::string::npos) classifier = true;
    if (classifier) {
      c.num_labels = 2;  // transformers' default
      if (const auto* labels = root.find("id2label"); labels && labels->is_object())
        c.num_labels = static_cast<index_t>(labels->object.size());
    }
    c.validate();
    return c;
  }
};

}  // namespace nexa
