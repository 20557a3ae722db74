#pragma once
// T5 feed-forward experts.
//   T5FFN<Relu>      = T5DenseActDense:      wo(dropout(relu(wi x)))
//   T5FFN<GatedGelu> = T5DenseGatedActDense: wo(dropout(gelu_new(wi_0 x) * wi_1 x))
// No biases, weights [out, in] as in Hugging Face. forward_into/backward_into write into
// caller-provided views so an MoE layer can run each expert straight into its slice.
// Elementwise work goes through ActivationKernel<D> and Dropout<T, D>, so D = cuda runs too.
#include <cmath>
#include <string>
#include <string_view>

#include "nexa/core/param.hpp"
#include "nexa/moe/config.hpp"
#include "nexa/nn/activation.hpp"
#include "nexa/nn/dropout.hpp"
#include "nexa/ops/gemm.hpp"

namespace nexa {

// Gated<Act>: h = Act(wi_0 x) * (wi_1 x).
template <ActivationFn Act>
struct Gated {};
using GatedGelu = Gated<GeluNew>;
using SwiGLU = Gated<Silu>;

// What the T5FFN variants share: config, dropout, T5 initialisation, the allocating
// forward/backward around forward_into/backward_into, and their shape checks.
template <class Derived, class T, class D>
class T5FFNBase {
 public:
  using Config = ExpertConfig;

  T5FFNBase() = default;
  T5FFNBase(const Config& config, Rng& rng, std::string_view name) : config_(config), name_(name) {
    require(config.d_model > 0 && config.d_ff > 0, name, "d_model and d_ff must be positive, got ", config.d_model,
            " and ", config.d_ff);
    dropout_ = Dropout<T, D>({config.dropout}, rng);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  void set_training(bool on) { dropout_.set_training(on); }
  [[nodiscard]] Dropout<T, D>& dropout() { return dropout_; }
  template <class F>
  void visit_dropouts(F&& f) {
    f(dropout_);
  }

  // x: [..., d_model] -> [..., d_model]. An rvalue input is kept without a copy.
  template <class Cache>
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) {
    return forward(clone(x), cache);
  }
  template <class Cache>
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, Cache& cache) {
    auto y = Tensor<T, D>::uninitialized(x.shape());
    static_cast<Derived&>(*this).forward_into(std::move(x), cache, y.view());
    return y;
  }
  template <class Cache>
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    auto dx = Tensor<T, D>::uninitialized(dy.shape());
    static_cast<Derived&>(*this).backward_into(dy, cache, dx.view());
    return dx;
  }

 protected:
  // T5's initialisation unless init_std is set: wi ~ N(0, d_model^-1/2), wo ~ N(0, d_ff^-1/2).
  Param<T, D> init_weight(index_t out, index_t in, Rng& rng) const {
    const double std = config_.init_std > 0 ? config_.init_std : std::pow(static_cast<double>(in), -0.5);
    return Param<T, D>(Tensor<T, D>::randn({out, in}, rng, std));
  }
  void check_forward(const Tensor<T, D>& x, TensorView<T, D> y) const {
    require(x.cols() == config_.d_model, name_, "input's last axis expected ", config_.d_model, ", got shape ",
            x.shape());
    require(y.rows() == x.rows() && y.cols() == config_.d_model, name_, "output expected ", x.rows(), " x ",
            config_.d_model, ", got ", y.shape());
  }
  void check_backward(index_t n, TensorView<const T, D> dy, TensorView<T, D> dx) const {
    require(dy.rows() == n && dy.cols() == config_.d_model, name_, "dy expected ", n, " x ", config_.d_model, ", got ",
            dy.shape());
    require(dx.rows() == n && dx.cols() == config_.d_model, name_, "dx expected ", n, " x ", config_.d_model, ", got ",
            dx.shape());
  }

  Config config_;
  std::string_view name_;
  Dropout<T, D> dropout_;
};

template <class Act, class T = float, class D = cpu>
class T5FFN : public T5FFNBase<T5FFN<Act, T, D>, T, D> {
  using Base = T5FFNBase<T5FFN<Act, T, D>, T, D>;

 public:
  using typename Base::Config;
  struct Cache {
    Tensor<T, D> input;   // [n, d_model]
    Tensor<T, D> pre;     // [n, d_ff] pre-activation (kept only when Act is not Relu)
    Tensor<T, D> hidden;  // [n, d_ff] after activation and dropout
    typename Dropout<T, D>::Cache dropout;
  };
  template <class T2, class D2>
  using rebind = T5FFN<Act, T2, D2>;

  Param<T, D> wi;  // [d_ff, d_model]
  Param<T, D> wo;  // [d_model, d_ff]

  T5FFN() = default;
  T5FFN(const Config& config, Rng& rng) : Base(config, rng, "T5FFN") {
    wi = this->init_weight(config.d_ff, config.d_model, rng);
    wo = this->init_weight(config.d_model, config.d_ff, rng);
  }

  void forward_into(Tensor<T, D>&& x, Cache& cache, TensorView<T, D> y) {
    this->check_forward(x, y);
    cache.input = std::move(x);
    const index_t n = cache.input.rows();
    cache.hidden = Tensor<T, D>::uninitialized({n, this->config_.d_ff});
    if (n == 0) return;
    ops::gemm(cache.input, Trans::N, wi.value, Trans::T, cache.hidden);
    if constexpr (!std::same_as<Act, Relu>) cache.pre = cache.hidden;
    ActivationKernel<D>::template forward<Act>(cache.hidden.numel(), cache.hidden.data(), cache.hidden.data());
    this->dropout_.forward_inplace(cache.hidden.data(), cache.hidden.numel(), cache.dropout);
    ops::gemm(cache.hidden, Trans::N, wo.value, Trans::T, y);
  }

