#pragma once
// AdamW (Loshchilov & Hutter), step for step as torch.optim.AdamW:
//   p <- p * (1 - lr * weight_decay)                       (decoupled decay; skipped for no-decay params)
//   m <- m + (1 - beta1) * (g - m)                         (torch's exp_avg.lerp_)
//   v <- beta2 * v + (1 - beta2) * g^2
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The parameters are collected once, at construction, through module.visit_params: only the
// trainable ones get moment state (m and v, in the parameter's scalar type); frozen parameters
// are never read or written. Float and double CPU parameters are supported, mixed freely.
// A parameter frozen after construction is skipped by step() and zero_grad().
// The optimizer keeps pointers to the module's parameters: the module must outlive it and not move.
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "nexa/core/parallel.hpp"
#include "nexa/core/param.hpp"

namespace nexa::train {

struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  // Parameters whose name this returns true for get no weight decay (empty: every parameter
  // decays). See no_decay_norms_and_biases.
  std::function<bool(const std::string&)> no_weight_decay = {};
};

// The usual no-decay rule: biases (last name component "bias") and normalisation weights (any
// component containing "norm", case-insensitively: "LayerNorm", "layer_norm", "final_layer_norm").
inline bool no_decay_norms_and_biases(const std::string& name) {
  const std::size_t dot = name.rfind('.');
  const std::string_view last = std::string_view(name).substr(dot == std::string::npos ? 0 : dot + 1);
  if (last == "bias") return true;
  std::string lower(name);
  for (char& ch : lower) ch = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
  return lower.find("norm") != std::string::npos;
}

class AdamW {
 public:
  template <class Module>
  explicit AdamW(Module& module, AdamWConfig config = {}) : config_(std::move(config)) {
    check_config();
    module.visit_params([&](const std::string& name, auto& p) { add(name, p); });
  }

  // One update of every trainable parameter from its accumulated gradient.
  void step() {
    ++steps_;
    const double t = static_cast<double>(steps_);
    const double bias_correction1 = 1.0 - std::pow(config_.beta1, t);
    const double bias_correction2 = 1.0 - std::pow(config_.beta2, t);
    const double step_size = config_.lr / bias_correction1;
    const double bias_correction2_sqrt = std::sqrt(bias_correction2);
    for (auto& s : f32_) update(s, step_size, bias_correction2_sqrt);
    for (auto& s : f64_) update(s, step_size, bias_correction2_sqrt);
  }

  // Zeroes the gradients of the optimised parameters.
  void zero_grad() {
    for (auto& s : f32_) s.param->zero_grad();
    for (auto& s : f64_) s.param->zero_grad();
  }

  void set_lr(double lr) {
    require(std::isfinite(lr) && lr >= 0, "AdamW", "lr must be finite and non-negative, got ", lr);
    config_.lr = lr;
  }
  [[nodiscard]] double lr() const { return config_.lr; }
  [[nodiscard]] const AdamWConfig& config() const { return config_; }
  // Number of step() calls so far (t in the bias corrections).
  [[nodiscard]] std::int64_t steps() const { return steps_; }

  // Bytes of optimizer state: the m and v tensors.
  [[nodiscard]] std::size_t state_bytes() const { return bytes(f32_) + bytes(f64_); }
  // Number of parameter tensors (and elements) that have state.
  [[nodiscard]] std::size_t num_params() const { return f32_.size() + f64_.size(); }
  [[nodiscard]] index_t num_elements() const { return elements(f32_) + elements(f64_); }
  // Names of the optimised parameters, float ones first, each group in visit order.
  [[nodiscard]] std::vector<std::string> param_names() const {
    std::vector<std::string> names;
    for (const auto& s : f32_) names.push_back(s.name);
    for (const auto& s : f64_) names.push_back(s.name);
    return names;
  }
  // Whether the named parameter is optimised with weight decay (false for unknown names).
  [[nodiscard]] bool decays(const std::string& name) const {
    for (const auto& s : f32_)
      if (s.name == name) return s.decay;
    for (const auto& s : f64_)
      if (s.name == name) return s.decay;
    return false;
  }

