#pragma once
// AbsolutePositionEmbedding: BERT's learned absolute positions as a module of their own, for
// stacks that do not use a relative bias: y[b, s, :] = x[b, s, :] + weight[offset + s, :].
// weight is [max_positions, dim] ("weight", as BERT's embeddings.position_embeddings.weight),
// initialised N(0, init_std) (BERT: initializer_range 0.02). `offset` shifts the positions, e.g.
// for a chunk that starts inside a longer document. The backward returns dy unchanged as dx and
// accumulates d(weight)[offset + s] = sum over the batch of dy[b, s] in batch order. On a device
// both run through ElementwiseKernel<D> (add_row, sum_rows: the same additions in the same order).
#include <concepts>
#include <string>

#include "nexa/core/param.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/elementwise.hpp"

namespace nexa {

template <class T = float, class D = cpu>
class AbsolutePositionEmbedding {
 public:
  struct Config {
    index_t max_positions = 0;  // BERT: max_position_embeddings
    index_t dim = 0;
    double init_std = 0.02;
  };
  struct Cache {
    Shape shape;  // of the input [B, S, dim]
    index_t offset = 0;
  };
  template <class T2, class D2>
  using rebind = AbsolutePositionEmbedding<T2, D2>;

  Param<T, D> weight;  // [max_positions, dim]

  AbsolutePositionEmbedding() = default;
  AbsolutePositionEmbedding(const Config& config, Rng& rng) : config_(config) {
    require(config.max_positions > 0 && config.dim > 0, "AbsolutePositionEmbedding",
            "max_positions and dim must be positive, got ", config.max_positions, " and ", config.dim);
    require(config.init_std >= 0, "AbsolutePositionEmbedding", "init_std must be non-negative, got ", config.init_std);
    weight = Param<T, D>(Tensor<T, D>::randn({config.max_positions, config.dim}, rng, config.init_std));
  }

  [[nodiscard]] const Config& config() const { return config_; }

  // x: [B, S, dim] -> x + positions offset .. offset + S - 1. An rvalue x is updated in place.
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, Cache& cache, index_t offset = 0) const {
    require(config_.dim > 0, "AbsolutePositionEmbedding", "module is not constructed");
    require(x.rank() == 3 && x.dim(2) == config_.dim, "AbsolutePositionEmbedding", "input shape expected [batch, seq, ",
            config_.dim, "], got ", x.shape());
    require(offset >= 0 && offset + x.dim(1) <= config_.max_positions, "AbsolutePositionEmbedding", "positions ",
            offset, " .. ", offset + x.dim(1) - 1, " expected within [0, max_positions = ", config_.max_positions, ")");
    cache.shape = x.shape();
    cache.offset = offset;
    const index_t B = x.dim(0), row = x.dim(1) * config_.dim;
    const T* p = weight.value.data() + offset * config_.dim;
    if constexpr (std::same_as<D, cpu>) {
      for (index_t b = 0; b < B; ++b) {
        T* xb = x.data() + b * row;
        for (index_t e = 0; e < row; ++e) xb[e] += p[e];
      }
    } else {
      ElementwiseKernel<D>::add_row(B, row, p, x.data());
    }
    return std::move(x);
  }
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache, index_t offset = 0) const {
    return forward(clone(x), cache, offset);
  }

  // Accumulates d(weight) when trainable; returns dx = dy.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    require(cache.shape.rank() == 3, "AbsolutePositionEmbedding", "backward needs a forward's cache");
    require_shape(dy, cache.shape, "AbsolutePositionEmbedding", "dy");
    if (weight.trainable) {
      const index_t B = cache.shape[0], row = cache.shape[1] * config_.dim;
      T* g = weight.grad.data() + cache.offset * config_.dim;
      if constexpr (std::same_as<D, cpu>) {
        for (index_t b = 0; b < B; ++b)
          for (index_t e = 0; e < row; ++e) g[e] += dy.data()[b * row + e];
      } else {
        ElementwiseKernel<D>::sum_rows(B, row, dy.data(), g);
      }
    }
    return clone(dy);
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight"), weight);
  }

 private:
  Config config_;
};

}  // namespace nexa
