#pragma once
// report.hpp: what nexa-moe measures and prints: per-model records (training time and tokens,
// loss curves, expert load, the router's choices), the final table, the JSON-lines "final" events
// and the SVG plot.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "../common/confusion.hpp"
#include "../common/format.hpp"
#include "../common/lm_data.hpp"
#include "../common/svg_plot.hpp"
#include "data.hpp"
#include "lm.hpp"

namespace nexa_moe::report {

using nexa::index_t;
inline const std::vector<std::string> kDomainNames = {"PHYS", "BIO", "MAT"};
inline constexpr std::size_t kExperts = kRoutedDomains;  // one expert per routed domain

using examples::duration;
using examples::fmt;
using examples::json_array;

// --- routing statistics ---------------------------------------------------------------------

// Non-padding tokens per (domain, expert), summed over layers.
struct LoadCounter {
  std::vector<double> counts = std::vector<double>(kRoutedDomains * kExperts, 0.0);

  template <class MoECache>
  void add(const MoECache& cache, const lm_data::Batch& batch) {
    const auto& experts_of = cache.router.routing.experts;
    const index_t S = batch.ids.dim(1);
    for (index_t t = 0; t < batch.ids.numel(); ++t) {
      if (batch.mask.data()[t] == 0) continue;
      const std::int32_t domain = batch.domains[static_cast<std::size_t>(t / S)];
      counts[static_cast<std::size_t>(domain) * kExperts + static_cast<std::size_t>(experts_of.data()[t])] += 1;
    }
  }
  [[nodiscard]] std::vector<double> expert_shares() const {
    std::vector<double> share(kExperts, 0.0);
    double total = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) share[i % kExperts] += counts[i], total += counts[i];
    for (double& s : share) s = total > 0 ? s / total : 0;
    return share;
  }
  void clear() { std::fill(counts.begin(), counts.end(), 0.0); }
};

// The domain classifier's choices against the labels, and the entropy of its probabilities.
struct RouterScore {
  examples::Confusion confusion{kDomainNames};
  double entropy = 0;

  template <class Routing>
  void add(const Routing& r, const std::vector<std::int32_t>& domains) {
    const index_t E = r.probs.dim(1);
    for (std::size_t b = 0; b < domains.size(); ++b) {
      confusion.add(static_cast<std::size_t>(domains[b]), static_cast<std::size_t>(r.experts.data()[b]));
      for (index_t e = 0; e < E; ++e) {
        const double p = r.probs.data()[static_cast<index_t>(b) * E + e];
        entropy -= p > 0 ? p * std::log(p) : 0;
      }
    }
  }
  [[nodiscard]] std::size_t total() const { return confusion.total(); }
  [[nodiscard]] double accuracy() const { return total() > 0 ? confusion.accuracy() : 0; }
  [[nodiscard]] double mean_entropy() const { return total() > 0 ? entropy / static_cast<double>(total()) : 0; }
};

// --- per-model bookkeeping ------------------------------------------------------------------

struct DomainLoss {
  std::vector<double> sum = std::vector<double>(kRoutedDomains, 0.0), targets = sum;
  void add(std::int32_t domain, const nexa_moe::StepLoss& l) {
    sum[static_cast<std::size_t>(domain)] += l.lm * static_cast<double>(l.targets);
    targets[static_cast<std::size_t>(domain)] += static_cast<double>(l.targets);
  }
  [[nodiscard]] double mean(std::size_t d) const { return targets[d] > 0 ? sum[d] / targets[d] : NAN; }
  [[nodiscard]] double overall() const {
    double s = 0, n = 0;
    for (std::size_t d = 0; d < sum.size(); ++d) s += sum[d], n += targets[d];
    return n > 0 ? s / n : NAN;
  }
};

struct Evaluation {
  DomainLoss loss;
  LoadCounter load;
  RouterScore route;
  double seconds = 0;
};

struct Record {
  std::string name;
  bool moe = false, routed_by_sequence = false;
  index_t params = 0, active_params = 0, trainable = 0;
  double seconds = 0, tokens = 0;  // training only, for tokens per second
  double loss_ema = NAN, last_loss = NAN;
  LoadCounter load;   // since the last progress line
  RouterScore route;  // since the last progress line
  std::vector<std::pair<double, double>> curve, valid_curve;
  std::vector<std::vector<std::pair<double, double>>> load_curve{kExperts};
  Evaluation final_eval;
};

