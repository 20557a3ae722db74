#pragma once
// Next-token sampling for text generation: greedy, temperature, top-k and top-p (nucleus).
//
//   SamplingConfig{.temperature = 0.8, .top_k = 50, .top_p = 0.95}   (top_k 0 / top_p 1.0: off)
//   sampling_distribution(logits, config) -> the final probabilities, one per token
//   sample_token(logits, config, u)             u in [0, 1): deterministic inverse CDF
//   sample_token(logits, config, rng)           u drawn from a fresh stream of rng
//   sample_token(logits, config, stream, index) u drawn from element `index` of a stream
//
// The distribution, computed in double:
//   1. greedy: all mass on the argmax (the lowest index among equal maxima); nothing else applies.
//   2. temperature: p = softmax(logits / temperature).
//   3. top-k (k > 0): keep the k most probable tokens. Tokens are ranked by logit, descending,
//      equal logits by ascending index, so a tie at the boundary keeps the lower indices.
//   4. top-p (p < 1): in that ranking, over the probabilities renormalised after top-k, keep the
//      shortest prefix whose cumulative mass reaches top_p (>= top_p); at least one token.
//   5. renormalise the kept tokens; every other token gets exactly 0.
// The sampler walks tokens in ascending index order, cumulating probabilities c_i, and returns
// the first token with u < c_i, so token i is drawn exactly for u in [c_{i-1}, c_i); a token of
// probability 0 is never drawn (should rounding leave u >= the total, the last token of
// positive probability is returned).
//
// Logits may be -inf (a masked token) but not NaN or +inf, and at least one must be finite.
// Bad input raises nexa::Error naming the parameter ("generate::sample_token: top_p must be in
// (0, 1], got 0").
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <string_view>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/core/shape.hpp"

namespace nexa::generate {

struct SamplingConfig {
  double temperature = 1.0;  // > 0 unless greedy
  index_t top_k = 0;         // 0: off
  double top_p = 1.0;        // in (0, 1]; 1: off
  bool greedy = false;       // argmax; temperature, top_k and top_p are then ignored
};

namespace detail {

inline void check_sampling(std::span<const float> logits, const SamplingConfig& config, std::string_view what) {
  require(!logits.empty(), what, "logits must not be empty");
  require(config.top_k >= 0, what, "top_k must be >= 0 (0: off), got ", config.top_k);
  require(config.top_p > 0.0 && config.top_p <= 1.0, what, "top_p must be in (0, 1] (1: off), got ", config.top_p);
  require(config.greedy || (std::isfinite(config.temperature) && config.temperature > 0.0), what,
          "temperature must be finite and > 0 unless greedy, got ", config.temperature);
  bool any_finite = false;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const float v = logits[i];
    require(!std::isnan(v), what, "logits[", i, "] is NaN");
    require(v != std::numeric_limits<float>::infinity(), what, "logits[", i, "] is +inf");
    any_finite = any_finite || std::isfinite(v);
  }
  require(any_finite, what, "every one of the ", logits.size(), " logits is -inf");
}

// The lowest index of the largest logit (logits already checked).
inline std::size_t argmax(std::span<const float> logits) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

inline void check_uniform(double u, std::string_view what) {
  require(u >= 0.0 && u < 1.0, what, "u must be in [0, 1), got ", u);
}

inline std::vector<double> distribution(std::span<const float> logits, const SamplingConfig& config) {
  const std::size_t n = logits.size();
  std::vector<double> p(n, 0.0);
  if (config.greedy) {
    p[argmax(logits)] = 1.0;
    return p;
  }
  // Softmax of logits / temperature; -inf logits get probability 0.
  // (l - max) / t is 0 for the largest logit and <= 0 elsewhere, so nothing overflows even for
  // a tiny temperature (where this tends to greedy, ties sharing the mass).
  const double m = static_cast<double>(logits[argmax(logits)]);
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    p[i] = std::exp((static_cast<double>(logits[i]) - m) / config.temperature);
    sum += p[i];
  }
  for (double& v : p) v /= sum;
  const bool use_k = config.top_k > 0 && static_cast<std::size_t>(config.top_k) < n;
  const bool use_p = config.top_p < 1.0;
  if (!use_k && !use_p) return p;

  // Rank by logit, descending; equal logits by ascending index.
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  const auto before = [&](std::size_t a, std::size_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  };
  std::size_t keep = n;
  if (use_k) {
    keep = static_cast<std::size_t>(config.top_k);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), order.end(), before);
  } else {
    std::sort(order.begin(), order.end(), before);
  }
  if (use_p) {
    double kept_mass = 0.0;
    for (std::size_t j = 0; j < keep; ++j) kept_mass += p[order[j]];
    const double target = config.top_p * kept_mass;  // top_p of the mass renormalised after top-k
    double cum = 0.0;
    std::size_t prefix = 0;
    while (prefix < keep) {
      cum += p[order[prefix++]];
      if (cum >= target) break;
    }
    keep = prefix;
  }
  // order[keep, n) holds exactly the dropped tokens (partial_sort and sort both permute order).
  double kept = 0.0;
  for (std::size_t j = 0; j < keep; ++j) kept += p[order[j]];
  for (std::size_t j = keep; j < n; ++j) p[order[j]] = 0.0;
  for (std::size_t j = 0; j < keep; ++j) p[order[j]] /= kept;
  return p;
}

inline index_t inverse_cdf(const std::vector<double>& p, double u) {
  double cum = 0.0;
  std::size_t last = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0.0) continue;
    cum += p[i];
    last = i;
    if (u < cum) return static_cast<index_t>(i);
  }
  return static_cast<index_t>(last);  // u >= the rounded total
}

}  // namespace detail

// The final probabilities (size logits.size(), summing to 1 up to rounding; dropped tokens 0).
[[nodiscard]] inline std::vector<double> sampling_distribution(std::span<const float> logits,
                                                               const SamplingConfig& config) {
  detail::check_sampling(logits, config, "generate::sampling_distribution");
  return detail::distribution(logits, config);
}

// Deterministic: the token whose cumulative interval [c_{i-1}, c_i) holds u, u in [0, 1).
[[nodiscard]] inline index_t sample_token(std::span<const float> logits, const SamplingConfig& config, double u) {
  constexpr std::string_view what = "generate::sample_token";
  detail::check_sampling(logits, config, what);
  detail::check_uniform(u, what);
  if (config.greedy) return static_cast<index_t>(detail::argmax(logits));
  return detail::inverse_cdf(detail::distribution(logits, config), u);
}

// u = 1 - stream.uniform(index), in [0, 1): per-sequence streams make batched decoding
// reproducible whatever order the sequences are sampled in.
[[nodiscard]] inline index_t sample_token(std::span<const float> logits, const SamplingConfig& config,
                                          const RandomStream& stream, std::uint64_t index) {
  return sample_token(logits, config, 1.0 - stream.uniform(index));
}

// Draws u from element 0 of a fresh stream of rng (one stream id per call, even when greedy).
[[nodiscard]] inline index_t sample_token(std::span<const float> logits, const SamplingConfig& config, Rng& rng) {
  return sample_token(logits, config, rng.stream(), 0);
}

}  // namespace nexa::generate
