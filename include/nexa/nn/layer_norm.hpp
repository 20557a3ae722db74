#pragma once
// LayerNorm over the last axis: y = (x - mean) / sqrt(var + eps) * weight + bias, with the
// biased variance, as PyTorch's nn.LayerNorm (elementwise affine). eps defaults to 1e-5; BERT
// uses 1e-12. Statistics are computed in acc_t<T> (at least fp32). weight starts at 1, bias at 0.
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
class LayerNorm {
  static_assert(std::same_as<D, cpu>, "LayerNorm: only the CPU backend implements it yet");
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
    const T* x = cache.input.data();
    const A* mean = cache.mean.data();
    const A* rstd = cache.rstd.data();
    const T* w = weight.value.data();
    const T* g = dy.data();
    auto dx = Tensor<T, D>::uninitialized(dy.shape());
    T* out = dx.data();
    // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight.
    NEXA_PARALLEL_FOR_IF(dy.numel() > parallel_grain)
    for (index_t r = 0; r < rows; ++r) {
      const T* xr = x + r * n;
      const T* gr = g + r * n;
      A sum_g = 0, sum_gx = 0;
      for (index_t j = 0; j < n; ++j) {
        const A gj = A(gr[j]) * A(w[j]);
        sum_g += gj;
        sum_gx += gj * (A(xr[j]) - mean[r]) * rstd[r];
      }
      sum_g /= A(n);
      sum_gx /= A(n);
      for (index_t j = 0; j < n; ++j) {
        const A xhat = (A(xr[j]) - mean[r]) * rstd[r];
        out[r * n + j] = static_cast<T>(rstd[r] * (A(gr[j]) * A(w[j]) - sum_g - xhat * sum_gx));
      }
    }
    if (weight.trainable || bias.trainable) {
      // Column blocks per thread, rows summed in order: race-free and thread-count independent.
      constexpr index_t block = 64;
      const index_t blocks = (n + block - 1) / block;
      NEXA_PARALLEL_FOR_IF(dy.numel() > parallel_grain && blocks > 1)
      for (index_t b = 0; b < blocks; ++b) {
        const index_t j0 = b * block, j1 = std::min(n, j0 + block);
        A dw[block] = {}, db[block] = {};
        for (index_t r = 0; r < rows; ++r) {
          for (index_t j = j0; j < j1; ++j) {
            const A gj = A(g[r * n + j]);
            dw[j - j0] += gj * (A(x[r * n + j]) - mean[r]) * rstd[r];
            db[j - j0] += gj;
          }
        }
        for (index_t j = j0; j < j1; ++j) {
          if (weight.trainable) weight.grad.data()[j] += static_cast<T>(dw[j - j0]);
          if (bias.trainable) bias.grad.data()[j] += static_cast<T>(db[j - j0]);
        }
      }
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
    const index_t rows = x.rows(), n = config_.dim;
    auto y = Tensor<T, D>::uninitialized(x.shape());
    const T* in = x.data();
    const T* w = weight.value.data();
    const T* b = bias.value.data();
    T* out = y.data();
    const A eps = static_cast<A>(config_.eps);
    NEXA_PARALLEL_FOR_IF(x.numel() > parallel_grain)
    for (index_t r = 0; r < rows; ++r) {
      const T* xr = in + r * n;
      A mean = 0;
      for (index_t j = 0; j < n; ++j) mean += A(xr[j]);
      mean /= A(n);
      A var = 0;  // two passes: no cancellation when |mean| >> std
      for (index_t j = 0; j < n; ++j) var += (A(xr[j]) - mean) * (A(xr[j]) - mean);
      var /= A(n);
      const A rstd = A(1) / std::sqrt(var + eps);
      for (index_t j = 0; j < n; ++j) out[r * n + j] = static_cast<T>((A(xr[j]) - mean) * rstd * A(w[j]) + A(b[j]));
      if (mean_out) {
        mean_out[r] = mean;
        rstd_out[r] = rstd;
      }
    }
    return y;
  }

  Config config_;
};

}  // namespace nexa
