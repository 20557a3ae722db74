#pragma once
// Routing statistics any trainer can log: tokens per expert, dropped assignments, mean routing
// probability per expert, routing entropy, the auxiliary losses, and routing accuracy against
// per-token expert labels when the data has them. write_json_line() emits one JSON object.
#include <cmath>
#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <vector>

#include "nexa/moe/aux_loss.hpp"
#include "nexa/ops/routing_fwd.hpp"

namespace nexa {

struct RoutingStats {
  index_t tokens = 0;
  std::vector<index_t> tokens_per_expert;  // assignments each expert processed
  index_t dropped = 0;                     // assignments dropped by a capacity limit
  std::vector<double> mean_probability;    // mean router probability of each expert
  double entropy = 0;                      // mean over tokens of -sum_i p_i ln p_i (nats)
  AuxLosses aux;
  std::optional<double> accuracy;  // share of labelled tokens whose first choice is their label
  index_t labelled = 0;

  // One JSON object on one line, ending with a newline (JSON lines).
  void write_json_line(std::ostream& out) const {
    out << "{\"tokens\": " << tokens << ", \"tokens_per_expert\": [";
    for (std::size_t e = 0; e < tokens_per_expert.size(); ++e) out << (e ? ", " : "") << tokens_per_expert[e];
    out << "], \"dropped\": " << dropped << ", \"mean_probability\": [";
    for (std::size_t e = 0; e < mean_probability.size(); ++e) out << (e ? ", " : "") << mean_probability[e];
    out << "], \"entropy\": " << entropy << ", \"load_balance_loss\": " << aux.load_balance
        << ", \"z_loss\": " << aux.z_loss;
    if (accuracy) out << ", \"accuracy\": " << *accuracy << ", \"labelled\": " << labelled;
    out << "}\n";
  }
};

// Statistics of one routed batch. `labels` (optional, one per token, -1 = unlabelled) give the
// expert each token should reach, e.g. its domain's expert.
template <class A>
[[nodiscard]] RoutingStats routing_stats(const Routing<A, cpu>& routing, const DispatchPlan<cpu>& plan,
                                         const AuxLosses& aux, std::span<const std::int32_t> labels = {}) {
  const index_t tokens = routing.probs.dim(0), experts = routing.probs.dim(1), k = routing.experts.dim(1);
  require(labels.empty() || static_cast<index_t>(labels.size()) == tokens, "routing_stats", "labels expected ", tokens,
          " (one per token), got ", labels.size());
  RoutingStats s;
  s.tokens = tokens;
  s.aux = aux;
  for (index_t e = 0; e < experts; ++e) s.tokens_per_expert.push_back(plan.tokens_of(e));
  s.dropped = tokens * k - plan.num_slots();
  s.mean_probability.assign(static_cast<std::size_t>(experts), 0.0);
  index_t correct = 0;
  for (index_t t = 0; t < tokens; ++t) {
    const A* p = routing.probs.data() + t * experts;
    double h = 0;
    for (index_t e = 0; e < experts; ++e) {
      s.mean_probability[static_cast<std::size_t>(e)] += static_cast<double>(p[e]);
      if (p[e] > A(0)) h -= static_cast<double>(p[e]) * std::log(static_cast<double>(p[e]));
    }
    s.entropy += h;
    if (!labels.empty() && labels[static_cast<std::size_t>(t)] >= 0) {
      ++s.labelled;
      correct += routing.experts.data()[t * k] == labels[static_cast<std::size_t>(t)] ? 1 : 0;
    }
  }
  if (tokens > 0) {
    for (double& v : s.mean_probability) v /= static_cast<double>(tokens);
    s.entropy /= static_cast<double>(tokens);
  }
  if (s.labelled > 0) s.accuracy = static_cast<double>(correct) / static_cast<double>(s.labelled);
  return s;
}

// From an MoE layer's cache after forward.
template <class Cache>
[[nodiscard]] RoutingStats routing_stats(const Cache& cache, std::span<const std::int32_t> labels = {}) {
  return routing_stats(cache.router.routing, cache.plan, cache.router.aux, labels);
}

}  // namespace nexa
