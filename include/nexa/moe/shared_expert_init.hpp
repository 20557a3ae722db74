#pragma once
// NEXUS shared-expert training: a frozen MoE (router and routed experts) plus a trainable
// SharedExpert (out = routed + scale * shared), and the ways to initialise the shared expert:
//   init_shared_random           every expert weight ~ N(0, 0.02)
//   init_shared_most_activated   a copy of the expert chosen most often (top-k assignments)
//   init_shared_top_activated    the mean of the m most often chosen experts
//   init_shared_pca              the mean of the experts PCA-guided scoring selects:
// PCA-guided selection (eous/nexus, scripts/gpt_oss/analyze_pca.py): collect the router's softmax
// probabilities over many tokens ([N, E]), centre each expert's column, take the covariance's
// eigen decomposition, keep the top C = min(20, N, E) components, and score each expert by
// importance_e = sum_c |loading_{c,e}| * explained_variance_ratio_c (the ratio is over the total
// variance, as sklearn's PCA reports it); the K = min(24, E) highest-scoring experts (ties to
// the lower index) are averaged, and the share of total importance they carry is reported.
// Components with equal eigenvalues have no unique loadings, so neither have their scores.
// collect_router_probabilities() streams: it keeps the probabilities' sums and cross-products
// (O(E^2)), not the [N, E] matrix, so a million tokens cost no more memory than a hundred.
// trainable_report() counts what trains and the memory its gradients and AdamW state take.
// Weights are averaged in double and rounded once to the parameter's type.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <ostream>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <Eigen/Dense>

#include "nexa/core/error.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa {

namespace detail {
// A read-only view of one CPU parameter of either floating type, for averaging by name.
struct ParamSource {
  Shape shape;
  std::variant<const float*, const double*> data;
  [[nodiscard]] double at(index_t i) const {
    return std::visit([i](auto* p) { return static_cast<double>(p[i]); }, data);
  }
};

template <class Module>
[[nodiscard]] std::map<std::string, ParamSource> param_sources(Module& model) {
  std::map<std::string, ParamSource> out;
  model.visit_params([&](const std::string& name, auto& p) {
    using V = typename std::remove_cvref_t<decltype(p.value)>::value_type;
    using Dev = typename std::remove_cvref_t<decltype(p.value)>::device;
    static_assert(std::same_as<Dev, cpu>, "nexa: averaging parameters needs CPU parameters");
    static_assert(std::same_as<V, float> || std::same_as<V, double>, "nexa: parameters must be float or double");
    out[name] = ParamSource{p.value.shape(), static_cast<const V*>(p.value.data())};
  });
  return out;
}

// Writes into every parameter of `out` the mean of the parameters resolve(name) names: a list of
// (source index, source name), or an empty list to leave the parameter as it is. Everything is
// checked first; one nexa::Error lists every missing or mis-shaped source.
template <class Out, class Resolve>
void fill_by_name(Out& out, const std::vector<std::map<std::string, ParamSource>>& sources, Resolve&& resolve,
                  std::string_view context) {
  std::vector<std::string> problems;
  out.visit_params([&](const std::string& name, auto& p) {
    for (const auto& [i, source_name] : resolve(name)) {
      const auto it = sources[i].find(source_name);
      if (it == sources[i].end()) {
        problems.push_back(concat("\"", name, "\": source ", i, " has no \"", source_name, "\""));
      } else if (!(it->second.shape == p.value.shape())) {
        problems.push_back(concat("\"", name, "\": shape ", p.value.shape(), ", source ", i, " \"", source_name,
                                  "\" has ", it->second.shape));
      }
    }
  });
  if (!problems.empty()) {
    std::string list;
    for (const auto& s : problems) list += "\n  " + s;
    throw Error(concat(context, ": the parameters do not match:", list));
  }
  out.visit_params([&](const std::string& name, auto& p) {
    const auto refs = resolve(name);
    if (refs.empty()) return;
    using V = typename std::remove_cvref_t<decltype(p.value)>::value_type;
    std::vector<const ParamSource*> from;
    for (const auto& [i, source_name] : refs) from.push_back(&sources[i].at(source_name));
    const double n = static_cast<double>(from.size());
    for (index_t e = 0; e < p.value.numel(); ++e) {
      double sum = 0;
      for (const ParamSource* s : from) sum += s->at(e);
      p.value.data()[e] = static_cast<V>(sum / n);
    }
  });
}
}  // namespace detail

