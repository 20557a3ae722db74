#pragma once
// BertLayer: one post-LayerNorm Transformer encoder block, as Hugging Face's BertLayer:
//   h   = LayerNorm(x + Dropout(W_o FullAttention(x, mask)))
//   out = LayerNorm(h + Dropout(W_2 GELU_erf(W_1 h)))
// and BertEncoder: `layers` of them in sequence.
// Parameter names under "encoder.layer.<i>": attention.self.{query,key,value}.{weight,bias},
// attention.output.dense.*, attention.output.LayerNorm.*, intermediate.dense.*, output.dense.*,
// output.LayerNorm.*.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>

#include "nexa/attention/full_attention.hpp"
#include "nexa/core/parallel.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/models/bert_config.hpp"
#include "nexa/nn/activation.hpp"
#include "nexa/nn/dropout.hpp"
#include "nexa/nn/layer_norm.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/ops/elementwise.hpp"

namespace nexa {

namespace models_detail {

// GELU (erf form) in place, and its backward g *= GELU'(x). On the CPU float runs on Eigen's
// vectorised erf and exp (a rational erf approximation within a few ulp) and other types use the
// exact Gelu functor; a device runs the Gelu functor through ActivationKernel<D>.
template <class D = cpu, class T>
void gelu_inplace(T* x, index_t n) {
  if constexpr (!std::same_as<D, cpu>) {
    ActivationKernel<D>::template forward<Gelu>(n, x, x);
  } else if constexpr (std::same_as<T, float>) {
    constexpr index_t chunk = 4096;
    const index_t chunks = (n + chunk - 1) / chunk;
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t c = 0; c < chunks; ++c) {
      Eigen::Map<Eigen::ArrayXf> v(x + c * chunk, std::min(chunk, n - c * chunk));
      v = 0.5f * v * (1.0f + (v * float(std::numbers::sqrt2 / 2)).erf());
    }
  } else {
    nn_detail::apply_activation<Gelu>(x, n);
  }
}
template <class D = cpu, class T>
void gelu_backward_inplace(T* g, const T* x, index_t n) {
  if constexpr (!std::same_as<D, cpu>) {
    ActivationKernel<D>::template backward<Gelu>(n, x, g, g);
  } else {
    constexpr index_t chunk = 4096;
    const index_t chunks = (n + chunk - 1) / chunk;
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t c = 0; c < chunks; ++c) {
      const index_t len = std::min(chunk, n - c * chunk);
      if constexpr (std::same_as<T, float>) {
        Eigen::Map<Eigen::ArrayXf> gv(g + c * chunk, len);
        const Eigen::Map<const Eigen::ArrayXf> xv(x + c * chunk, len);
        const auto cdf = 0.5f * (1.0f + (xv * float(std::numbers::sqrt2 / 2)).erf());
        const auto pdf = (-0.5f * xv.square()).exp() * float(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
        gv *= cdf + xv * pdf;
      } else {
        for (index_t i = c * chunk; i < c * chunk + len; ++i) g[i] = g[i] * Gelu::derivative(x[i]);
      }
    }
  }
}

// A Linear initialised as transformers' BertPreTrainedModel does: W ~ N(0, std), b = 0.
template <class T, class D>
Linear<T, D> bert_linear(index_t in, index_t out, double std, Rng& rng) {
  Linear<T, D> l({.in_features = in, .out_features = out, .bias = true, .init_std = std > 0 ? std : 0.0}, rng);
  l.bias.value.set_zero();
  return l;
}
}  // namespace models_detail

template <class T = float, class D = cpu>
class BertLayer {
 public:
  using Config = BertConfig;
  struct Cache {
    typename FullAttention<T, D>::Cache attention;  // holds the layer's input x
    typename Linear<T, D>::Cache attention_dense;
    typename Dropout<T, D>::Cache attention_dropout;
    typename LayerNorm<T, D>::Cache attention_norm;
    typename Linear<T, D>::Cache intermediate;
    Tensor<T, D> intermediate_pre;  // W_1 h + b_1, before the GELU
    typename Linear<T, D>::Cache output_dense;
    typename Dropout<T, D>::Cache output_dropout;
    typename LayerNorm<T, D>::Cache output_norm;
  };
  template <class T2, class D2>
  using rebind = BertLayer<T2, D2>;

