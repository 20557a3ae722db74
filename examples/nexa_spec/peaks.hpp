// peaks.hpp: from parsed spectra to Nexa-Spec's training data: peak selection, the m/z and
// intensity bins masked peak modelling predicts, the split by spectrum, masking, batches, and the
// baselines the model is compared with.
//
// A spectrum becomes [CLS] [PREC] peak_1 .. peak_n: the n <= max_peaks most intense peaks,
// sorted by m/z, each with its m/z and sqrt(intensity / base peak intensity) (the square root
// compresses the dynamic range, as Casanovo's preprocessing does). [PREC] carries the precursor
// m/z; [CLS] and [PREC] are the global tokens of the local-global attention.
// Targets of a masked peak:
//   m/z bin        floor(mz / mz_bin_width), clamped to [0, mz_bins): 1 Da bins by default, the
//                  nominal mass, about what the ion-trap (ITMS) fragment spectra resolve;
//   intensity bin  floor(-log2(intensity / base peak)), clamped to [0, intensity_bins): halvings
//                  of the base peak, since fragment intensities span orders of magnitude.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "mgf.hpp"
#include "nexa/core/error.hpp"
#include "nexa/models/spec_encoder.hpp"

namespace nexa_spec {

using nexa::index_t;

// Token types of SpecEmbedding.
enum TokenType : std::int32_t { kPeak = 0, kPrecursor = 1, kCls = 2, kMask = 3 };
inline constexpr index_t kTokenTypes = 4;
inline constexpr index_t kSpecialTokens = 2;  // [CLS] and [PREC] before the peaks

struct Binning {
  double mz_bin_width = 1.0;
  index_t mz_bins = 2048;
  index_t intensity_bins = 8;
};

[[nodiscard]] inline std::int32_t mz_bin(double mz, const Binning& b) {
  const double bin = std::floor(mz / b.mz_bin_width);
  return static_cast<std::int32_t>(std::clamp<double>(bin, 0, static_cast<double>(b.mz_bins - 1)));
}
// relative: intensity / base peak intensity, in (0, 1].
[[nodiscard]] inline std::int32_t intensity_bin(double relative, const Binning& b) {
  if (!(relative > 0)) return static_cast<std::int32_t>(b.intensity_bins - 1);
  const double bin = std::floor(-std::log2(std::min(relative, 1.0)));
  return static_cast<std::int32_t>(std::clamp<double>(bin, 0, static_cast<double>(b.intensity_bins - 1)));
}

struct Peaks {
  std::string id = {};  // source:title
  double precursor_mz = 0;
  std::vector<double> mz = {}, relative = {};  // sorted by m/z; relative = intensity / base peak
  std::vector<std::int32_t> mz_bins = {}, intensity_bins = {};
  [[nodiscard]] index_t size() const { return static_cast<index_t>(mz.size()); }
};

// The max_peaks most intense peaks with a positive intensity (ties: lower m/z first), by m/z.
[[nodiscard]] inline Peaks select_peaks(const Spectrum& s, index_t max_peaks, const Binning& binning) {
  nexa::require(max_peaks > 0, "select_peaks", "max_peaks must be positive, got ", max_peaks);
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < s.mz.size(); ++i)
    if (s.intensity[i] > 0) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return s.intensity[a] != s.intensity[b] ? s.intensity[a] > s.intensity[b] : s.mz[a] < s.mz[b];
  });
  if (static_cast<index_t>(order.size()) > max_peaks) order.resize(static_cast<std::size_t>(max_peaks));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return s.mz[a] < s.mz[b]; });
  Peaks p{.id = s.source + ":" + s.title, .precursor_mz = s.precursor_mz};
  double base = 0;
  for (const std::size_t i : order) base = std::max(base, s.intensity[i]);
  for (const std::size_t i : order) {
    p.mz.push_back(s.mz[i]);
    p.relative.push_back(s.intensity[i] / base);
    p.mz_bins.push_back(mz_bin(s.mz[i], binning));
    p.intensity_bins.push_back(intensity_bin(s.intensity[i] / base, binning));
  }
  return p;
}

