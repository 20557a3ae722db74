#pragma once
// route_table.hpp: NEXA-MOE's frozen BERT router, run once per definition. The shared-expert
// trainer never trains the router, so a definition's routing logits are the same at every step
// and for every initialisation: RouteTable computes them once (route_definitions) and then
// stands in for the BERT classifier inside the library's SequenceClassifierRouter, looking the
// logits up by definition index. The router's softmax, top-1 choice and per-token broadcast are
// the library's own; only the BERT forward is cached.
//
//   auto table = std::make_shared<RouteTable<>::Table>(definitions, 3);
//   route_definitions(*table, bert, wordpiece, texts, indices, 48, 32);  // BERT, once each
//   hub = std::make_shared<SequenceClassifierRouter<RouteTable<>, 1>>(config, RouteTable<>(table));
//   hub->classify(table_batch(indices));   // ids [B, 1] = definition indices
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "../nexa_moe/data.hpp"
#include "nexa/core/error.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/models/bert.hpp"
#include "nexa/moe/sequence_router.hpp"

namespace nexus_shared {

using nexa::index_t;

// A classifier with no parameters whose logits for definition i are row i of a table.
template <class T = float, class D = nexa::cpu>
class RouteTable {
 public:
  // Routing logits of `definitions` definitions, [definitions, labels]; NaN rows are not routed yet.
  struct Table {
    index_t definitions = 0, labels = 0;
    std::vector<float> logits;
    Table() = default;
    Table(index_t n, index_t e)
        : definitions(n), labels(e), logits(static_cast<std::size_t>(n * e), std::numeric_limits<float>::quiet_NaN()) {}
    [[nodiscard]] bool routed(index_t i) const { return !std::isnan(logits[static_cast<std::size_t>(i * labels)]); }
    [[nodiscard]] const float* row(index_t i) const { return logits.data() + i * labels; }
    [[nodiscard]] float* row(index_t i) { return logits.data() + i * labels; }
  };
  struct Config {
    index_t num_labels = 0;
  };
  struct Output {
    nexa::Tensor<T, D> logits;  // [B, labels]
  };
  struct Grads {
    nexa::TensorView<const T, D> logits = {};
  };
  struct Cache {};
  template <class T2, class D2>
  using rebind = RouteTable<T2, D2>;

  RouteTable() = default;
  explicit RouteTable(std::shared_ptr<const Table> table) : table_(std::move(table)) {
    nexa::require(table_ != nullptr, "RouteTable", "needs a table, got a null pointer");
    config_.num_labels = table_->labels;
  }

  [[nodiscard]] const Config& config() const { return config_; }
  void set_training(bool) {}

  // ids: [B, 1] (or [B, S], column 0 read) of definition indices; token_types and mask unused.
  [[nodiscard]] Output forward(nexa::TensorView<const std::int32_t, D> ids, nexa::TensorView<const std::int32_t, D>,
                               nexa::TensorView<const std::int32_t, D>, Cache&) const {
    nexa::require(table_ != nullptr, "RouteTable", "no table (default-constructed)");
    nexa::require(ids.rank() == 2 && ids.dim(1) >= 1, "RouteTable", "ids expected [B, 1], got ", ids.shape());
    const index_t B = ids.dim(0), E = table_->labels;
    Output out{nexa::Tensor<T, D>::uninitialized({B, E})};
    for (index_t b = 0; b < B; ++b) {
      const index_t i = ids.data()[b * ids.dim(1)];
      nexa::require(i >= 0 && i < table_->definitions, "RouteTable", "definition ", i, " is outside [0, ",
                    table_->definitions, ")");
      nexa::require(table_->routed(i), "RouteTable", "definition ", i, " has not been routed (route_definitions)");
      for (index_t e = 0; e < E; ++e) out.logits.data()[b * E + e] = static_cast<T>(table_->row(i)[e]);
    }
    return out;
  }
  // Frozen: nothing to accumulate, and no input gradient.
  [[nodiscard]] nexa::Tensor<T, D> backward(const Grads&, Cache&) { return {}; }

  template <class F>
  void visit_params(F&&, const std::string& = "") {}

 private:
  std::shared_ptr<const Table> table_;
  Config config_;
};

using Table = RouteTable<>::Table;

// The classifier batch for definitions `indices`: ids [B, 1] holding the indices.
[[nodiscard]] inline nexa::SequenceBatch table_batch(std::span<const std::size_t> indices, std::size_t offset = 0) {
  std::vector<std::int32_t> ids;
  ids.reserve(indices.size());
  for (const std::size_t i : indices) ids.push_back(static_cast<std::int32_t>(i + offset));
  nexa::SequenceBatch out;
  out.ids = nexa::Tensor<std::int32_t>::from_host({static_cast<index_t>(ids.size()), 1}, ids);
  return out;
}

// Runs the BERT classifier (eval mode) on the texts of the definitions `todo` (indices into
// `texts`, stored at row offset + index) that are not routed yet, `batch` at a time:
// "[CLS] text [SEP]" cut to max_len WordPiece ids, as nexa-moe routes them. on_batch(done, total)
// reports progress. Returns the number of definitions classified.
template <class Bert, class OnBatch>
std::size_t route_definitions(Table& table, Bert& bert, const nexa::WordPieceTokenizer& wordpiece,
                              std::span<const std::string> texts, std::span<const std::size_t> todo, std::size_t offset,
                              std::size_t max_len, std::size_t batch, OnBatch&& on_batch) {
  nexa::require(batch >= 1, "route_definitions", "batch must be at least 1");
  nexa::require(bert.config().num_labels == table.labels, "route_definitions", "the classifier has ",
                bert.config().num_labels, " labels, the table ", table.labels);
  std::vector<std::size_t> missing;
  for (const std::size_t i : todo) {
    nexa::require(i < texts.size() && static_cast<index_t>(i + offset) < table.definitions, "route_definitions",
                  "definition ", i, " is outside the texts or the table");
    if (!table.routed(static_cast<index_t>(i + offset))) missing.push_back(i);
  }
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  for (std::size_t start = 0; start < missing.size(); start += batch) {
    const std::size_t end = std::min(missing.size(), start + batch);
    std::vector<std::string> chunk;
    for (std::size_t j = start; j < end; ++j) chunk.push_back(texts[missing[j]]);
    const nexa::SequenceBatch enc = nexa_moe::classifier_batch(wordpiece, chunk, max_len);
    const auto out = bert.apply(enc.ids.cview(), enc.token_types.cview(), enc.mask.cview());
    for (std::size_t j = start; j < end; ++j)
      for (index_t e = 0; e < table.labels; ++e)
        table.row(static_cast<index_t>(missing[j] + offset))[e] =
            static_cast<float>(out.logits.data()[static_cast<index_t>(j - start) * table.labels + e]);
    on_batch(end, missing.size());
  }
  return missing.size();
}

}  // namespace nexus_shared
