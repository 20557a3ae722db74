#pragma once
// DynamicLossScaler: loss scaling for 16-bit training, as torch.amp.GradScaler does it.
//   1. scale_gradient(dloss): the loss gradient times scale(), before backward, so small
//      gradients do not underflow in fp16;
//   2. step(model, optimizer): divides every trainable gradient by scale(), checks that all are
//      finite (a device kernel for device parameters), and takes the optimizer step only if so;
//   3. then updates the scale: halved (backoff_factor) after an overflow, doubled
//      (growth_factor) after growth_interval finite steps in a row.
// Works on any device whose parameters ElementwiseKernel supports (float and double).
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "nexa/core/error.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/elementwise.hpp"

namespace nexa::train {

struct LossScalerConfig {
  double init_scale = 65536.0;  // 2^16, GradScaler's default
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  std::int64_t growth_interval = 2000;
};

class DynamicLossScaler {
 public:
  explicit DynamicLossScaler(LossScalerConfig config = {}) : config_(config), scale_(config.init_scale) {
    require(std::isfinite(config.init_scale) && config.init_scale > 0, "DynamicLossScaler",
            "init_scale must be finite and positive, got ", config.init_scale);
    require(std::isfinite(config.growth_factor) && config.growth_factor > 1, "DynamicLossScaler",
            "growth_factor must be finite and > 1, got ", config.growth_factor);
    require(config.backoff_factor > 0 && config.backoff_factor < 1, "DynamicLossScaler",
            "backoff_factor must be in (0, 1), got ", config.backoff_factor);
    require(config.growth_interval > 0, "DynamicLossScaler", "growth_interval must be positive, got ",
            config.growth_interval);
  }

  [[nodiscard]] double scale() const { return scale_; }
  // Finite steps since the last overflow or growth.
  [[nodiscard]] std::int64_t good_steps() const { return good_steps_; }
  // Steps skipped because of an overflow, in total.
  [[nodiscard]] std::int64_t skipped_steps() const { return skipped_; }

  // dloss *= scale(): call on the loss gradient before backward.
  template <class T, class D>
  void scale_gradient(TensorView<T, D> dloss) const {
    ops::scale(static_cast<T>(scale_), dloss);
  }
  template <class T, class D>
  void scale_gradient(Tensor<T, D>& dloss) const {
    scale_gradient(dloss.view());
  }

  // Divides every trainable gradient of `model` by scale(); returns whether all are finite.
  template <class Model>
  [[nodiscard]] bool unscale(Model& model) const {
    bool finite = true;
    model.visit_params([&](const std::string&, auto& p) {
      if (!p.trainable) return;
      using T = typename std::remove_reference_t<decltype(p.grad)>::value_type;
      ops::scale(static_cast<T>(1.0 / scale_), p.grad.view());
      finite = ops::all_finite(p.grad.cview()) && finite;
    });
    return finite;
  }

  // Records a step's outcome and adjusts the scale; returns `finite` (whether to step).
  bool update(bool finite) {
    if (!finite) {
      scale_ *= config_.backoff_factor;
      good_steps_ = 0;
      ++skipped_;
      return false;
    }
    if (++good_steps_ == config_.growth_interval) {
      scale_ *= config_.growth_factor;
      good_steps_ = 0;
    }
    return true;
  }

  // unscale, optimizer.step() if every gradient is finite, update. Returns whether it stepped.
  // The gradients are left unscaled either way; zero them before the next backward.
  template <class Model, class Optimizer>
  bool step(Model& model, Optimizer& optimizer) {
    const bool finite = unscale(model);
    if (finite) optimizer.step();
    return update(finite);
  }

 private:
  LossScalerConfig config_;
  double scale_;
  std::int64_t good_steps_ = 0;
  std::int64_t skipped_ = 0;
};

}  // namespace nexa::train
