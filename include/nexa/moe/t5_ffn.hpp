#pragma once
// T5 feed-forward experts.
//   T5FFN<Relu>      = T5DenseActDense:      wo(dropout(relu(wi x)))
//   T5FFN<GatedGelu> = T5DenseGatedActDense: wo(dropout(gelu_new(wi_0 x) * wi_1 x))
// No biases, weights [out, in] as in Hugging Face. forward_into/backward_into write into
// caller-provided views so an MoE layer can run each expert straight into its slice.
#include <cmath>
#include <string>

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

namespace ffn_detail {
template <class T, class D>
Param<T, D> t5_weight(index_t out, index_t in, double std, Rng& rng) {
  return Param<T, D>(Tensor<T, D>::randn({out, in}, rng, std));
}
}  // namespace ffn_detail

template <class Act, class T = float, class D = cpu>
class T5FFN {
 public:
  using Config = ExpertConfig;
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
  T5FFN(const Config& config, Rng& rng) : config_(config) {
    check_config(config);
    const double s = config.init_std;
    wi = ffn_detail::t5_weight<T, D>(config.d_ff, config.d_model, s > 0 ? s : std::pow(config.d_model, -0.5), rng);
    wo = ffn_detail::t5_weight<T, D>(config.d_model, config.d_ff, s > 0 ? s : std::pow(config.d_ff, -0.5), rng);
    dropout_ = Dropout<T, D>({config.dropout}, rng);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  void set_training(bool on) { dropout_.set_training(on); }
  [[nodiscard]] Dropout<T, D>& dropout() { return dropout_; }

  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) { return forward(clone(x), cache); }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, Cache& cache) {
    auto y = Tensor<T, D>::uninitialized(out_shape(x.shape(), config_.d_model));
    forward_into(std::move(x), cache, y.view());
    return y;
  }
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    auto dx = Tensor<T, D>::uninitialized(dy.shape());
    backward_into(dy, cache, dx.view());
    return dx;
  }

  void forward_into(Tensor<T, D>&& x, Cache& cache, TensorView<T, D> y) {
    require(x.cols() == config_.d_model, "T5FFN", "input's last axis expected ", config_.d_model, ", got shape ",
            x.shape());
    require(y.rows() == x.rows() && y.cols() == config_.d_model, "T5FFN", "output expected ", x.rows(), " x ",
            config_.d_model, ", got ", y.shape());
    cache.input = std::move(x);
    const index_t n = cache.input.rows();
    cache.hidden = Tensor<T, D>::uninitialized({n, config_.d_ff});
    if (n == 0) return;
    ops::gemm(cache.input, Trans::N, wi.value, Trans::T, cache.hidden);
    if constexpr (std::same_as<Act, Relu>) {
      nn_detail::apply_activation<Relu>(cache.hidden.data(), cache.hidden.numel());
    } else {
      cache.pre = cache.hidden;
      nn_detail::apply_activation<Act>(cache.hidden.data(), cache.hidden.numel());
    }
    dropout_.forward_inplace(cache.hidden.data(), cache.hidden.numel(), cache.dropout);
    ops::gemm(cache.hidden, Trans::N, wo.value, Trans::T, y);
  }

  void backward_into(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> dx) {
    const index_t n = cache.input.rows();
    require(dy.rows() == n && dy.cols() == config_.d_model, "T5FFN", "dy expected ", n, " x ", config_.d_model,
            ", got ", dy.shape());
    require(dx.rows() == n && dx.cols() == config_.d_model, "T5FFN", "dx expected ", n, " x ", config_.d_model,
            ", got ", dx.shape());
    if (n == 0) return;
    if (wo.trainable) ops::gemm(dy, Trans::T, cache.hidden, Trans::N, wo.grad, T(1), T(1));
    auto dh = Tensor<T, D>::uninitialized({n, config_.d_ff});
    ops::gemm(dy, Trans::N, wo.value, Trans::N, dh);
    dropout_.backward_inplace(dh.data(), dh.numel(), cache.dropout);
    T* g = dh.data();
    const index_t count = dh.numel();
    if constexpr (std::same_as<Act, Relu>) {
      // relu'(a) = [a > 0] = [hidden > 0] wherever dropout kept the unit; dropped units have g = 0.
      const T* h = cache.hidden.data();
      NEXA_PARALLEL_FOR_IF(count > parallel_grain)
      for (index_t i = 0; i < count; ++i) g[i] = h[i] > T(0) ? g[i] : T(0);
    } else {
      const T* a = cache.pre.data();
      NEXA_PARALLEL_FOR_IF(count > parallel_grain)
      for (index_t i = 0; i < count; ++i) g[i] *= Act::derivative(a[i]);
    }
    if (wi.trainable) ops::gemm(dh, Trans::T, cache.input, Trans::N, wi.grad, T(1), T(1));
    ops::gemm(dh, Trans::N, wi.value, Trans::N, dx);
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "wi.weight"), wi);
    f(join_name(prefix, "wo.weight"), wo);
  }

  static Shape out_shape(const Shape& in, index_t cols) {
    std::vector<index_t> dims = in.dims();
    dims.back() = cols;
    return Shape(dims);
  }
  static void check_config(const Config& c) {
    require(c.d_model > 0 && c.d_ff > 0, "T5FFN", "d_model and d_ff must be positive, got ", c.d_model, " and ",
            c.d_ff);
  }

 private:
  Config config_;
  Dropout<T, D> dropout_;
};

