#pragma once
// Learning-rate schedule: linear warmup, then cosine decay to a final learning rate, as Hugging
// Face's get_cosine_with_min_lr_schedule_with_warmup (num_cycles 0.5). `step` counts the
// optimizer steps already taken (the first step uses lr(0)):
//   step <  warmup_steps:  peak_lr * step / warmup_steps
//   otherwise:             min_lr + (peak_lr - min_lr) * 0.5 * (1 + cos(pi * progress)),
//                          progress = (step - warmup_steps) / (total_steps - warmup_steps), at most 1,
// so lr(warmup_steps) = peak_lr and lr(step) = min_lr for every step >= total_steps.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "nexa/core/error.hpp"
#include "nexa/core/shape.hpp"

namespace nexa::train {

struct CosineSchedule {
  double peak_lr = 1e-3;
  double min_lr = 0.0;  // the final learning rate
  index_t warmup_steps = 0;
  index_t total_steps = 0;

  [[nodiscard]] double lr(index_t step) const {
    require(total_steps > 0 && 0 <= warmup_steps && warmup_steps <= total_steps, "CosineSchedule",
            "need 0 <= warmup_steps <= total_steps and total_steps > 0, got warmup_steps ", warmup_steps,
            " and total_steps ", total_steps);
    require(0 <= min_lr && min_lr <= peak_lr, "CosineSchedule", "need 0 <= min_lr <= peak_lr, got min_lr ", min_lr,
            " and peak_lr ", peak_lr);
    require(step >= 0, "CosineSchedule", "step must be non-negative, got ", step);
    if (step < warmup_steps) return peak_lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
    if (step >= total_steps) return min_lr;
    const double progress = static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * std::min(progress, 1.0)));
  }
  [[nodiscard]] double operator()(index_t step) const { return lr(step); }
};

}  // namespace nexa::train
