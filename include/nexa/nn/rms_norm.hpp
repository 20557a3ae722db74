#pragma once
// RMSNorm, i.e. Hugging Face's T5LayerNorm: y = weight * (x * rsqrt(mean(x^2) + eps)) over the
// last axis. No mean subtraction and no bias; weight starts at 1; eps defaults to 1e-6. The mean
// square is computed in acc_t<T> (at least fp32), as T5 computes the variance in float32.
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
class RMSNorm {
  using A = acc_t<T>;

 public:
  struct Config {
    index_t dim = 0;  // size of the normalised (last) axis
    double eps = 1e-6;
  };
  struct Cache {
    Tensor<T, D> input;  // [..., dim]
    Tensor<A, D> rstd;   // [rows], rsqrt(mean(x^2) + eps)
  };
  template <class T2, class D2>
  using rebind = RMSNorm<T2, D2>;

  Param<T, D> weight;  // [dim]

  RMSNorm() = default;
  RMSNorm(const Config& config, Rng& /*unused: deterministic init*/) : config_(config) {
    require(config.dim > 0, "RMSNorm", "dim must be positive, got ", config.dim);
    require(std::isfinite(config.eps) && config.eps >= 0, "RMSNorm", "eps must be finite and non-negative, got ",
            config.eps);
    weight = Param<T, D>(Tensor<T, D>::full({config.dim}, T(1)));
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
    cache.rstd = Tensor<A, D>::uninitialized({cache.input.rows()});
    return compute(cache.input.cview(), cache.rstd.data());
  }
  // Forward without keeping anything (inference).
  [[nodiscard]] Tensor<T, D> apply(TensorView<const T, D> x) const {
    check_input(x);
    return compute(x, nullptr);
  }

  // Accumulates d(weight) when trainable; returns dx.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    require_shape(dy, cache.input.shape(), "RMSNorm", "dy");
    const index_t rows = dy.rows(), n = config_.dim;
    auto dx = Tensor<T, D>::uninitialized(dy.shape());
    NormKernel<D>::rms_backward(rows, n, cache.input.data(), cache.rstd.data(), weight.value.data(), dy.data(),
                                dx.data());
    if (weight.trainable)
      NormKernel<D>::rms_weight_grad(rows, n, cache.input.data(), cache.rstd.data(), dy.data(), weight.grad.data());
    return dx;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight"), weight);
  }

 private:
  void check_input(TensorView<const T, D> x) const {
    require(config_.dim > 0, "RMSNorm", "module is not constructed");
    require(x.rank() >= 1 && x.cols() == config_.dim, "RMSNorm", "input's last axis expected ", config_.dim,
            ", got shape ", x.shape());
  }

  // Normalises every row; stores rsqrt(mean(x^2) + eps) when rstd_out is given.
  [[nodiscard]] Tensor<T, D> compute(TensorView<const T, D> x, A* rstd_out) const {
    auto y = Tensor<T, D>::uninitialized(x.shape());
    NormKernel<D>::rms_forward(x.rows(), config_.dim, x.data(), weight.value.data(), static_cast<A>(config_.eps),
                               y.data(), rstd_out);
    return y;
  }

  Config config_;
};

}  // namespace nexa