// FNV-1a, 64 bits: a split that depends on nothing but the spectrum's id.
[[nodiscard]] inline std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}
// One spectrum in `every` goes to validation, chosen by the hash of its id.
[[nodiscard]] inline bool is_validation(const Peaks& p, std::uint64_t every) { return fnv1a(p.id) % every == 0; }

// round(fraction * n) distinct peak indices (at least 1 when n > 0), sorted.
[[nodiscard]] inline std::vector<index_t> choose_masked(index_t n, double fraction, std::mt19937_64& rng) {
  if (n <= 0) return {};
  const index_t k = std::clamp<index_t>(static_cast<index_t>(std::lround(fraction * static_cast<double>(n))), 1, n);
  std::vector<index_t> idx(static_cast<std::size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  for (index_t i = 0; i < k; ++i) {  // partial Fisher-Yates with the engine's raw output: portable
    const index_t j = i + static_cast<index_t>(rng() % static_cast<std::uint64_t>(n - i));
    std::swap(idx[static_cast<std::size_t>(i)], idx[static_cast<std::size_t>(j)]);
  }
  idx.resize(static_cast<std::size_t>(k));
  std::sort(idx.begin(), idx.end());
  return idx;
}

// A batch: the model's tokens and, per masked token in order, the targets and the spectrum.
struct Batch {
  nexa::SpecEncoder<>::Tokens tokens;
  std::vector<std::int32_t> mz_targets, intensity_targets;
};

// masked[i]: the peak indices of spectra[i] to mask.
[[nodiscard]] inline Batch make_batch(const std::vector<const Peaks*>& spectra,
                                      const std::vector<std::vector<index_t>>& masked) {
  nexa::require(!spectra.empty() && spectra.size() == masked.size(), "make_batch",
                "a batch needs spectra and one mask list per spectrum, got ", spectra.size(), " and ", masked.size());
  const auto B = static_cast<index_t>(spectra.size());
  index_t S = 0;
  for (const Peaks* p : spectra) S = std::max(S, kSpecialTokens + p->size());
  std::vector<float> mz(static_cast<std::size_t>(B * S), 0.f), intensity(mz.size(), 0.f);
  std::vector<std::int32_t> type(mz.size(), kPeak), padding(mz.size(), 0), global(mz.size(), 0);
  Batch batch;
  for (index_t b = 0; b < B; ++b) {
    const Peaks& p = *spectra[static_cast<std::size_t>(b)];
    const auto at = [&](index_t s) { return static_cast<std::size_t>(b * S + s); };
    type[at(0)] = kCls;
    type[at(1)] = kPrecursor;
    mz[at(1)] = static_cast<float>(p.precursor_mz);
    global[at(0)] = global[at(1)] = 1;
    for (index_t s = 0; s < kSpecialTokens + p.size(); ++s) padding[at(s)] = 1;
    for (index_t i = 0; i < p.size(); ++i) {
      mz[at(kSpecialTokens + i)] = static_cast<float>(p.mz[static_cast<std::size_t>(i)]);
      intensity[at(kSpecialTokens + i)] = static_cast<float>(std::sqrt(p.relative[static_cast<std::size_t>(i)]));
    }
    for (const index_t i : masked[static_cast<std::size_t>(b)]) {
      nexa::require(0 <= i && i < p.size(), "make_batch", "masked peak ", i, " outside the spectrum's ", p.size(),
                    " peaks");
      const std::size_t t = at(kSpecialTokens + i);
      type[t] = kMask;
      mz[t] = intensity[t] = 0.f;
      batch.tokens.masked.push_back(static_cast<index_t>(t));
      batch.mz_targets.push_back(p.mz_bins[static_cast<std::size_t>(i)]);
      batch.intensity_targets.push_back(p.intensity_bins[static_cast<std::size_t>(i)]);
    }
  }
  batch.tokens.mz = nexa::Tensor<float>::from_host({B, S}, mz);
  batch.tokens.intensity = nexa::Tensor<float>::from_host({B, S}, intensity);
  batch.tokens.type = nexa::Tensor<std::int32_t>::from_host({B, S}, type);
  batch.tokens.padding = nexa::Tensor<std::int32_t>::from_host({B, S}, padding);
  batch.tokens.global = nexa::Tensor<std::int32_t>::from_host({B, S}, global);
  return batch;
}

// --- accuracy and baselines ------------------------------------------------------------------

struct Accuracy {
  double n = 0, mz = 0, mz_within1 = 0, intensity = 0;
  void add(std::int32_t mz_pred, std::int32_t mz_true, std::int32_t int_pred, std::int32_t int_true) {
    n += 1;
    mz += mz_pred == mz_true;
    mz_within1 += std::abs(mz_pred - mz_true) <= 1;
    intensity += int_pred == int_true;
  }
  [[nodiscard]] double mz_acc() const { return n > 0 ? mz / n : 0; }
  [[nodiscard]] double mz_within1_acc() const { return n > 0 ? mz_within1 / n : 0; }
  [[nodiscard]] double intensity_acc() const { return n > 0 ? intensity / n : 0; }
};

// The most frequent m/z bin and intensity bin over every peak of the training spectra (the
// masked peaks are a uniform sample of them). Ties go to the lower bin.
struct FrequencyBaseline {
  std::int32_t mz = 0, intensity = 0;
  [[nodiscard]] static FrequencyBaseline fit(const std::vector<const Peaks*>& train, const Binning& b) {
    std::vector<double> mz_count(static_cast<std::size_t>(b.mz_bins), 0),
        int_count(static_cast<std::size_t>(b.intensity_bins), 0);
    for (const Peaks* p : train)
      for (index_t i = 0; i < p->size(); ++i) {
        mz_count[static_cast<std::size_t>(p->mz_bins[static_cast<std::size_t>(i)])] += 1;
        int_count[static_cast<std::size_t>(p->intensity_bins[static_cast<std::size_t>(i)])] += 1;
      }
    const auto argmax = [](const std::vector<double>& v) {
      return static_cast<std::int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
    };
    return {argmax(mz_count), argmax(int_count)};
  }
};

// A second, stronger floor: the bins of the midpoint of the nearest unmasked neighbours (m/z,
// and the mean relative intensity), or of the one neighbour at an end, or the frequency baseline
// when every peak is masked.
struct NeighbourPrediction {
  std::int32_t mz = 0, intensity = 0;
};
[[nodiscard]] inline NeighbourPrediction neighbour_midpoint(const Peaks& p, const std::vector<index_t>& masked,
                                                            index_t i, const FrequencyBaseline& fallback,
                                                            const Binning& b) {
  const auto is_masked = [&](index_t j) { return std::binary_search(masked.begin(), masked.end(), j); };
  index_t lo = i - 1, hi = i + 1;
  while (lo >= 0 && is_masked(lo)) --lo;
  while (hi < p.size() && is_masked(hi)) ++hi;
  std::vector<index_t> seen;
  if (lo >= 0) seen.push_back(lo);
  if (hi < p.size()) seen.push_back(hi);
  if (seen.empty()) return {fallback.mz, fallback.intensity};
  double mz = 0, rel = 0;
  for (const index_t j : seen) {
    mz += p.mz[static_cast<std::size_t>(j)];
    rel += p.relative[static_cast<std::size_t>(j)];
  }
  const auto n = static_cast<double>(seen.size());
  return {mz_bin(mz / n, b), intensity_bin(rel / n, b)};
}

}  // namespace nexa_spec