 private:
  template <class T>
  struct Slot {
    std::string name;
    Param<T, cpu>* param;
    Tensor<T, cpu> m;  // first moment (torch's exp_avg)
    Tensor<T, cpu> v;  // second moment (torch's exp_avg_sq)
    bool decay;
  };

  void check_config() const {
    const auto& c = config_;
    require(std::isfinite(c.lr) && c.lr >= 0, "AdamW", "lr must be finite and non-negative, got ", c.lr);
    require(c.beta1 >= 0 && c.beta1 < 1, "AdamW", "beta1 must be in [0, 1), got ", c.beta1);
    require(c.beta2 >= 0 && c.beta2 < 1, "AdamW", "beta2 must be in [0, 1), got ", c.beta2);
    require(std::isfinite(c.eps) && c.eps >= 0, "AdamW", "eps must be finite and non-negative, got ", c.eps);
    require(std::isfinite(c.weight_decay) && c.weight_decay >= 0, "AdamW",
            "weight_decay must be finite and non-negative, got ", c.weight_decay);
  }

  template <class T, class D>
  void add(const std::string& name, Param<T, D>& p) {
    static_assert(std::same_as<D, cpu>, "AdamW: only CPU parameters are supported yet");
    static_assert(std::same_as<T, float> || std::same_as<T, double>, "AdamW: parameters must be float or double");
    if (!p.trainable) return;
    const bool decay = !(config_.no_weight_decay && config_.no_weight_decay(name));
    Slot<T> slot{name, &p, Tensor<T, cpu>(p.value.shape()), Tensor<T, cpu>(p.value.shape()), decay};
    if constexpr (std::same_as<T, float>) {
      f32_.push_back(std::move(slot));
    } else {
      f64_.push_back(std::move(slot));
    }
  }

  template <class T>
  void update(Slot<T>& s, double step_size, double bias_correction2_sqrt) {
    Param<T, cpu>& p = *s.param;
    if (!p.trainable) return;
    require(p.value.shape() == s.m.shape() && p.grad.shape() == s.m.shape(), "AdamW", "parameter ", s.name,
            " changed shape: value ", p.value.shape(), ", grad ", p.grad.shape(), ", state ", s.m.shape());
    const T decay = static_cast<T>(1.0 - config_.lr * config_.weight_decay);
    const T one_minus_beta1 = static_cast<T>(1.0 - config_.beta1);
    const T beta2 = static_cast<T>(config_.beta2);
    const T one_minus_beta2 = static_cast<T>(1.0 - config_.beta2);
    const T bc2_sqrt = static_cast<T>(bias_correction2_sqrt);
    const T eps = static_cast<T>(config_.eps);
    const T neg_step = static_cast<T>(-step_size);
    const bool apply_decay = s.decay;
    T* w = p.value.data();
    const T* g = p.grad.data();
    T* m = s.m.data();
    T* v = s.v.data();
    const index_t n = p.value.numel();
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t i = 0; i < n; ++i) {
      if (apply_decay) w[i] *= decay;
      m[i] += one_minus_beta1 * (g[i] - m[i]);
      v[i] = v[i] * beta2 + one_minus_beta2 * g[i] * g[i];
      const T denom = std::sqrt(v[i]) / bc2_sqrt + eps;
      w[i] += neg_step * (m[i] / denom);
    }
  }

  template <class T>
  static std::size_t bytes(const std::vector<Slot<T>>& slots) {
    std::size_t total = 0;
    for (const auto& s : slots) total += static_cast<std::size_t>(s.m.numel() + s.v.numel()) * sizeof(T);
    return total;
  }
  template <class T>
  static index_t elements(const std::vector<Slot<T>>& slots) {
    index_t total = 0;
    for (const auto& s : slots) total += s.m.numel();
    return total;
  }

  AdamWConfig config_;
  std::int64_t steps_ = 0;
  std::vector<Slot<float>> f32_;
  std::vector<Slot<double>> f64_;
};

}  // namespace nexa::train
