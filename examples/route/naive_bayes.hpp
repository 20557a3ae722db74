#pragma once
// A bag-of-words multinomial naive Bayes text classifier and the evaluation helpers of issue 7's
// routing CLI: the floor that the NEXA-MOE domain router (PHYS / BIO / MAT) must beat.
//
// Tokens: maximal runs of ASCII letters, ASCII digits and non-ASCII bytes (so that UTF-8
// letters stay inside their word: "zoöl"), ASCII lower-cased; everything else separates. No
// stemming, no stop words.
// Model: P(c | d) ∝ P(c) · Π_{t in d} P(t | c), with the prior P(c) = N_c / N (training
// documents of class c over all) and P(t | c) = (n_{t,c} + α) / (n_c + α·|V|) (Laplace
// smoothing, α = 1 by default; n_{t,c} = occurrences of token t in class c's training documents,
// n_c = all tokens of class c, V = the training vocabulary). Computed in log space; tokens outside
// the training vocabulary are skipped; the posteriors are the soft-max of the log scores.
// Evaluation: examples::Confusion (common/confusion.hpp) over the predictions. JSON-lines input: one object per line
// with string fields "text" and "domain"; malformed lines are reported with their line number and skipped, the rest are
// read. Errors are nexa::Error.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../common/confusion.hpp"
#include "../common/files.hpp"
#include "nexa/core/error.hpp"
#include "nexa/io/json.hpp"

