#pragma once
// BertConfig: the hyperparameters of a BERT encoder, defaults as bert-base-uncased, and
// BertConfig::from_json reading a Hugging Face config.json.
//
// config.json holds floats, booleans and null, which nexa/io/json.hpp (the safetensors-header
// subset) rejects, so this header carries a small reader for the full JSON grammar
// (models_detail::parse_config_json): numbers become doubles, nesting is bounded, every error
// names the file and byte offset.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/shape.hpp"

namespace nexa {

namespace models_detail {

struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;

  [[nodiscard]] const JsonValue* find(std::string_view k) const {
    for (const auto& [name, v] : object)
      if (name == k) return &v;
    return nullptr;
  }
};

class ConfigJsonParser {
 public:
  ConfigJsonParser(std::string_view text, std::string context) : text_(text), context_(std::move(context)) {}

  JsonValue parse() {
    ws();
    JsonValue v = value(0);
    ws();
    if (pos_ != text_.size()) fail("unexpected characters after the top-level value");
    return v;
  }

 private:
  [[noreturn]] void fail(std::string_view what) const {
    throw Error(detail::concat(context_, ": invalid JSON at byte ", pos_, ": ", what));
  }
  void ws() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' || text_[pos_] == '\t'))
      ++pos_;
  }
  void expect(char c) {
    if (pos_ >= text_.size() || text_[pos_] != c) fail(detail::concat("expected '", c, "'"));
    ++pos_;
  }
  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  JsonValue value(int depth) {
    if (depth > 64) fail("nesting deeper than 64 levels");
    if (pos_ >= text_.size()) fail("expected a value, got the end of the text");
    JsonValue v;
    const char c = text_[pos_];
    if (c == '{') {
      v.kind = JsonValue::Kind::Object;
      ++pos_;
      ws();
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        return v;
      }
      for (;;) {
        ws();
        if (pos_ >= text_.size() || text_[pos_] != '"') fail("expected a string key");
        std::string k = string();
        ws();
        expect(':');
        ws();
        v.object.emplace_back(std::move(k), value(depth + 1));
        ws();
        if (pos_ < text_.size() && text_[pos_] == ',') {
          ++pos_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = JsonValue::Kind::Array;
      ++pos_;
      ws();
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return v;
      }
      for (;;) {
        ws();
        v.array.push_back(value(depth + 1));
        ws();
        if (pos_ < text_.size() && text_[pos_] == ',') {
          ++pos_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = JsonValue::Kind::String;
      v.string = string();
      return v;
    }
    if (literal("true")) {
      v.kind = JsonValue::Kind::Bool;
      v.boolean = true;
      return v;
    }
    if (literal("false")) {
      v.kind = JsonValue::Kind::Bool;
      return v;
    }
    if (literal("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = JsonValue::Kind::Number;
      std::size_t end = pos_;
      while (end < text_.size() && std::string_view("+-0123456789.eE").find(text_[end]) != std::string_view::npos)
        ++end;
      const auto [ptr, ec] = std::from_chars(text_.data() + pos_, text_.data() + end, v.number);
      if (ec != std::errc() || ptr != text_.data() + end) fail("malformed number");
      pos_ = end;
      return v;
    }
    fail(detail::concat("unexpected character '", c, "'"));
  }

  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (pos_ >= text_.size()) fail("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) fail("unterminated escape");
      const char e = text_[pos_++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          // Config keys and the values read here are ASCII; other code points are kept as '?'.
          if (text_.size() - pos_ < 4) fail("truncated \\u escape");
          pos_ += 4;
          out += '?';
          break;
        }
        default:
          out += e;  // \" \\ \/
      }
    }
  }

  std::string_view text_;
  std::string context_;
  std::size_t pos_ = 0;
};

inline JsonValue parse_config_json(std::string_view text, std::string context) {
  return ConfigJsonParser(text, std::move(context)).parse();
}

}  // namespace models_detail

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
    const models_detail::JsonValue root = models_detail::parse_config_json(text.str(), context);
    require(root.kind == models_detail::JsonValue::Kind::Object, context, ": the top level must be an object");

    BertConfig c;
    std::vector<std::string> missing;
    const auto integer = [&](std::string_view key, index_t& out, bool required) {
      const auto* v = root.find(key);
      if (!v) {
        if (required) missing.emplace_back(key);
        return;
      }
      require(v->kind == models_detail::JsonValue::Kind::Number && v->number == std::floor(v->number) &&
                  std::abs(v->number) < 9.0e15,
              context, ": \"", key, "\" must be an integer");
      out = static_cast<index_t>(v->number);
    };
    const auto real = [&](std::string_view key, double& out) {
      const auto* v = root.find(key);
      if (!v || v->kind == models_detail::JsonValue::Kind::Null) return;
      require(v->kind == models_detail::JsonValue::Kind::Number, context, ": \"", key, "\" must be a number");
      out = v->number;
    };
    const auto text_field = [&](std::string_view key) -> std::string {
      const auto* v = root.find(key);
      if (!v || v->kind != models_detail::JsonValue::Kind::String) return {};
      return v->string;
    };
    integer("vocab_size", c.vocab_size, true);
    integer("hidden_size", c.hidden, true);
    integer("num_hidden_layers", c.layers, true);
    integer("num_attention_heads", c.heads, true);
    integer("intermediate_size", c.intermediate, true);
    integer("max_position_embeddings", c.max_position, false);
    integer("type_vocab_size", c.type_vocab, false);
    if (const auto* pad = root.find("pad_token_id"); pad && pad->kind == models_detail::JsonValue::Kind::Null)
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
    if (const auto* arch = root.find("architectures"); arch && arch->kind == models_detail::JsonValue::Kind::Array)
      for (const auto& a : arch->array)
        if (a.kind == models_detail::JsonValue::Kind::String &&
            a.string.find("ForSequenceClassification") != std::string::npos)
          classifier = true;
    if (classifier) {
      c.num_labels = 2;  // transformers' default
      if (const auto* labels = root.find("id2label"); labels && labels->kind == models_detail::JsonValue::Kind::Object)
        c.num_labels = static_cast<index_t>(labels->object.size());
    }
    c.validate();
    return c;
  }
};

}  // namespace nexa
