#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/generate/sampling.hpp"

using nexa::index_t;
using nexa::generate::sample_token;
using nexa::generate::sampling_distribution;
using nexa::generate::SamplingConfig;

namespace {

constexpr float neg_inf = -std::numeric_limits<float>::infinity();

// softmax(l / t) in double, for hand-checked expectations.
std::vector<double> softmax(const std::vector<float>& l, double t = 1.0) {
  double m = -std::numeric_limits<double>::infinity();
  for (float v : l) m = std::max(m, static_cast<double>(v));
  std::vector<double> p;
  double s = 0;
  for (float v : l) {
    p.push_back(std::exp((static_cast<double>(v) - m) / t));
    s += p.back();
  }
  for (double& v : p) v /= s;
  return p;
}

void check_probs(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-14) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("token " << i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol));
    if (want[i] == 0.0) CHECK(got[i] == 0.0);  // dropped tokens are exactly 0
  }
}

}  // namespace

TEST_CASE("greedy is the argmax, the lowest index among ties") {
  const std::vector<float> l{1.0f, 3.0f, neg_inf, 3.0f, 2.0f};
  const SamplingConfig greedy{.temperature = 0.0, .greedy = true};  // temperature is ignored
  CHECK(sample_token(l, greedy, 0.0) == 1);
  CHECK(sample_token(l, greedy, 0.999) == 1);
  check_probs(sampling_distribution(l, greedy), {0, 1, 0, 0, 0});
  nexa::Rng rng(3);
  for (int i = 0; i < 10; ++i) CHECK(sample_token(l, greedy, rng) == 1);
  const std::vector<float> first{neg_inf, 5.0f, 5.0f};
  CHECK(sample_token(first, greedy, 0.5) == 1);
}

TEST_CASE("temperature: softmax(l / t), the argmax in the limit t -> 0, uniform as t -> inf") {
  const std::vector<float> l{0.5f, 2.0f, -1.0f, 1.0f};
  check_probs(sampling_distribution(l, {}), softmax(l));
  check_probs(sampling_distribution(l, {.temperature = 2.0}), softmax(l, 2.0));
  check_probs(sampling_distribution(l, {.temperature = 0.25}), softmax(l, 0.25));
  // Hand-computed: t = 2 gives exp(l / 2) / sum.
  const double s = std::exp(0.25) + std::exp(1.0) + std::exp(-0.5) + std::exp(0.5);
  CHECK(sampling_distribution(l, {.temperature = 2.0})[1] == doctest::Approx(std::exp(1.0) / s).epsilon(1e-14));

  const auto cold = sampling_distribution(l, {.temperature = 1e-3});
  CHECK(cold[1] > 1.0 - 1e-12);
  const auto frozen = sampling_distribution(l, {.temperature = 1e-300});  // no overflow, no NaN
  check_probs(frozen, {0, 1, 0, 0});
  CHECK(sample_token(l, {.temperature = 1e-300}, 0.999) == 1);
  // Tied maxima share the mass in the limit.
  const auto tied = sampling_distribution(std::vector<float>{3.0f, 1.0f, 3.0f}, {.temperature = 1e-300});
  check_probs(tied, {0.5, 0, 0.5});
  const auto hot = sampling_distribution(l, {.temperature = 1e9});
  for (double p : hot) CHECK(p == doctest::Approx(0.25).epsilon(1e-8));
}

TEST_CASE("top-k keeps the k largest logits, ties at the boundary to the lower indices") {
  const std::vector<float> l{0.0f, 2.0f, 1.0f, 2.0f, 1.0f};
  check_probs(sampling_distribution(l, {.top_k = 1}), {0, 1, 0, 0, 0});
  check_probs(sampling_distribution(l, {.top_k = 2}), {0, 0.5, 0, 0.5, 0});
  // k = 3: both 2s, then the first of the two 1s (index 2, not 4).
  const double z = 2 * std::exp(2.0) + std::exp(1.0);
  check_probs(sampling_distribution(l, {.top_k = 3}), {0, std::exp(2.0) / z, std::exp(1.0) / z, std::exp(2.0) / z, 0});
  // k >= the vocabulary: off.
  check_probs(sampling_distribution(l, {.top_k = 5}), softmax(l));
  check_probs(sampling_distribution(l, {.top_k = 50}), softmax(l));
  // With a temperature: top-k of softmax(l / t).
  const double zt = 2 * std::exp(4.0) + std::exp(2.0);
  check_probs(sampling_distribution(l, {.temperature = 0.5, .top_k = 3}),
              {0, std::exp(4.0) / zt, std::exp(2.0) / zt, std::exp(4.0) / zt, 0});
}

