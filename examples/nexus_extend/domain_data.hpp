#pragma once
// domain_data.hpp: the data side of nexus-extend.
//   spread_texts       n texts of a domain spread evenly over its file (the corpus files are in
//                      headword order, so the first n would all start with "a")
//   domain_embeddings  one Nexus domain embedding per domain: the mean of the MiniLM sentence
//                      embeddings (mean pooling, L2 norm) of its texts (SentenceEncoder)
//   RouteCounter       tokens per (layer, domain, expert) from the MoE layers' routings, and the
//                      share each domain sends to its own expert (routing accuracy)
//   MixedBatches       training batches drawn from several domains in fixed shares (split: by domain)
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../common/lm_data.hpp"
#include "nexa/models/sentence_encoder.hpp"

namespace nexus_extend {

using nexa::index_t;

// Up to n texts of `samples`, evenly spaced (all of them when n >= size).
[[nodiscard]] inline std::vector<std::string> spread_texts(std::span<const lm_data::Sample> samples, std::size_t n) {
  std::vector<std::string> out;
  const std::size_t take = std::min(n, samples.size());
  out.reserve(take);
  for (std::size_t i = 0; i < take; ++i) out.push_back(samples[i * samples.size() / take].text);
  return out;
}

// [domains, dim]: row d = the mean sentence embedding of texts[d].
[[nodiscard]] inline nexa::Tensor<float> domain_embeddings(nexa::SentenceEncoder& encoder,
                                                           const std::vector<std::vector<std::string>>& texts) {
  auto out = nexa::Tensor<float>::uninitialized({static_cast<index_t>(texts.size()), encoder.dim()});
  for (std::size_t d = 0; d < texts.size(); ++d) {
    const nexa::Tensor<float> e = encoder.domain_embedding(texts[d]);
    std::copy_n(e.data(), e.numel(), out.data() + static_cast<index_t>(d) * encoder.dim());
  }
  return out;
}

// Non-padding tokens per (layer, domain, expert).
class RouteCounter {
 public:
  RouteCounter(std::size_t layers, std::size_t domains, std::size_t experts)
      : layers_(layers), domains_(domains), experts_(experts), counts_(layers * domains * experts, 0.0) {}

  // One layer's routing (cache.router.routing.experts, [tokens, 1]) of a batch whose rows are
  // sequences of `domains[b]`.
  template <class MoECache>
  void add(std::size_t layer, const MoECache& cache, const lm_data::Batch& batch) {
    const auto& chosen = cache.router.routing.experts;
    const index_t S = batch.ids.dim(1);
    for (index_t t = 0; t < batch.ids.numel(); ++t) {
      if (batch.mask.data()[t] == 0) continue;
      const auto domain = static_cast<std::size_t>(batch.domains[static_cast<std::size_t>(t / S)]);
      const auto expert = static_cast<std::size_t>(chosen.data()[t]);
      nexa::require(layer < layers_ && domain < domains_ && expert < experts_, "RouteCounter", "layer ", layer,
                    ", domain ", domain, " or expert ", expert, " outside [", layers_, ", ", domains_, ", ", experts_,
                    ")");
      counts_[(layer * domains_ + domain) * experts_ + expert] += 1;
    }
  }

  // Share of `domain`'s tokens that `layer` sends to `expert`; layer = layers() sums all layers.
  [[nodiscard]] double share(std::size_t layer, std::size_t domain, std::size_t expert) const {
    double total = 0, hit = 0;
    for (std::size_t l = 0; l < layers_; ++l) {
      if (layer != layers_ && l != layer) continue;
      for (std::size_t e = 0; e < experts_; ++e) total += counts_[(l * domains_ + domain) * experts_ + e];
      hit += counts_[(l * domains_ + domain) * experts_ + expert];
    }
    return total > 0 ? hit / total : 0.0;
  }
  // Routing accuracy of a domain: the share sent to expert `domain` (all layers unless given).
  [[nodiscard]] double accuracy(std::size_t domain) const { return share(layers_, domain, domain); }
  [[nodiscard]] double accuracy(std::size_t layer, std::size_t domain) const { return share(layer, domain, domain); }
  [[nodiscard]] std::size_t layers() const { return layers_; }
  [[nodiscard]] std::size_t experts() const { return experts_; }

 private:
  std::size_t layers_, domains_, experts_;
  std::vector<double> counts_;
};

// Batches whose rows come from several sequence pools in fixed counts per batch (e.g. 8 MED and
// 8 old-domain definitions); each pool is shuffled per pass (lm_data::permutation) and cycled.
class MixedBatches {
 public:
  struct Pool {
    std::vector<lm_data::Sequence> sequences;
    std::size_t per_batch = 0;
  };
  MixedBatches(std::vector<Pool> pools, std::uint64_t seed) : pools_(std::move(pools)), seed_(seed) {
    std::size_t rows = 0;
    for (std::size_t i = 0; i < pools_.size(); ++i) {
      nexa::require(pools_[i].per_batch == 0 || !pools_[i].sequences.empty(), "MixedBatches", "pool ", i,
                    " is empty but asked for ", pools_[i].per_batch, " rows per batch");
      rows += pools_[i].per_batch;
      for (auto& s : pools_[i].sequences) all_.push_back(s);
    }
    nexa::require(rows > 0, "MixedBatches", "a batch needs at least one row");
    state_.resize(pools_.size());
  }

  [[nodiscard]] lm_data::Batch next() {
    std::vector<std::size_t> indices;
    std::size_t base = 0;
    for (std::size_t i = 0; i < pools_.size(); ++i) {
      State& st = state_[i];
      const std::size_t n = pools_[i].sequences.size();
      for (std::size_t r = 0; r < pools_[i].per_batch; ++r) {
        if (st.next == st.order.size()) {
          st.order = lm_data::permutation(n, seed_, (std::uint64_t{i} << 32) + st.pass++);
          st.next = 0;
        }
        indices.push_back(base + st.order[st.next++]);
      }
      base += n;
    }
    return lm_data::make_batch(all_, indices);
  }

  // The rows of b (a batch from next()) whose domain is `domain`, and the other rows, as two
  // batches (either may be empty: size() 0), so that a step can train different parameters on each.
  [[nodiscard]] std::pair<lm_data::Batch, lm_data::Batch> split(const lm_data::Batch& b, std::int32_t domain) const {
    std::vector<std::size_t> in, out;
    for (std::size_t r = 0; r < b.size(); ++r) (b.domains[r] == domain ? in : out).push_back(b.indices[r]);
    const auto make = [&](const std::vector<std::size_t>& rows) {
      return rows.empty() ? lm_data::Batch{} : lm_data::make_batch(all_, rows);
    };
    return {make(in), make(out)};
  }

 private:
  struct State {
    std::vector<std::size_t> order;
    std::size_t next = 0;
    std::uint64_t pass = 0;
  };
  std::vector<Pool> pools_;
  std::vector<lm_data::Sequence> all_;
  std::vector<State> state_;
  std::uint64_t seed_;
};

}  // namespace nexus_extend
