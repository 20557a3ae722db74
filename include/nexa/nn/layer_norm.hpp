#pragma once
// LayerNorm over the last axis: y = (x - mean) / sqrt(var + eps) * weight + bias, with the
// biased variance, as PyTorch's nn.LayerNorm (elementwise affine). eps defaults to 1e-5; BERT
// uses 1e-12. Statistics are computed in acc_t<T> (at least fp32). weight starts at 1, bias at 0.
// The arithmetic lives in NormKernel<D> (backend/cpu/norm.hpp, backend/cuda/norm.hpp).
#include <cmath>
#include <string>

#include "nexa/backend/cpu/norm.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/norm_fwd.hpp"

namespace nexa {

template <class T = float, class D = cpu>
class LayerNorm {
  using A = acc_t<T>;

 public:
  struct Config {
    index_t dim = 0;  // size of the normalised (last) axis
    double eps = 1e-5;
  };
  struct Cache {
    Tensor<T, D> input;  // [..., dim]
    Tensor<A, D> mean;   // [rows]
    Tensor<A, D> rstd;   // [rows], 1 / sqrt(var + eps)
  };
  template <class T2, class D2>
  using rebind = LayerNorm<T2, D2>;

  Param<T, D> weight;  // [dim]
  Param<T, D> bias;    // [dim]

  LayerNorm() = default;
  LayerNorm(const Config& config, Rng& /*unused: deterministic init*/) : config_(config) {
    require(config.dim > 0, "LayerNorm", "dim must be positive, got ", config.dim);
    require(std::isfinite(config.eps) && config.eps >= 0, "LayerNorm", "eps must be finite and non-negative, got ",
            config.eps);
    weight = Param<T, D>(Tensor<T, D>::full({config.dim}, T(1)));
    bias = Param<T, D>(Tensor<T, D>::zeros({config.dim}));
  }

  [[nodiscard]] const Config& config() const { return config_; }

  // x: [..., dim] -> [..., dim]. An rvalue input is kept without a copy.
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) const {
    check_input(x);
    return forward(clone(x), cache);
  }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, Cache& cache) const {
    check_input(x.cview());
    cache.input = std::move(x);
    cache.mean = Tensor<A, D>::uninitialized({cache.input.rows()});
    cache.rstd = Tensor<A, D>::uninitialized({cache.input.rows()});
    return compute(cache.input.cview(), cache.mean.data(), cache.rstd.data());
  }
  // Forward without keeping anything (inference).
  [[nodiscard]] Tensor<T, D> apply(TensorView<const T, D> x) const {
    check_input(x);
    return compute(x, nullptr, nullptr);
  }

  // Accumulates d(weight) and d(bias) when trainable; returns dx.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    require_shape(dy, cache.input.shape(), "LayerNorm", "dy");
    const index_t rows = dy.rows(), n = config_.dim;
    auto dx = Tensor<T, D>::uninitialized(dy.shape());
    NormKernel<D>::layer_norm_backward(rows, n, cache.input.data(), cache.mean.data(), cache.rstd.data(),
                                       weight.value.data(), dy.data(), dx.data());
    if (weight.trainable || bias.trainable) {
      NormKernel<D>::layer_norm_param_grad(rows, n, cache.input.data(), cache.mean.data(), cache.rstd.data(), dy.data(),
                                           weight.trainable ? weight.grad.data() : nullptr,
                                           bias.trainable ? bias.grad.data() : nullptr);
    }
    return dx;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight"), weight);
    f(join_name(prefix, "bias"), bias);
  }

 private:
  void check_input(TensorView<const T, D> x) const {
    require(config_.dim > 0, "LayerNorm", "module is not constructed");
    require(x.rank() >= 1 && x.cols() == config_.dim, "LayerNorm", "input's last axis expected ", config_.dim,
            ", got shape ", x.shape());
  }

  // Normalises every row; stores the statistics when mean_out/rstd_out are given.
  [[nodiscard]] Tensor<T, D> compute(TensorView<const T, D> x, A* mean_out, A* rstd_out) const {
    auto y = Tensor<T, D>::uninitialized(x.shape());
    NormKernel<D>::layer_norm_forward(x.rows(), config_.dim, x.data(), weight.value.data(), bias.value.data(),
                                      static_cast<A>(config_.eps), y.data(), mean_out, rstd_out);
    return y;
  }

  Config config_;
};

}  // namespace nexa
