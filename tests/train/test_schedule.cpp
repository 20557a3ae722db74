#include "nexa/train/schedule.hpp"

#include <doctest/doctest.h>

#include <cmath>

using nexa::train::CosineSchedule;

TEST_CASE("Cosine schedule with linear warmup at key steps") {
  const CosineSchedule s{.peak_lr = 1e-3, .min_lr = 1e-4, .warmup_steps = 10, .total_steps = 110};
  CHECK(s(0) == 0.0);                                                         // warmup starts at 0
  CHECK(s(5) == doctest::Approx(5e-4));                                       // halfway through warmup
  CHECK(s(10) == doctest::Approx(1e-3));                                      // peak at the end of warmup
  CHECK(s(35) == doctest::Approx(1e-4 + 9e-4 * 0.5 * (1 + std::sqrt(0.5))));  // progress 1/4: cos(pi/4)
  CHECK(s(60) == doctest::Approx(5.5e-4));  // progress 1/2: halfway between peak and min
  CHECK(s(85) == doctest::Approx(1e-4 + 9e-4 * 0.5 * (1 - std::sqrt(0.5))));  // progress 3/4
  CHECK(s(110) == doctest::Approx(1e-4));                                     // final lr
  CHECK(s(1000) == 1e-4);                                                     // stays at min_lr
  for (nexa::index_t t = 10; t < 110; ++t) CHECK(s(t + 1) <= s(t));
  const CosineSchedule no_warmup{.peak_lr = 2.0, .warmup_steps = 0, .total_steps = 4};
  CHECK(no_warmup.lr(0) == 2.0);
  CHECK(no_warmup.lr(2) == doctest::Approx(1.0));
  CHECK(no_warmup.lr(4) == 0.0);
}

TEST_CASE("Cosine schedule rejects inconsistent settings") {
  auto lr_at = [](const CosineSchedule& s, nexa::index_t step) { return s(step); };
  const CosineSchedule no_steps{.total_steps = 0};
  const CosineSchedule long_warmup{.warmup_steps = 11, .total_steps = 10};
  const CosineSchedule min_above_peak{.peak_lr = 1e-4, .min_lr = 1e-3, .total_steps = 10};
  const CosineSchedule ok{.total_steps = 10};
  CHECK_THROWS_AS((void)lr_at(no_steps, 0), nexa::Error);
  CHECK_THROWS_AS((void)lr_at(long_warmup, 0), nexa::Error);
  CHECK_THROWS_AS((void)lr_at(min_above_peak, 0), nexa::Error);
  CHECK_THROWS_WITH_AS((void)lr_at(ok, -1), doctest::Contains("CosineSchedule"), nexa::Error);
}
