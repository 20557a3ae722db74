#pragma once
// AdamW (Loshchilov & Hutter), step for step as torch.optim.AdamW:
//   p <- p * (1 - lr * weight_decay)                       (decoupled decay; skipped for no-decay params)
//   m <- m + (1 - beta1) * (g - m)                         (torch's exp_avg.lerp_; bit for bit when
//                                                           beta1 > 0.5, where lerp_ takes this form)
//   v <- beta2 * v + (1 - beta2) * g^2
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The parameters are collected once, at construction, through module.visit_params: only the
// trainable ones get moment state (m and v, in the parameter's scalar type); frozen parameters
// are never read or written. Float and double parameters are supported, mixed freely, on the CPU
// and on CUDA (a .cu file includes nexa/backend/cuda.hpp, which brings AdamWKernel<cuda>).
// A parameter frozen after construction is skipped by step() and zero_grad(). Defaults differ
// from torch's (beta2 0.95 and weight_decay 0.1 here, as LLM recipes use; torch: 0.999, 0.01).
// The optimizer keeps pointers to the module's parameters: the module must outlive it and not move.
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "nexa/core/parallel.hpp"
#include "nexa/core/param.hpp"
#include "nexa/ops/adamw_fwd.hpp"

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

// Raises nexa::Error naming `module` for a configuration AdamW cannot run.
inline void check_adamw_config(const AdamWConfig& c, std::string_view module) {
  require(std::isfinite(c.lr) && c.lr >= 0, module, "lr must be finite and non-negative, got ", c.lr);
  require(c.beta1 >= 0 && c.beta1 < 1, module, "beta1 must be in [0, 1), got ", c.beta1);
  require(c.beta2 >= 0 && c.beta2 < 1, module, "beta2 must be in [0, 1), got ", c.beta2);
  require(std::isfinite(c.eps) && c.eps >= 0, module, "eps must be finite and non-negative, got ", c.eps);
  require(std::isfinite(c.weight_decay) && c.weight_decay >= 0, module,
          "weight_decay must be finite and non-negative, got ", c.weight_decay);
}

// The constants of update number t (from 1), rounded once to the parameters' scalar type. Shared
// by AdamW and the sharded optimizer in nexa/dist so that both produce the same bits.
template <class T>
struct AdamWCoefficients {
  T decay, one_minus_beta1, beta2, one_minus_beta2, bias_correction2_sqrt, eps, neg_step;

  static AdamWCoefficients at_step(const AdamWConfig& c, std::int64_t t) {
    const double step = static_cast<double>(t);
    const double step_size = c.lr / (1.0 - std::pow(c.beta1, step));
    return {static_cast<T>(1.0 - c.lr * c.weight_decay),
            static_cast<T>(1.0 - c.beta1),
            static_cast<T>(c.beta2),
            static_cast<T>(1.0 - c.beta2),
            static_cast<T>(std::sqrt(1.0 - std::pow(c.beta2, step))),
            static_cast<T>(c.eps),
            static_cast<T>(-step_size)};
  }
};

// The update of n consecutive elements: weights w, gradients g, moments m and v (see the top).
template <class T>
void adamw_update(T* w, const T* g, T* m, T* v, index_t n, const AdamWCoefficients<T>& c, bool apply_decay) {
  NEXA_PARALLEL_FOR_IF(n > parallel_grain)
  for (index_t i = 0; i < n; ++i) {
    if (apply_decay) w[i] *= c.decay;
    m[i] += c.one_minus_beta1 * (g[i] - m[i]);
    v[i] = v[i] * c.beta2 + c.one_minus_beta2 * g[i] * g[i];
    const T denom = std::sqrt(v[i]) / c.bias_correction2_sqrt + c.eps;
    w[i] += c.neg_step * (m[i] / denom);
  }
}

namespace adamw_detail {
// The state of one parameter on a device other than the CPU, behind an interface so that a CPU
// build never instantiates device tensors; the update runs in AdamWKernel<D>
// (backend/cuda/adamw.hpp, included by nexa/backend/cuda.hpp).
struct DeviceSlot {
  std::string name;
  bool decay = true;
  explicit DeviceSlot(std::string n, bool d) : name(std::move(n)), decay(d) {}
  DeviceSlot(const DeviceSlot&) = delete;
  DeviceSlot& operator=(const DeviceSlot&) = delete;
  virtual ~DeviceSlot() = default;
  virtual void update(const AdamWConfig& config, std::int64_t step) = 0;
  virtual void zero_grad() = 0;
  [[nodiscard]] virtual index_t elements() const = 0;
  [[nodiscard]] virtual std::size_t bytes() const = 0;
};

template <class T, class D>
struct DeviceSlotOf final : DeviceSlot {
  Param<T, D>* param;
  Tensor<T, D> m, v;
  DeviceSlotOf(std::string n, bool d, Param<T, D>& p)
      : DeviceSlot(std::move(n), d), param(&p), m(p.value.shape()), v(p.value.shape()) {}
  void update(const AdamWConfig& config, std::int64_t step) override {
    if (!param->trainable) return;
    require(param->value.shape() == m.shape() && param->grad.shape() == m.shape(), "AdamW", "parameter ", name,
            " changed shape: value ", param->value.shape(), ", grad ", param->grad.shape(), ", state ", m.shape());
    AdamWKernel<D>::update(param->value.data(), param->grad.data(), m.data(), v.data(), m.numel(),
                           AdamWCoefficients<T>::at_step(config, step), decay);
  }
  void zero_grad() override { param->zero_grad(); }
  [[nodiscard]] index_t elements() const override { return m.numel(); }
  [[nodiscard]] std::size_t bytes() const override {
    return static_cast<std::size_t>(m.numel() + v.numel()) * sizeof(T);
  }
};
}  // namespace adamw_detail