  FullAttention<T, D> attention;   // attention.self
  Linear<T, D> attention_dense;    // attention.output.dense
  LayerNorm<T, D> attention_norm;  // attention.output.LayerNorm
  Linear<T, D> intermediate;       // intermediate.dense
  Linear<T, D> output_dense;       // output.dense
  LayerNorm<T, D> output_norm;     // output.LayerNorm
  Dropout<T, D> attention_dropout, output_dropout;

  BertLayer() = default;
  BertLayer(const Config& config, Rng& rng) : config_(config) {
    config.validate();
    attention = FullAttention<T, D>({.hidden = config.hidden,
                                     .heads = config.heads,
                                     .dropout = config.attention_dropout,
                                     .init_std = config.init_std},
                                    rng);
    attention.query.bias.value.set_zero();
    attention.key.bias.value.set_zero();
    attention.value.bias.value.set_zero();
    attention_dense = models_detail::bert_linear<T, D>(config.hidden, config.hidden, config.init_std, rng);
    attention_norm = LayerNorm<T, D>({config.hidden, config.layer_norm_eps}, rng);
    intermediate = models_detail::bert_linear<T, D>(config.hidden, config.intermediate, config.init_std, rng);
    output_dense = models_detail::bert_linear<T, D>(config.intermediate, config.hidden, config.init_std, rng);
    output_norm = LayerNorm<T, D>({config.hidden, config.layer_norm_eps}, rng);
    attention_dropout = Dropout<T, D>({config.dropout}, rng);
    output_dropout = Dropout<T, D>({config.dropout}, rng);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  void set_training(bool on) {
    attention.set_training(on);
    attention_dropout.set_training(on);
    output_dropout.set_training(on);
  }
  void rewind(std::uint64_t next = 0) {
    attention.rewind(next);
    attention_dropout.rewind(next);
    output_dropout.rewind(next);
  }

  // x: [B, S, hidden]; mask: [B, S] of 0/1 or empty. An rvalue x is kept without a copy.
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, TensorView<const std::int32_t, D> mask, Cache& cache) {
    return forward(clone(x), mask, cache);
  }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, TensorView<const std::int32_t, D> mask, Cache& cache) {
    Tensor<T, D> o =
        attention_dense.forward(attention.forward(std::move(x), mask, cache.attention), cache.attention_dense);
    attention_dropout.forward_inplace(o.data(), o.numel(), cache.attention_dropout);
    ops::axpy(T(1), cache.attention.input.cview(), o.view());
    Tensor<T, D> h = attention_norm.forward(std::move(o), cache.attention_norm);

    Tensor<T, D> a = intermediate.forward(h.cview(), cache.intermediate);
    cache.intermediate_pre = clone(a.cview());
    models_detail::gelu_inplace<D>(a.data(), a.numel());
    Tensor<T, D> f = output_dense.forward(std::move(a), cache.output_dense);
    output_dropout.forward_inplace(f.data(), f.numel(), cache.output_dropout);
    ops::axpy(T(1), h.cview(), f.view());
    return output_norm.forward(std::move(f), cache.output_norm);
  }

  // Forward without keeping anything (inference).
  [[nodiscard]] Tensor<T, D> apply(TensorView<const T, D> x, TensorView<const std::int32_t, D> mask) {
    Tensor<T, D> o = attention_dense.apply(attention.apply(x, mask).cview());
    typename Dropout<T, D>::Cache dc;
    attention_dropout.forward_inplace(o.data(), o.numel(), dc);
    ops::axpy(T(1), x, o.view());
    Tensor<T, D> h = attention_norm.apply(o.cview());
    o = Tensor<T, D>();
    Tensor<T, D> a = intermediate.apply(h.cview());
    models_detail::gelu_inplace<D>(a.data(), a.numel());
    Tensor<T, D> f = output_dense.apply(a.cview());
    a = Tensor<T, D>();
    output_dropout.forward_inplace(f.data(), f.numel(), dc);
    ops::axpy(T(1), h.cview(), f.view());
    return output_norm.apply(f.cview());
  }

  // Accumulates every parameter's gradient (trainable ones); returns dx.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    require(!cache.intermediate_pre.empty(), "BertLayer", "backward needs a forward's cache");
    Tensor<T, D> dz = output_norm.backward(dy, cache.output_norm);  // d(h + f)
    Tensor<T, D> df = clone(dz.cview());
    output_dropout.backward_inplace(df.data(), df.numel(), cache.output_dropout);
    Tensor<T, D> da = output_dense.backward(df.cview(), cache.output_dense);
    df = Tensor<T, D>();
    models_detail::gelu_backward_inplace<D>(da.data(), cache.intermediate_pre.data(), da.numel());
    Tensor<T, D> dh = intermediate.backward(da.cview(), cache.intermediate);
    da = Tensor<T, D>();
    ops::axpy(T(1), dz.cview(), dh.view());
    Tensor<T, D> dr = attention_norm.backward(dh.cview(), cache.attention_norm);  // d(x + o)
    Tensor<T, D> dout = clone(dr.cview());
    attention_dropout.backward_inplace(dout.data(), dout.numel(), cache.attention_dropout);
    Tensor<T, D> dctx = attention_dense.backward(dout.cview(), cache.attention_dense);
    Tensor<T, D> dx = attention.backward(dctx.cview(), cache.attention);
    ops::axpy(T(1), dr.cview(), dx.view());
    return dx;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    attention.visit_params(f, join_name(prefix, "attention.self"));
    attention_dense.visit_params(f, join_name(prefix, "attention.output.dense"));
    attention_norm.visit_params(f, join_name(prefix, "attention.output.LayerNorm"));
    intermediate.visit_params(f, join_name(prefix, "intermediate.dense"));
    output_dense.visit_params(f, join_name(prefix, "output.dense"));
    output_norm.visit_params(f, join_name(prefix, "output.LayerNorm"));
  }

 private:
  Config config_;
};