  void backward_into(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> dx) {
    const index_t n = cache.input.rows();
    this->check_backward(n, dy, dx);
    if (n == 0) return;
    if (wo.trainable) ops::gemm(dy, Trans::T, cache.hidden, Trans::N, wo.grad, T(1), T(1));
    auto dh = Tensor<T, D>::uninitialized({n, this->config_.d_ff});
    ops::gemm(dy, Trans::N, wo.value, Trans::N, dh);
    this->dropout_.backward_inplace(dh.data(), dh.numel(), cache.dropout);
    if constexpr (std::same_as<Act, Relu>) {
      // relu'(a) = [a > 0] = [hidden > 0] wherever dropout kept the unit; dropped units have g = 0.
      ActivationKernel<D>::relu_backward_from_output(dh.numel(), cache.hidden.data(), dh.data());
    } else {
      ActivationKernel<D>::template backward<Act>(dh.numel(), cache.pre.data(), dh.data(), dh.data());
    }
    if (wi.trainable) ops::gemm(dh, Trans::T, cache.input, Trans::N, wi.grad, T(1), T(1));
    ops::gemm(dh, Trans::N, wi.value, Trans::N, dx);
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "wi.weight"), wi);
    f(join_name(prefix, "wo.weight"), wo);
  }
};

template <class Act, class T, class D>
class T5FFN<Gated<Act>, T, D> : public T5FFNBase<T5FFN<Gated<Act>, T, D>, T, D> {
  using Base = T5FFNBase<T5FFN<Gated<Act>, T, D>, T, D>;

 public:
  using typename Base::Config;
  struct Cache {
    Tensor<T, D> input;   // [n, d_model]
    Tensor<T, D> gate;    // [n, d_ff] wi_0 x (pre-activation)
    Tensor<T, D> linear;  // [n, d_ff] wi_1 x
    Tensor<T, D> hidden;  // [n, d_ff] Act(gate) * linear after dropout
    typename Dropout<T, D>::Cache dropout;
  };
  template <class T2, class D2>
  using rebind = T5FFN<Gated<Act>, T2, D2>;

  Param<T, D> wi_0;  // [d_ff, d_model]
  Param<T, D> wi_1;  // [d_ff, d_model]
  Param<T, D> wo;    // [d_model, d_ff]

  T5FFN() = default;
  T5FFN(const Config& config, Rng& rng) : Base(config, rng, "T5FFN<Gated>") {
    wi_0 = this->init_weight(config.d_ff, config.d_model, rng);
    wi_1 = this->init_weight(config.d_ff, config.d_model, rng);
    wo = this->init_weight(config.d_model, config.d_ff, rng);
  }

  void forward_into(Tensor<T, D>&& x, Cache& cache, TensorView<T, D> y) {
    this->check_forward(x, y);
    cache.input = std::move(x);
    const index_t n = cache.input.rows(), d_ff = this->config_.d_ff;
    cache.gate = Tensor<T, D>::uninitialized({n, d_ff});
    cache.linear = Tensor<T, D>::uninitialized({n, d_ff});
    cache.hidden = Tensor<T, D>::uninitialized({n, d_ff});
    if (n == 0) return;
    ops::gemm(cache.input, Trans::N, wi_0.value, Trans::T, cache.gate);
    ops::gemm(cache.input, Trans::N, wi_1.value, Trans::T, cache.linear);
    const index_t count = cache.hidden.numel();
    ActivationKernel<D>::template gated_forward<Act>(count, cache.gate.data(), cache.linear.data(),
                                                     cache.hidden.data());
    this->dropout_.forward_inplace(cache.hidden.data(), count, cache.dropout);
    ops::gemm(cache.hidden, Trans::N, wo.value, Trans::T, y);
  }

  void backward_into(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> dx) {
    const index_t n = cache.input.rows(), d_ff = this->config_.d_ff;
    this->check_backward(n, dy, dx);
    if (n == 0) return;
    if (wo.trainable) ops::gemm(dy, Trans::T, cache.hidden, Trans::N, wo.grad, T(1), T(1));
    auto d_gate = Tensor<T, D>::uninitialized({n, d_ff});  // holds dL/dh until split below
    ops::gemm(dy, Trans::N, wo.value, Trans::N, d_gate);
    this->dropout_.backward_inplace(d_gate.data(), d_gate.numel(), cache.dropout);
    auto d_linear = Tensor<T, D>::uninitialized({n, d_ff});
    ActivationKernel<D>::template gated_backward<Act>(d_gate.numel(), cache.gate.data(), cache.linear.data(),
                                                      d_gate.data(), d_linear.data());
    if (wi_0.trainable) ops::gemm(d_gate, Trans::T, cache.input, Trans::N, wi_0.grad, T(1), T(1));
    if (wi_1.trainable) ops::gemm(d_linear, Trans::T, cache.input, Trans::N, wi_1.grad, T(1), T(1));
    ops::gemm(d_gate, Trans::N, wi_0.value, Trans::N, dx);
    ops::gemm(d_linear, Trans::N, wi_1.value, Trans::N, dx, T(1), T(1));
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "wi_0.weight"), wi_0);
    f(join_name(prefix, "wi_1.weight"), wi_1);
    f(join_name(prefix, "wo.weight"), wo);
  }
};

}  // namespace nexa