// out = the element-wise mean of `sources`, parameter by parameter, matched by name. Every
// parameter of `out` must exist, with its shape, in every source, and the sources may have no
// parameter `out` lacks; otherwise nexa::Error lists the mismatches and nothing is written.
// (Branch-Train-Merge: the average of n dense models is one dense model.)
template <class Source, class Out>
void average_params(const std::vector<Source*>& sources, Out& out) {
  require(!sources.empty(), "average_params", "needs at least one source module");
  std::vector<std::map<std::string, detail::ParamSource>> maps;
  for (Source* s : sources) {
    require(s != nullptr, "average_params", "a source module is null");
    maps.push_back(detail::param_sources(*s));
  }
  std::size_t count = 0;
  out.visit_params([&](const std::string&, auto&) { ++count; });
  for (std::size_t i = 0; i < maps.size(); ++i)
    require(maps[i].size() == count, "average_params", "source ", i, " has ", maps[i].size(),
            " parameters, the output has ", count);
  detail::fill_by_name(
      out, maps,
      [&](const std::string& name) {
        std::vector<std::pair<std::size_t, std::string>> refs;
        for (std::size_t i = 0; i < maps.size(); ++i) refs.emplace_back(i, name);
        return refs;
      },
      "average_params");
}

// Copies every parameter of `source` into the same-named one of `out` (bit-identical when the
// types agree).
template <class Source, class Out>
void copy_params(Source& source, Out& out) {
  average_params(std::vector<Source*>{&source}, out);
}

// Sets every parameter of `module` trainable or frozen (a frozen one drops its gradient).
template <class Module>
void set_trainable(Module& model, bool on) {
  model.visit_params([&](const std::string&, auto& p) { p.set_trainable(on); });
}

// Freezes the router and the routed experts of an MoE layer; the shared expert is untouched.
template <class Layer>
void freeze_routed(Layer& moe) {
  set_trainable(moe.router, false);
  for (auto& e : moe.experts) set_trainable(e, false);
}

// What trains, and what its training state costs.
struct TrainableReport {
  index_t trainable = 0;            // trainable parameter elements
  index_t total = 0;                // all parameter elements
  std::size_t gradient_bytes = 0;   // gradient storage of the trainable parameters
  std::size_t optimizer_bytes = 0;  // AdamW's two moments per trainable element, in its type
  [[nodiscard]] double fraction() const {
    return total > 0 ? static_cast<double>(trainable) / static_cast<double>(total) : 0.0;
  }
  friend std::ostream& operator<<(std::ostream& out, const TrainableReport& r) {
    return out << "trainable " << r.trainable << " of " << r.total << " parameters (" << 100.0 * r.fraction()
               << "%), gradients " << r.gradient_bytes << " bytes, optimizer state " << r.optimizer_bytes << " bytes";
  }
};

template <class Module>
[[nodiscard]] TrainableReport trainable_report(Module& model) {
  TrainableReport r;
  model.visit_params([&](const std::string&, auto& p) {
    using V = typename std::remove_cvref_t<decltype(p.value)>::value_type;
    r.total += p.numel();
    if (!p.trainable) return;
    r.trainable += p.numel();
    r.gradient_bytes += static_cast<std::size_t>(p.grad.numel()) * sizeof(V);
    r.optimizer_bytes += 2 * static_cast<std::size_t>(p.numel()) * sizeof(V);
  });
  return r;
}

// The router's view of many tokens, accumulated in O(E^2) memory however many tokens pass: the
// top-k assignment counts, and the sums the probabilities' covariance needs. The sums are taken
// about a shift (the first batch's mean probabilities), so the one-pass covariance does not lose
// precision to cancellation.
struct ExpertActivity {
  using Matrix = Eigen::MatrixXd;
  index_t tokens = 0;
  index_t num_experts = 0;
  std::vector<index_t> assignments;  // top-k choices that picked each expert
  Eigen::VectorXd shift;             // [E]
  Eigen::VectorXd shifted_sum;       // [E] sum_t (p_t - shift)
  Matrix shifted_products;           // [E, E] sum_t (p_t - shift)(p_t - shift)^T

  ExpertActivity() = default;
  explicit ExpertActivity(index_t experts)
      : num_experts(experts),
        assignments(static_cast<std::size_t>(experts), 0),
        shifted_sum(Eigen::VectorXd::Zero(experts)),
        shifted_products(Matrix::Zero(experts, experts)) {}

  // Adds a batch of softmax probabilities probs [n, E] (row-major) and its top-k choices.
  void add(const double* probs, index_t n, const std::int32_t* experts, index_t k) {
    using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const Eigen::Map<const RowMatrix> p(probs, n, num_experts);
    if (n == 0) return;
    if (tokens == 0) shift = p.colwise().mean().transpose();
    const RowMatrix centred = p.rowwise() - shift.transpose();
    shifted_sum += centred.colwise().sum().transpose();
    shifted_products.noalias() += centred.transpose() * centred;
    for (index_t i = 0; i < n * k; ++i) ++assignments[static_cast<std::size_t>(experts[i])];
    tokens += n;
  }