template <class T = float, class D = cpu>
class BertEncoder {
 public:
  using Config = BertConfig;
  struct Cache {
    std::vector<typename BertLayer<T, D>::Cache> layers;
  };
  template <class T2, class D2>
  using rebind = BertEncoder<T2, D2>;

  std::vector<BertLayer<T, D>> layers;

  BertEncoder() = default;
  BertEncoder(const Config& config, Rng& rng) {
    config.validate();
    for (index_t i = 0; i < config.layers; ++i) layers.emplace_back(config, rng);
  }

  void set_training(bool on) {
    for (auto& l : layers) l.set_training(on);
  }
  void rewind(std::uint64_t next = 0) {
    for (auto& l : layers) l.rewind(next);
  }

  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, TensorView<const std::int32_t, D> mask, Cache& cache) {
    return forward(clone(x), mask, cache);
  }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, TensorView<const std::int32_t, D> mask, Cache& cache) {
    cache.layers.resize(layers.size());
    for (std::size_t i = 0; i < layers.size(); ++i) x = layers[i].forward(std::move(x), mask, cache.layers[i]);
    return std::move(x);
  }
  // Forward without keeping anything (inference): each layer's cache is dropped as it finishes.
  [[nodiscard]] Tensor<T, D> apply(Tensor<T, D>&& x, TensorView<const std::int32_t, D> mask) {
    for (auto& l : layers) x = l.apply(x.cview(), mask);
    return std::move(x);
  }

  // Runs layers top down to `lowest` (0: all of them); returns d(input of layer `lowest`).
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache, std::size_t lowest = 0) {
    require(cache.layers.size() == layers.size(), "BertEncoder", "backward needs a forward's cache");
    require(lowest <= layers.size(), "BertEncoder", "lowest layer expected at most ", layers.size(), ", got ", lowest);
    Tensor<T, D> g = clone(dy);
    for (std::size_t i = layers.size(); i-- > lowest;) g = layers[i].backward(g.cview(), cache.layers[i]);
    return g;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    for (std::size_t i = 0; i < layers.size(); ++i)
      layers[i].visit_params(f, join_name(prefix, "layer." + std::to_string(i)));
  }
};

}  // namespace nexa