TEST_CASE("top-p keeps the shortest probability-sorted prefix whose mass reaches p") {
  // Four equal logits: probabilities exactly 1/4, ranked by index.
  const std::vector<float> flat{0.0f, 0.0f, 0.0f, 0.0f};
  check_probs(sampling_distribution(flat, {.top_p = 0.25}), {1, 0, 0, 0});
  check_probs(sampling_distribution(flat, {.top_p = 0.5}), {0.5, 0.5, 0, 0});  // exactly reached
  check_probs(sampling_distribution(flat, {.top_p = 0.5000001}), {1.0 / 3, 1.0 / 3, 1.0 / 3, 0});
  check_probs(sampling_distribution(flat, {.top_p = 0.74}), {1.0 / 3, 1.0 / 3, 1.0 / 3, 0});
  check_probs(sampling_distribution(flat, {.top_p = 1e-12}), {1, 0, 0, 0});  // at least one token
  check_probs(sampling_distribution(flat, {.top_p = 1.0}), {0.25, 0.25, 0.25, 0.25});

  // Probabilities 0.1, 0.4, 0.2, 0.3 (up to float logits): sorted 0.4, 0.3, 0.2, 0.1.
  const std::vector<float> l{std::log(0.1f), std::log(0.4f), std::log(0.2f), std::log(0.3f)};
  const auto p = softmax(l);
  check_probs(sampling_distribution(l, {.top_p = 0.35}), {0, 1, 0, 0});
  check_probs(sampling_distribution(l, {.top_p = 0.65}), {0, p[1] / (p[1] + p[3]), 0, p[3] / (p[1] + p[3])});
  const double three = p[1] + p[3] + p[2];
  check_probs(sampling_distribution(l, {.top_p = 0.75}), {0, p[1] / three, p[2] / three, p[3] / three});
  check_probs(sampling_distribution(l, {.top_p = 0.95}), p);

  // top-k first, then top-p on the renormalised survivors: e^3 / (e^3 + e^2) = 0.731.
  const std::vector<float> d{3.0f, 2.0f, 1.0f, 0.0f};
  check_probs(sampling_distribution(d, {.top_k = 2, .top_p = 0.7}), {1, 0, 0, 0});
  const double two = std::exp(3.0) + std::exp(2.0);
  check_probs(sampling_distribution(d, {.top_k = 2, .top_p = 0.8}), {std::exp(3.0) / two, std::exp(2.0) / two, 0, 0});
  // Masked (-inf) tokens never survive.
  check_probs(sampling_distribution(std::vector<float>{neg_inf, 1.0f, neg_inf}, {.top_p = 1.0}), {0, 1, 0});
}

TEST_CASE("the deterministic sampler is the inverse CDF in index order, intervals [c_{i-1}, c_i)") {
  const std::vector<float> flat{0.0f, 0.0f, 0.0f, 0.0f};
  CHECK(sample_token(flat, {}, 0.0) == 0);
  CHECK(sample_token(flat, {}, std::nextafter(0.25, 0.0)) == 0);
  CHECK(sample_token(flat, {}, 0.25) == 1);  // an exact boundary belongs to the next token
  CHECK(sample_token(flat, {}, 0.5) == 2);
  CHECK(sample_token(flat, {}, 0.75) == 3);
  CHECK(sample_token(flat, {}, std::nextafter(1.0, 0.0)) == 3);
  // Zero-probability tokens (masked, or cut by top-k / top-p) are never drawn, not even at u = 0.
  CHECK(sample_token(std::vector<float>{neg_inf, 0.0f, 0.0f}, {}, 0.0) == 1);
  const std::vector<float> l{1.0f, 0.0f, 1.0f};
  CHECK(sample_token(l, {.top_k = 2}, 0.0) == 0);
  CHECK(sample_token(l, {.top_k = 2}, std::nextafter(0.5, 0.0)) == 0);
  CHECK(sample_token(l, {.top_k = 2}, 0.5) == 2);
  CHECK(sample_token(flat, {.top_p = 0.5}, 0.5) == 1);  // keeps {0, 1}: [0, 0.5), [0.5, 1)
  CHECK(sample_token(flat, {.top_p = 0.5}, std::nextafter(1.0, 0.0)) == 1);
  // A lone survivor takes every u.
  CHECK(sample_token(flat, {.top_k = 1}, std::nextafter(1.0, 0.0)) == 0);
}