template <class Act, class T, class D>
class T5FFN<Gated<Act>, T, D> {
 public:
  using Config = ExpertConfig;
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
  T5FFN(const Config& config, Rng& rng) : config_(config) {
    T5FFN<Relu, T, D>::check_config(config);
    const double s = config.init_std;
    const double s_in = s > 0 ? s : std::pow(config.d_model, -0.5);
    wi_0 = ffn_detail::t5_weight<T, D>(config.d_ff, config.d_model, s_in, rng);
    wi_1 = ffn_detail::t5_weight<T, D>(config.d_ff, config.d_model, s_in, rng);
    wo = ffn_detail::t5_weight<T, D>(config.d_model, config.d_ff, s > 0 ? s : std::pow(config.d_ff, -0.5), rng);
    dropout_ = Dropout<T, D>({config.dropout}, rng);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  void set_training(bool on) { dropout_.set_training(on); }
  [[nodiscard]] Dropout<T, D>& dropout() { return dropout_; }

  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) { return forward(clone(x), cache); }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, Cache& cache) {
    auto y = Tensor<T, D>::uninitialized(T5FFN<Relu, T, D>::out_shape(x.shape(), config_.d_model));
    forward_into(std::move(x), cache, y.view());
    return y;
  }
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    auto dx = Tensor<T, D>::uninitialized(dy.shape());
    backward_into(dy, cache, dx.view());
    return dx;
  }

  void forward_into(Tensor<T, D>&& x, Cache& cache, TensorView<T, D> y) {
    require(x.cols() == config_.d_model, "T5FFN<Gated>", "input's last axis expected ", config_.d_model, ", got shape ",
            x.shape());
    require(y.rows() == x.rows() && y.cols() == config_.d_model, "T5FFN<Gated>", "output expected ", x.rows(), " x ",
            config_.d_model, ", got ", y.shape());
    cache.input = std::move(x);
    const index_t n = cache.input.rows();
    cache.gate = Tensor<T, D>::uninitialized({n, config_.d_ff});
    cache.linear = Tensor<T, D>::uninitialized({n, config_.d_ff});
    cache.hidden = Tensor<T, D>::uninitialized({n, config_.d_ff});
    if (n == 0) return;
    ops::gemm(cache.input, Trans::N, wi_0.value, Trans::T, cache.gate);
    ops::gemm(cache.input, Trans::N, wi_1.value, Trans::T, cache.linear);
    const T* a = cache.gate.data();
    const T* b = cache.linear.data();
    T* h = cache.hidden.data();
    const index_t count = cache.hidden.numel();
    NEXA_PARALLEL_FOR_IF(count > parallel_grain)
    for (index_t i = 0; i < count; ++i) h[i] = Act::value(a[i]) * b[i];
    dropout_.forward_inplace(h, count, cache.dropout);
    ops::gemm(cache.hidden, Trans::N, wo.value, Trans::T, y);
  }

  void backward_into(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> dx) {
    const index_t n = cache.input.rows();
    require(dy.rows() == n && dy.cols() == config_.d_model, "T5FFN<Gated>", "dy expected ", n, " x ", config_.d_model,
            ", got ", dy.shape());
    require(dx.rows() == n && dx.cols() == config_.d_model, "T5FFN<Gated>", "dx expected ", n, " x ", config_.d_model,
            ", got ", dx.shape());
    if (n == 0) return;
    if (wo.trainable) ops::gemm(dy, Trans::T, cache.hidden, Trans::N, wo.grad, T(1), T(1));
    auto d_gate = Tensor<T, D>::uninitialized({n, config_.d_ff});
    ops::gemm(dy, Trans::N, wo.value, Trans::N, d_gate);
    dropout_.backward_inplace(d_gate.data(), d_gate.numel(), cache.dropout);
    auto d_linear = Tensor<T, D>::uninitialized({n, config_.d_ff});
    T* dg = d_gate.data();
    T* dl = d_linear.data();
    const T* a = cache.gate.data();
    const T* b = cache.linear.data();
    const index_t count = d_gate.numel();
    NEXA_PARALLEL_FOR_IF(count > parallel_grain)
    for (index_t i = 0; i < count; ++i) {
      const T dh = dg[i];
      dl[i] = dh * Act::value(a[i]);
      dg[i] = dh * b[i] * Act::derivative(a[i]);
    }
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

 private:
  Config config_;
  Dropout<T, D> dropout_;
};

}  // namespace nexa
