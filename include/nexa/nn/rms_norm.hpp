#pragma once
// RMSNorm, i.e. Hugging Face's T5LayerNorm: y = weight * (x * rsqrt(mean(x^2) + eps)) over the
// last axis. No mean subtraction and no bias; weight starts at 1; eps defaults to 1e-6. The mean
// square is computed in acc_t<T> (at least fp32), as T5 computes the variance in float32.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <string>

#include "nexa/core/parallel.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa {

template <class T = float, class D = cpu>
class RMSNorm {
  static_assert(std::same_as<D, cpu>, "RMSNorm: only the CPU backend implements it yet");
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
    const T* x = cache.input.data();
    const A* rstd = cache.rstd.data();
    const T* w = weight.value.data();
    const T* g = dy.data();
    auto dx = Tensor<T, D>::uninitialized(dy.shape());
    T* out = dx.data();
    // dx = rstd * (g - xhat * mean(g * xhat)) with g = dy * weight and xhat = x * rstd.
    NEXA_PARALLEL_FOR_IF(dy.numel() > parallel_grain)
    for (index_t r = 0; r < rows; ++r) {
      const T* xr = x + r * n;
      const T* gr = g + r * n;
      A sum_gx = 0;
      for (index_t j = 0; j < n; ++j) sum_gx += A(gr[j]) * A(w[j]) * A(xr[j]) * rstd[r];
      sum_gx /= A(n);
      for (index_t j = 0; j < n; ++j) {
        const A xhat = A(xr[j]) * rstd[r];
        out[r * n + j] = static_cast<T>(rstd[r] * (A(gr[j]) * A(w[j]) - xhat * sum_gx));
      }
    }
    if (weight.trainable) {
      // Column blocks per thread, rows summed in order: race-free and thread-count independent.
      constexpr index_t block = 64;
      const index_t blocks = (n + block - 1) / block;
      NEXA_PARALLEL_FOR_IF(dy.numel() > parallel_grain && blocks > 1)
      for (index_t b = 0; b < blocks; ++b) {
        const index_t j0 = b * block, j1 = std::min(n, j0 + block);
        A dw[block] = {};
        for (index_t r = 0; r < rows; ++r) {
          for (index_t j = j0; j < j1; ++j) dw[j - j0] += A(g[r * n + j]) * A(x[r * n + j]) * rstd[r];
        }
        for (index_t j = j0; j < j1; ++j) weight.grad.data()[j] += static_cast<T>(dw[j - j0]);
      }
    }
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
    const index_t rows = x.rows(), n = config_.dim;
    auto y = Tensor<T, D>::uninitialized(x.shape());
    const T* in = x.data();
    const T* w = weight.value.data();
    T* out = y.data();
    const A eps = static_cast<A>(config_.eps);
    NEXA_PARALLEL_FOR_IF(x.numel() > parallel_grain)
    for (index_t r = 0; r < rows; ++r) {
      const T* xr = in + r * n;
      A ms = 0;
      for (index_t j = 0; j < n; ++j) ms += A(xr[j]) * A(xr[j]);
      ms /= A(n);
      const A rstd = A(1) / std::sqrt(ms + eps);
      // As T5LayerNorm: normalise in A, cast to the storage type, then scale by the weight.
      for (index_t j = 0; j < n; ++j) out[r * n + j] = w[j] * static_cast<T>(A(xr[j]) * rstd);
      if (rstd_out) rstd_out[r] = rstd;
    }
    return y;
  }

  Config config_;
};

}  // namespace nexa
