#pragma once
// A confusion matrix over named classes (rows: true class, columns: predicted) and what the
// examples report from it: accuracy, per-class accuracy (recall), macro-averaged accuracy (the
// mean over the classes present: what an imbalanced set needs), the accuracy of always answering
// one class, and a text table. One definition for nexa-route, nexa-moe and nexa-nb-baseline.
#include <cstddef>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nexa/core/error.hpp"

namespace examples {

struct Confusion {
  std::vector<std::string> labels;
  std::vector<std::vector<std::size_t>> counts;  // [true][predicted]

  Confusion() = default;
  explicit Confusion(std::vector<std::string> class_labels)
      : labels(std::move(class_labels)), counts(labels.size(), std::vector<std::size_t>(labels.size(), 0)) {}

  void add(std::size_t truth, std::size_t predicted) {
    nexa::require(truth < labels.size() && predicted < labels.size(), "Confusion", "class index out of range: true ",
                  truth, ", predicted ", predicted, " with ", labels.size(), " classes");
    ++counts[truth][predicted];
  }

  [[nodiscard]] std::size_t total() const {
    std::size_t n = 0;
    for (std::size_t c = 0; c < counts.size(); ++c) n += support(c);
    return n;
  }
  [[nodiscard]] std::size_t support(std::size_t c) const {
    nexa::require(c < labels.size(), "Confusion", "class index ", c, " out of range (", labels.size(), " classes)");
    std::size_t n = 0;
    for (const std::size_t x : counts[c]) n += x;
    return n;
  }
  [[nodiscard]] std::size_t correct() const {
    std::size_t n = 0;
    for (std::size_t c = 0; c < counts.size(); ++c) n += counts[c][c];
    return n;
  }
  // Fraction right; NaN on an empty set.
  [[nodiscard]] double accuracy() const { return ratio(correct(), total()); }
  // Recall of class c: the fraction of its samples predicted as c; NaN when it has none.
  [[nodiscard]] double class_accuracy(std::size_t c) const {
    const std::size_t n = support(c);  // checks c
    return ratio(counts[c][c], n);
  }
  // The mean of the per-class accuracies over the classes with samples (balanced accuracy).
  [[nodiscard]] double macro_accuracy() const {
    double sum = 0;
    std::size_t present = 0;
    for (std::size_t c = 0; c < counts.size(); ++c) {
      if (support(c) == 0) continue;
      sum += class_accuracy(c);
      ++present;
    }
    return present == 0 ? std::numeric_limits<double>::quiet_NaN() : sum / static_cast<double>(present);
  }
  // The accuracy of always answering class c (c = the training majority: the trivial floor).
  [[nodiscard]] double constant_accuracy(std::size_t c) const { return ratio(support(c), total()); }

  // The matrix as text under a heading, e.g. "confusion (rows: true domain, columns: routed to)".
  [[nodiscard]] std::string table(std::string_view heading) const {
    std::string out(heading);
    out += '\n';
    out += cell("%-6s", "");
    for (const std::string& l : labels) out += cell(" %6s", l.c_str());
    out += '\n';
    for (std::size_t r = 0; r < counts.size(); ++r) {
      out += cell("%-6s", labels[r].c_str());
      for (const std::size_t x : counts[r]) out += cell(" %6zu", x);
      out += '\n';
    }
    return out;
  }

 private:
  static double ratio(std::size_t num, std::size_t den) {
    return den == 0 ? std::numeric_limits<double>::quiet_NaN() : static_cast<double>(num) / static_cast<double>(den);
  }
  template <class V>
  static std::string cell(const char* format, V value) {
    char buf[64];
    const int n = std::snprintf(buf, sizeof buf, format, value);
    const std::size_t written = n > 0 ? static_cast<std::size_t>(n) : 0;
    return std::string(buf, written < sizeof buf ? written : sizeof buf - 1);  // a long label is cut
  }
};

}  // namespace examples