TEST_CASE("the Rng sampler draws each token with its probability (20000 draws, 4 sigma)") {
  const std::vector<float> l{0.3f, 1.2f, -0.5f, 0.9f, 0.0f, -2.0f};
  const SamplingConfig config{.temperature = 0.8, .top_k = 5, .top_p = 0.97};
  const auto p = sampling_distribution(l, config);
  CHECK(p[5] == 0.0);  // cut by top-k
  constexpr int n = 20000;
  std::vector<int> counts(l.size(), 0);
  nexa::Rng rng(2024);
  for (int i = 0; i < n; ++i) ++counts[static_cast<std::size_t>(sample_token(l, config, rng))];
  for (std::size_t i = 0; i < l.size(); ++i) {
    const double mean = n * p[i], sigma = std::sqrt(n * p[i] * (1 - p[i]));
    INFO("token " << i << ": " << counts[i] << " draws, expected " << mean << " +- " << sigma);
    CHECK(std::fabs(counts[i] - mean) <= 4 * sigma);
  }
  CHECK(counts[5] == 0);

  // Reproducible: the same seed gives the same tokens; a stream's element i is a pure function.
  nexa::Rng a(7), b(7);
  for (int i = 0; i < 50; ++i) CHECK(sample_token(l, config, a) == sample_token(l, config, b));
  const nexa::RandomStream s(7, 42);
  for (std::uint64_t i = 0; i < 50; ++i) {
    CHECK(sample_token(l, config, s, i) == sample_token(l, config, 1.0 - s.uniform(i)));
  }
}

TEST_CASE("invalid sampling input raises nexa::Error naming the parameter") {
  const std::vector<float> l{0.0f, 1.0f};
  const auto raises = [](auto&& f, const char* text) {
    CHECK_THROWS_WITH_AS(f(), doctest::Contains(text), nexa::Error);
  };
  raises([&] { return sampling_distribution(std::vector<float>{}, {}); }, "logits must not be empty");
  raises([&] { return sample_token(std::vector<float>{}, {}, 0.5); }, "generate::sample_token: logits");
  raises([&] { return sampling_distribution(std::vector<float>{0.0f, std::nanf("")}, {}); }, "logits[1] is NaN");
  raises([&] { return sample_token(std::vector<float>{0.0f, std::nanf("")}, {.greedy = true}, 0.5); }, "NaN");
  raises([&] { return sampling_distribution(std::vector<float>{std::numeric_limits<float>::infinity()}, {}); },
         "logits[0] is +inf");
  raises([&] { return sampling_distribution(std::vector<float>{neg_inf, neg_inf}, {}); }, "-inf");
  raises([&] { return sampling_distribution(l, {.temperature = 0.0}); }, "temperature");
  raises([&] { return sampling_distribution(l, {.temperature = -1.0}); }, "temperature");
  raises([&] { return sampling_distribution(l, {.temperature = std::nan("")}); }, "temperature");
  raises([&] { return sampling_distribution(l, {.temperature = std::numeric_limits<double>::infinity()}); },
         "temperature");
  raises([&] { return sampling_distribution(l, {.top_k = -1}); }, "top_k must be >= 0");
  raises([&] { return sampling_distribution(l, {.top_p = 0.0}); }, "top_p must be in (0, 1]");
  raises([&] { return sampling_distribution(l, {.top_p = 1.5}); }, "top_p");
  raises([&] { return sampling_distribution(l, {.top_p = std::nan("")}); }, "top_p");
  raises([&] { return sample_token(l, {}, 1.0); }, "u must be in [0, 1)");
  raises([&] { return sample_token(l, {}, -0.25); }, "u must be in [0, 1)");
  raises([&] { return sample_token(l, {}, std::nan("")); }, "u must be in [0, 1)");
  // Greedy ignores the temperature but not the other parameters.
  CHECK(sample_token(l, {.temperature = -1.0, .greedy = true}, 0.5) == 1);
  raises([&] { return sample_token(l, {.top_k = -2, .greedy = true}, 0.5); }, "top_k");
}