class AdamW {
 public:
  template <class Module>
  explicit AdamW(Module& model, AdamWConfig config = {}) : config_(std::move(config)) {
    check_adamw_config(config_, "AdamW");
    // Not named `module`: nvcc's C++20 mode reads that word at the start of a line as a directive.
    model.visit_params([&](const std::string& name, auto& p) { add(name, p); });
  }

  // One update of every trainable parameter from its accumulated gradient.
  void step() {
    ++steps_;
    const auto f32 = AdamWCoefficients<float>::at_step(config_, steps_);
    const auto f64 = AdamWCoefficients<double>::at_step(config_, steps_);
    for (auto& s : f32_) update(s, f32);
    for (auto& s : f64_) update(s, f64);
    for (auto& s : device_) s->update(config_, steps_);
  }

  // Zeroes the gradients of the optimised parameters.
  void zero_grad() {
    for (auto& s : f32_) s.param->zero_grad();
    for (auto& s : f64_) s.param->zero_grad();
    for (auto& s : device_) s->zero_grad();
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
  [[nodiscard]] std::size_t state_bytes() const {
    std::size_t total = bytes(f32_) + bytes(f64_);
    for (const auto& s : device_) total += s->bytes();
    return total;
  }
  // Number of parameter tensors (and elements) that have state.
  [[nodiscard]] std::size_t num_params() const { return f32_.size() + f64_.size() + device_.size(); }
  [[nodiscard]] index_t num_elements() const {
    index_t total = elements(f32_) + elements(f64_);
    for (const auto& s : device_) total += s->elements();
    return total;
  }
  // Names of the optimised parameters: CPU float ones, CPU double ones, then those on other
  // devices, each group in visit order.
  [[nodiscard]] std::vector<std::string> param_names() const {
    std::vector<std::string> names;
    for (const auto& s : f32_) names.push_back(s.name);
    for (const auto& s : f64_) names.push_back(s.name);
    for (const auto& s : device_) names.push_back(s->name);
    return names;
  }
  // Whether the named parameter is optimised with weight decay (false for unknown names).
  [[nodiscard]] bool decays(const std::string& name) const {
    for (const auto& s : f32_)
      if (s.name == name) return s.decay;
    for (const auto& s : f64_)
      if (s.name == name) return s.decay;
    for (const auto& s : device_)
      if (s->name == name) return s->decay;
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

  template <class T, class D>
  void add(const std::string& name, Param<T, D>& p) {
    static_assert(std::same_as<T, float> || std::same_as<T, double>, "AdamW: parameters must be float or double");
    if (!p.trainable) return;
    const bool decay = !(config_.no_weight_decay && config_.no_weight_decay(name));
    if constexpr (!std::same_as<D, cpu>) {
      device_.push_back(std::make_unique<adamw_detail::DeviceSlotOf<T, D>>(name, decay, p));
      return;
    } else {
      Slot<T> slot{name, &p, Tensor<T, cpu>(p.value.shape()), Tensor<T, cpu>(p.value.shape()), decay};
      if constexpr (std::same_as<T, float>) {
        f32_.push_back(std::move(slot));
      } else {
        f64_.push_back(std::move(slot));
      }
    }
  }

  template <class T>
  void update(Slot<T>& s, const AdamWCoefficients<T>& c) {
    Param<T, cpu>& p = *s.param;
    if (!p.trainable) return;
    require(p.value.shape() == s.m.shape() && p.grad.shape() == s.m.shape(), "AdamW", "parameter ", s.name,
            " changed shape: value ", p.value.shape(), ", grad ", p.grad.shape(), ", state ", s.m.shape());
    adamw_update(p.value.data(), p.grad.data(), s.m.data(), s.v.data(), p.value.numel(), c, s.decay);
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
  std::vector<std::unique_ptr<adamw_detail::DeviceSlot>> device_;
};

}  // namespace nexa::train