namespace nb {

inline constexpr std::string_view kModule = "naive-bayes";

// ---------------------------------------------------------------------------------------------
// Tokens.

[[nodiscard]] inline bool is_word_byte(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

[[nodiscard]] inline std::vector<std::string> tokenize(std::string_view text) {
  std::vector<std::string> tokens;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && !is_word_byte(text[i])) ++i;
    if (i >= text.size()) break;
    std::string token;
    while (i < text.size() && is_word_byte(text[i])) {
      const char c = text[i++];
      token += c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    }
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// The classifier.

struct LabelledText {
  std::string text;
  std::size_t label = 0;  // index into the label list
};

struct Model {
  std::vector<std::string> labels;
  double alpha = 1.0;
  std::vector<std::size_t> documents;                                // training documents per class
  std::vector<std::size_t> tokens;                                   // training tokens per class
  std::unordered_map<std::string, std::vector<std::size_t>> counts;  // token -> occurrences per class

  [[nodiscard]] std::size_t num_classes() const { return labels.size(); }
  [[nodiscard]] std::size_t vocabulary_size() const { return counts.size(); }
  [[nodiscard]] std::size_t num_documents() const {
    std::size_t n = 0;
    for (const std::size_t d : documents) n += d;
    return n;
  }
};

// Trains on `data` (labels are indices into `labels`); every class needs a training document.
[[nodiscard]] inline Model train(const std::vector<LabelledText>& data, std::vector<std::string> labels,
                                 double alpha = 1.0) {
  nexa::require(!labels.empty(), kModule, "no labels");
  nexa::require(alpha > 0 && std::isfinite(alpha), kModule, "the smoothing alpha must be positive, got ", alpha);
  Model m;
  m.labels = std::move(labels);
  m.alpha = alpha;
  const std::size_t k = m.labels.size();
  m.documents.assign(k, 0);
  m.tokens.assign(k, 0);
  for (const LabelledText& s : data) {
    nexa::require(s.label < k, kModule, "label index ", s.label, " out of range (", k, " labels)");
    ++m.documents[s.label];
    for (std::string& t : tokenize(s.text)) {
      auto [it, inserted] = m.counts.try_emplace(std::move(t));
      if (inserted) it->second.assign(k, 0);
      ++it->second[s.label];
      ++m.tokens[s.label];
    }
  }
  for (std::size_t c = 0; c < k; ++c) {
    nexa::require(m.documents[c] > 0, kModule, "no training document for label '", m.labels[c], "'");
  }
  return m;
}

struct Prediction {
  std::size_t label = 0;           // argmax (the first on a tie)
  std::vector<double> probs;       // posterior per class, summing to 1
  std::vector<double> log_scores;  // log P(c) + Σ log P(t | c), unnormalised
  std::size_t known_tokens = 0;    // tokens of the text found in the vocabulary
};

[[nodiscard]] inline Prediction predict(const Model& m, std::string_view text) {
  const std::size_t k = m.num_classes();
  const double n = static_cast<double>(m.num_documents());
  const double v = static_cast<double>(m.vocabulary_size());
  Prediction p;
  p.log_scores.resize(k);
  std::vector<double> log_denominator(k);
  for (std::size_t c = 0; c < k; ++c) {
    p.log_scores[c] = std::log(static_cast<double>(m.documents[c]) / n);
    log_denominator[c] = std::log(static_cast<double>(m.tokens[c]) + m.alpha * v);
  }
  for (const std::string& t : tokenize(text)) {
    const auto it = m.counts.find(t);
    if (it == m.counts.end()) continue;
    ++p.known_tokens;
    for (std::size_t c = 0; c < k; ++c) {
      p.log_scores[c] += std::log(static_cast<double>(it->second[c]) + m.alpha) - log_denominator[c];
    }
  }
  p.label = static_cast<std::size_t>(std::max_element(p.log_scores.begin(), p.log_scores.end()) - p.log_scores.begin());
  const double top = p.log_scores[p.label];
  p.probs.resize(k);
  double sum = 0;
  for (std::size_t c = 0; c < k; ++c) sum += p.probs[c] = std::exp(p.log_scores[c] - top);
  for (double& q : p.probs) q /= sum;
  return p;
}

// ---------------------------------------------------------------------------------------------
// Metrics.

// The metrics (accuracy, per-class, macro, majority floor) are the examples' shared confusion matrix.
using Evaluation = examples::Confusion;

[[nodiscard]] inline Evaluation evaluate(const std::vector<std::string>& labels, const std::vector<std::size_t>& truth,
                                         const std::vector<std::size_t>& predicted) {
  nexa::require(truth.size() == predicted.size(), kModule, "evaluate: ", truth.size(), " true labels but ",
                predicted.size(), " predictions");
  Evaluation e(labels);
  for (std::size_t i = 0; i < truth.size(); ++i) e.add(truth[i], predicted[i]);
  return e;
}

[[nodiscard]] inline Evaluation evaluate(const Model& m, const std::vector<LabelledText>& data) {
  std::vector<std::size_t> truth;
  std::vector<std::size_t> predicted;
  truth.reserve(data.size());
  predicted.reserve(data.size());
  for (const LabelledText& s : data) {
    truth.push_back(s.label);
    predicted.push_back(predict(m, s.text).label);
  }
  return evaluate(m.labels, truth, predicted);
}

// The index of the class with the most training documents (the first on a tie).
[[nodiscard]] inline std::size_t majority_class(const Model& m) {
  return static_cast<std::size_t>(std::max_element(m.documents.begin(), m.documents.end()) - m.documents.begin());
}

// ---------------------------------------------------------------------------------------------
// JSON lines.

struct ReadResult {
  std::vector<LabelledText> samples;
  std::vector<std::string> errors;  // "SOURCE:LINE: what", one per malformed line
  std::size_t lines = 0;            // non-blank lines
};

// Reads JSON lines {"text": ..., "domain": ...} (other fields ignored); `domain` must be one of
// `labels`. A malformed line (invalid JSON, not an object, a missing or non-string field, an
// unknown domain) is recorded in `errors` and skipped; blank lines are ignored.
[[nodiscard]] inline ReadResult read_jsonl(std::string_view data, std::string_view source,
                                           const std::vector<std::string>& labels, std::string_view text_field = "text",
                                           std::string_view label_field = "domain") {
  ReadResult out;
  examples::for_each_line(data, [&](std::string_view line, std::size_t line_no) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;
    ++out.lines;
    const std::string where = nexa::detail::concat(source, ":", line_no);
    try {
      const nexa::json::Value v = nexa::json::parse(line, where);
      nexa::require(v.is_object(), where, "not a JSON object");
      const nexa::json::Value* text = v.find(text_field);
      nexa::require(text != nullptr && text->is_string(), where, "no string field \"", text_field, "\"");
      const nexa::json::Value* label = v.find(label_field);
      nexa::require(label != nullptr && label->is_string(), where, "no string field \"", label_field, "\"");
      const auto it = std::find(labels.begin(), labels.end(), label->string);
      if (it == labels.end()) {
        std::string expected;
        for (std::size_t c = 0; c < labels.size(); ++c) {
          expected += nexa::detail::concat(c == 0 ? "" : c + 1 == labels.size() ? " or " : ", ", labels[c]);
        }
        throw nexa::Error(
            nexa::detail::concat(where, ": unknown ", label_field, " '", label->string, "' (expected ", expected, ")"));
      }
      out.samples.push_back(LabelledText{text->string, static_cast<std::size_t>(it - labels.begin())});
    } catch (const nexa::Error& e) {
      out.errors.emplace_back(e.what());
    }
  });
  return out;
}

}  // namespace nb
