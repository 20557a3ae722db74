#pragma once
// Timing helpers shared by nexa's benchmarks: median of repeated runs after a warm-up.
#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace nexa::bench {

// Median wall time in seconds of `fn` over at least `min_reps` runs and at least `min_seconds`.
inline double median_seconds(const std::function<void()>& fn, int min_reps = 5, double min_seconds = 1.0) {
  fn();  // warm-up: page faults, BLAS thread start
  std::vector<double> times;
  double total = 0;
  while (static_cast<int>(times.size()) < min_reps || total < min_seconds) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    times.push_back(s);
    total += s;
    if (times.size() >= 50) break;
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Median wall times of several functions timed in alternation (one call of each per round), so
// that every function sees the same machine conditions and their ratios are taken in one run.
inline std::vector<double> interleaved_median_seconds(const std::vector<std::function<void()>>& fns, int min_rounds = 5,
                                                      double min_seconds = 3.0) {
  for (const auto& fn : fns) fn();  // warm-up
  std::vector<std::vector<double>> times(fns.size());
  double total = 0;
  for (int round = 0; round < min_rounds || (total < min_seconds && round < 50); ++round) {
    for (std::size_t i = 0; i < fns.size(); ++i) {
      const auto start = std::chrono::steady_clock::now();
      fns[i]();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      times[i].push_back(s);
      total += s;
    }
  }
  std::vector<double> medians;
  for (auto& t : times) {
    std::sort(t.begin(), t.end());
    medians.push_back(t[t.size() / 2]);
  }
  return medians;
}

}  // namespace nexa::bench