  [[nodiscard]] std::vector<double> mean_probability() const {
    std::vector<double> out(static_cast<std::size_t>(num_experts), 0.0);
    if (tokens == 0) return out;
    const Eigen::VectorXd m = shift + shifted_sum / static_cast<double>(tokens);
    for (index_t e = 0; e < num_experts; ++e) out[static_cast<std::size_t>(e)] = m(e);
    return out;
  }
  // The sample covariance of the probabilities (divided by tokens - 1, as numpy and sklearn do).
  [[nodiscard]] Matrix covariance() const {
    require(tokens >= 2, "ExpertActivity", "the covariance needs at least 2 tokens, got ", tokens);
    const double n = static_cast<double>(tokens);
    const Eigen::VectorXd m = shifted_sum / n;
    return (shifted_products - n * m * m.transpose()) / (n - 1);
  }
  // Experts by assignments, most first (ties to the lower index).
  [[nodiscard]] std::vector<index_t> ranked() const {
    std::vector<index_t> order(static_cast<std::size_t>(num_experts));
    std::iota(order.begin(), order.end(), index_t(0));
    std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
      return assignments[static_cast<std::size_t>(a)] > assignments[static_cast<std::size_t>(b)];
    });
    return order;
  }
};

// Routes every batch ([..., d_model] each) through the layer's router alone (no expert runs) and
// accumulates the softmax probabilities over all experts and the top-k assignment counts.
template <class Layer, class Batches>
[[nodiscard]] ExpertActivity collect_router_probabilities(Layer& moe, const Batches& batches) {
  ExpertActivity a(moe.num_experts());
  std::vector<double> probs;
  for (const auto& batch : batches) {
    const auto x = read_view(batch);
    require(x.rank() >= 1 && x.cols() == moe.config().d_model, "collect_router_probabilities",
            "a batch's last axis expected ", moe.config().d_model, ", got shape ", x.shape());
    typename Layer::RouterT::Cache cache;
    const auto& routing = moe.router.route(x.reshaped({x.rows(), x.cols()}), cache);
    const auto host = routing.probs.to_host();
    probs.assign(host.begin(), host.end());
    const auto experts = routing.experts.to_host();
    a.add(probs.data(), x.rows(), experts.data(), routing.experts.dim(1));
  }
  return a;
}

struct PcaExpertScores {
  std::vector<double> explained_variance_ratio;  // the kept components', largest first
  std::vector<double> scores;                    // importance of each expert
  std::vector<index_t> selected;                 // the K highest-scoring experts, best first
  double importance_fraction = 0;                // sum of the selected scores / sum of all scores
};

// PCA from the covariance [E, E] of `tokens` probability vectors. `components` and `select` are
// clamped to what the data allows (min(components, tokens, E); min(select, E)). `mean_square` is
// the mean over tokens of |p_t|^2, the scale below which variance is rounding.
[[nodiscard]] inline PcaExpertScores pca_expert_scores(const Eigen::MatrixXd& covariance, index_t tokens,
                                                       double mean_square, index_t components, index_t select) {
  const index_t num_experts = covariance.rows();
  require(tokens >= 2 && num_experts >= 1 && covariance.cols() == num_experts, "pca_expert_scores",
          "needs at least 2 tokens and a square covariance, got ", tokens, " tokens and ", covariance.rows(), " x ",
          covariance.cols());
  require(components >= 1 && select >= 1, "pca_expert_scores", "components and select must be positive, got ",
          components, " and ", select);
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(covariance);
  require(eig.info() == Eigen::Success, "pca_expert_scores", "the eigen decomposition did not converge");
  const Eigen::VectorXd values = eig.eigenvalues().cwiseMax(0.0);  // ascending
  const double total = values.sum();
  // Variance at the level of rounding (e.g. identical rows whose mean rounds) counts as none.
  const double eps = std::numeric_limits<double>::epsilon();
  require(total > 64 * eps * eps * mean_square, "pca_expert_scores",
          "the router probabilities do not vary over the tokens (zero variance)");

  PcaExpertScores out;
  const index_t kept = std::min({components, tokens, num_experts});
  out.scores.assign(static_cast<std::size_t>(num_experts), 0.0);
  for (index_t c = 0; c < kept; ++c) {
    const index_t col = num_experts - 1 - c;
    const double ratio = values(col) / total;
    out.explained_variance_ratio.push_back(ratio);
    for (index_t e = 0; e < num_experts; ++e)
      out.scores[static_cast<std::size_t>(e)] += std::abs(eig.eigenvectors()(e, col)) * ratio;
  }
  std::vector<index_t> order(static_cast<std::size_t>(num_experts));
  std::iota(order.begin(), order.end(), index_t(0));
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
    return out.scores[static_cast<std::size_t>(a)] > out.scores[static_cast<std::size_t>(b)];
  });
  order.resize(static_cast<std::size_t>(std::min(select, num_experts)));
  out.selected = order;
  double chosen = 0;
  for (const index_t e : out.selected) chosen += out.scores[static_cast<std::size_t>(e)];
  const double all = std::accumulate(out.scores.begin(), out.scores.end(), 0.0);
  out.importance_fraction = all > 0 ? chosen / all : 0.0;
  return out;
}

