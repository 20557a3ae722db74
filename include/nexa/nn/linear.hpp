#pragma once
// Linear: y = x W^T (+ b). W is [out, in] as in PyTorch and Hugging Face checkpoints.
// Bias is off by default, as in T5.
#include <cmath>
#include <string>

#include "nexa/core/param.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/gemm.hpp"

namespace nexa {

template <class T = float, class D = cpu>
class Linear {
 public:
  struct Config {
    index_t in_features = 0;
    index_t out_features = 0;
    bool bias = false;
    // 0 selects PyTorch's default, U(-1/sqrt(in), 1/sqrt(in)); otherwise N(0, init_std).
    double init_std = 0.0;
  };
  struct Cache {
    Tensor<T, D> input;  // [N, in]
  };
  template <class T2, class D2>
  using rebind = Linear<T2, D2>;

  Param<T, D> weight;  // [out, in]
  Param<T, D> bias;    // [out], empty when config.bias is false

  Linear() = default;
  Linear(const Config& config, Rng& rng) : config_(config) {
    require(config.in_features > 0 && config.out_features > 0, "Linear", "in_features and out_features must be ",
            "positive, got ", config.in_features, " and ", config.out_features);
    const Shape shape{config.out_features, config.in_features};
    const double bound = 1.0 / std::sqrt(static_cast<double>(config.in_features));
    weight = Param<T, D>(config.init_std > 0 ? Tensor<T, D>::randn(shape, rng, config.init_std)
                                             : Tensor<T, D>::uniform(shape, rng, -bound, bound));
    if (config.bias) bias = Param<T, D>(Tensor<T, D>::uniform({config.out_features}, rng, -bound, bound));
  }

  [[nodiscard]] const Config& config() const { return config_; }

  // x: [..., in] -> [..., out]. An rvalue input is kept without a copy.
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) const {
    check_input(x);
    return forward(clone(x), cache);
  }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, Cache& cache) const {
    check_input(x.cview());
    cache.input = std::move(x);
    return apply(cache.input.cview());
  }
  // Forward without keeping anything (inference).
  [[nodiscard]] Tensor<T, D> apply(TensorView<const T, D> x) const {
    check_input(x);
    std::vector<index_t> dims = x.shape().dims();
    dims.back() = config_.out_features;
    auto y = Tensor<T, D>::uninitialized(Shape(dims));
    // y starts as the bias rows and the GEMM adds x W^T onto them (beta = 1).
    if (config_.bias) ops::broadcast_rows(bias.value.cview(), y.view());
    ops::gemm(x, Trans::N, weight.value.cview(), Trans::T, y.view(), T(1), config_.bias ? T(1) : T(0));
    return y;
  }

  // Accumulates dW (and db) when trainable; returns dx.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    const TensorView<const T, D> x = cache.input.cview();
    require(dy.rows() == x.rows() && dy.cols() == config_.out_features, "Linear", "dy shape expected ", x.rows(),
            " rows of ", config_.out_features, ", got ", dy.shape());
    if (weight.trainable) ops::gemm(dy, Trans::T, x, Trans::N, weight.grad.view(), T(1), T(1));
    if (config_.bias && bias.trainable) ops::sum_rows(dy, bias.grad.view());
    std::vector<index_t> dims = dy.shape().dims();
    dims.back() = config_.in_features;
    auto dx = Tensor<T, D>::uninitialized(Shape(dims));
    ops::gemm(dy, Trans::N, weight.value.cview(), Trans::N, dx.view());
    return dx;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight"), weight);
    if (config_.bias) f(join_name(prefix, "bias"), bias);
  }

 private:
  void check_input(TensorView<const T, D> x) const {
    require(x.rank() >= 1 && x.cols() == config_.in_features, "Linear", "input's last axis expected ",
            config_.in_features, ", got shape ", x.shape());
  }

  Config config_;
};

}  // namespace nexa
