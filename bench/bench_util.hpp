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

}  // namespace nexa::bench