// PCA over per-token router probabilities probs [tokens, E] (row-major), centred exactly.
[[nodiscard]] inline PcaExpertScores pca_expert_scores(const std::vector<double>& probs, index_t tokens,
                                                       index_t num_experts, index_t components = 20,
                                                       index_t select = 24) {
  require(tokens >= 2 && num_experts >= 1, "pca_expert_scores", "needs at least 2 tokens and 1 expert, got ", tokens,
          " and ", num_experts);
  require(static_cast<index_t>(probs.size()) == tokens * num_experts, "pca_expert_scores", "probs expected ",
          tokens * num_experts, " values (", tokens, " x ", num_experts, "), got ", probs.size());
  using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMatrix> p(probs.data(), tokens, num_experts);
  const RowMatrix centred = p.rowwise() - p.colwise().mean();
  const Eigen::MatrixXd cov = (centred.transpose() * centred) / static_cast<double>(tokens - 1);
  return pca_expert_scores(cov, tokens, p.squaredNorm() / static_cast<double>(tokens), components, select);
}

// PCA over everything an ExpertActivity collected.
[[nodiscard]] inline PcaExpertScores pca_expert_scores(const ExpertActivity& activity, index_t components = 20,
                                                       index_t select = 24) {
  require(activity.tokens >= 2, "pca_expert_scores", "needs at least 2 tokens, got ", activity.tokens);
  const auto mean = activity.mean_probability();
  double mean_square = 0;
  for (const double m : mean) mean_square += m * m;
  return pca_expert_scores(activity.covariance(), activity.tokens, mean_square, components, select);
}

// The shared expert's weights = the mean of experts[indices] (its scale is untouched).
template <class Shared, class Experts>
void init_shared_from_experts(Shared& shared, Experts& experts, const std::vector<index_t>& indices) {
  require(!indices.empty(), "init_shared_from_experts", "needs at least one expert index");
  using ExpertT = typename Experts::value_type;
  std::vector<ExpertT*> chosen;
  for (const index_t i : indices) {
    require(i >= 0 && i < static_cast<index_t>(experts.size()), "init_shared_from_experts", "expert index ", i,
            " out of range [0, ", experts.size(), ")");
    chosen.push_back(&experts[static_cast<std::size_t>(i)]);
  }
  average_params(chosen, shared.expert);
}

// Every weight of the shared expert ~ N(0, std^2) (its scale is untouched).
template <class Shared>
void init_shared_random(Shared& shared, Rng& rng, double std = 0.02) {
  shared.expert.visit_params([&](const std::string&, auto& p) {
    using Tn = std::remove_cvref_t<decltype(p.value)>;
    p.value = Tn::randn(p.value.shape(), rng, std);
  });
}

// The mean of the `count` experts with the most top-k assignments (ties to the lower index).
template <class Layer>
void init_shared_top_activated(Layer& moe, const ExpertActivity& activity, index_t count) {
  require(activity.num_experts == moe.num_experts(), "init_shared_top_activated", "activity has ", activity.num_experts,
          " experts, the layer ", moe.num_experts());
  require(count >= 1 && count <= moe.num_experts(), "init_shared_top_activated", "count must be in [1, ",
          moe.num_experts(), "], got ", count);
  auto ranked = activity.ranked();
  ranked.resize(static_cast<std::size_t>(count));
  init_shared_from_experts(moe.shared, moe.experts, ranked);
}

// A copy of the expert with the most top-k assignments.
template <class Layer>
void init_shared_most_activated(Layer& moe, const ExpertActivity& activity) {
  init_shared_top_activated(moe, activity, 1);
}

// PCA-guided: the mean of the selected experts. Returns the scores (selected experts, importance).
template <class Layer>
PcaExpertScores init_shared_pca(Layer& moe, const ExpertActivity& activity, index_t components = 20,
                                index_t select = 24) {
  require(activity.num_experts == moe.num_experts(), "init_shared_pca", "activity has ", activity.num_experts,
          " experts, the layer ", moe.num_experts());
  PcaExpertScores scores = pca_expert_scores(activity, components, select);
  init_shared_from_experts(moe.shared, moe.experts, scores.selected);
  return scores;
}

}  // namespace nexa