// The final table: per-domain validation loss and perplexity, routing accuracy and entropy,
// tokens per second; each MoE's token shares per (domain, expert); the router's confusion matrix.
inline void print_summary(const std::vector<Record>& records) {
  std::printf("\n%-10s", "model");
  for (const auto& d : kDomainNames) std::printf(" %8s %8s", (d + " loss").c_str(), "ppl");
  std::printf(" %8s %8s %9s %9s %8s\n", "all loss", "ppl", "route acc", "entropy", "tok/s");
  for (const Record& r : records) {
    const Evaluation& ev = r.final_eval;
    std::printf("%-10s", r.name.c_str());
    for (std::size_t d = 0; d < kRoutedDomains; ++d)
      std::printf(" %8.3f %8.1f", ev.loss.mean(d), std::exp(ev.loss.mean(d)));
    const std::string acc = r.routed_by_sequence ? fmt("%.3f", ev.route.accuracy()) : "-";
    const std::string ent = r.routed_by_sequence ? fmt("%.3f", ev.route.mean_entropy()) : "-";
    std::printf(" %8.3f %8.1f %9s %9s %8.0f\n", ev.loss.overall(), std::exp(ev.loss.overall()), acc.c_str(),
                ent.c_str(), r.tokens / r.seconds);
  }
  for (const Record& r : records) {
    if (!r.moe) continue;
    std::printf("\n%s: share of each domain's validation tokens per expert (all layers)\n%-6s", r.name.c_str(), "");
    for (std::size_t e = 0; e < kExperts; ++e) std::printf("  expert %zu", e);
    std::printf("\n");
    for (std::size_t d = 0; d < kRoutedDomains; ++d) {
      double total = 0;
      for (std::size_t e = 0; e < kExperts; ++e) total += r.final_eval.load.counts[d * kExperts + e];
      std::printf("%-6s", kDomainNames[d].c_str());
      for (std::size_t e = 0; e < kExperts; ++e)
        std::printf("  %8.3f", total > 0 ? r.final_eval.load.counts[d * kExperts + e] / total : 0);
      std::printf("\n");
    }
  }
  for (const Record& r : records) {
    if (!r.routed_by_sequence || r.final_eval.route.total() == 0) continue;
    const RouterScore& rs = r.final_eval.route;
    std::printf("\n%s router: validation accuracy %.3f; %s", r.name.c_str(), rs.accuracy(),
                rs.confusion.table("confusion (rows: true domain, columns: expert)").c_str());
  }
}

// One "final" JSON line per model.
inline std::string final_log_lines(const std::vector<Record>& records) {
  std::string log;
  for (const Record& r : records) {
    const Evaluation& ev = r.final_eval;
    std::vector<double> losses;
    for (std::size_t d = 0; d < kRoutedDomains; ++d) losses.push_back(ev.loss.mean(d));
    std::string extra;
    if (r.moe) extra += ", \"expert_load\": " + json_array(ev.load.expert_shares());
    if (r.routed_by_sequence)
      extra += nexa::detail::concat(", \"routing_accuracy\": ", fmt("%.4f", ev.route.accuracy()),
                                    ", \"routing_entropy\": ", fmt("%.4f", ev.route.mean_entropy()));
    log += nexa::detail::concat("{\"event\": \"final\", \"model\": \"", r.name,
                                "\", \"domains\": [\"PHYS\", \"BIO\", "
                                "\"MAT\"], \"valid_loss\": ",
                                json_array(losses), ", \"valid_loss_all\": ", fmt("%.5f", ev.loss.overall()),
                                ", \"tokens_per_s\": ", fmt("%.1f", r.tokens / r.seconds), ", \"params\": ", r.params,
                                ", \"active_params\": ", r.active_params, extra, "}\n");
  }
  return log;
}

// Training loss (EMA) and validation loss per model; expert load over time for the MoEs.
inline std::string render_curves(const std::vector<Record>& records) {
  svg::Chart loss{
      .title = "training loss (EMA) and validation loss", .x_label = "step", .y_label = "cross-entropy", .series = {}};
  svg::Chart load{.title = "expert load (share of tokens)", .x_label = "step", .y_label = "share", .series = {}};
  const std::vector<std::string> colors = {"#7f7f7f", "#d62728", "#1f77b4"};
  for (std::size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    std::vector<std::pair<double, double>> smooth;
    double ema = NAN;
    for (const auto& [x, y] : r.curve) {
      ema = std::isnan(ema) ? y : 0.95 * ema + 0.05 * y;
      smooth.emplace_back(x, ema);
    }
    loss.series.push_back({.name = r.name + " train", .points = smooth, .color = colors[i]});
    loss.series.push_back({.name = r.name + " valid", .points = r.valid_curve, .color = colors[i], .dashed = true});
    if (!r.moe) continue;
    for (std::size_t e = 0; e < r.load_curve.size(); ++e)
      load.series.push_back({.name = nexa::detail::concat(r.name, " expert ", e,
                                                          r.routed_by_sequence ? " (" + kDomainNames[e] + ")" : ""),
                             .points = r.load_curve[e],
                             .color = std::string(svg::detail::kPalette[e + 2]),
                             .dashed = !r.routed_by_sequence});
  }
  return svg::render({loss, load});
}

}  // namespace nexa_moe::report
