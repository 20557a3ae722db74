#pragma once
// PreLNBlock: a T5-style pre-LayerNorm Transformer block (Hugging Face's T5Block without
// cross-attention):
//   h   = x + Dropout(W_o Attention(RMSNorm(x)))
//   out = h + Dropout(FFN(RMSNorm(h)))
// Attention is any attention policy module (FullAttention<>, LocalGlobalAttention<W>,
// FlashAttention<>); FFN is a dense FFN (T5FFN<Relu>, T5FFN<GatedGelu>, ...) or any MoELayer. The
// user names both with default scalar and device; the block rebinds them to its own.
// Parameter names follow transformers' T5 (and Switch Transformers for an MoE FFN) under the
// block's prefix: layer.0.layer_norm.weight, layer.0.SelfAttention.{q,k,v,o}.weight,
// layer.1.layer_norm.weight, layer.1.DenseReluDense.* (dense) or layer.1.mlp.* (MoE).
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "nexa/attention/kv_cache.hpp"
#include "nexa/blocks/sequence_context.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/nn/dropout.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/nn/rms_norm.hpp"
#include "nexa/ops/elementwise.hpp"

namespace nexa {

template <class Attn, class FFN, class T = float, class D = cpu>
class PreLNBlock {
 public:
  using AttentionT = typename Attn::template rebind<T, D>;
  using FFNT = typename FFN::template rebind<T, D>;
  using Norm = RMSNorm<T, D>;
  static constexpr bool is_moe = requires(FFNT & f) { f.router; };

  struct Config {
    index_t d_model = 0;
    index_t heads = 0;
    index_t head_dim = 0;            // 0 selects d_model / heads (T5: d_kv)
    double dropout = 0.0;            // on each sublayer's output (T5: dropout_rate)
    double attention_dropout = 0.0;  // on the attention probabilities (T5: the same dropout_rate)
    double norm_eps = 1e-6;          // T5: layer_norm_epsilon
    bool causal = false;             // decoder-style self-attention
    bool attention_scale = false;    // T5 folds 1/sqrt(d_kv) into the query init instead
    typename FFNT::Config ffn = {};  // the FFN's (or MoELayer's) own config; its d_model must match
  };
  struct Cache {
    typename Norm::Cache attention_norm;
    typename AttentionT::Cache attention;
    typename Linear<T, D>::Cache output;
    typename Dropout<T, D>::Cache attention_dropout;
    typename Norm::Cache ffn_norm;
    typename FFNT::Cache ffn;
    typename Dropout<T, D>::Cache ffn_dropout;
    [[nodiscard]] double aux_loss() const { return aux_loss_of(ffn); }
  };
  template <class T2, class D2>
  using rebind = PreLNBlock<Attn, FFN, T2, D2>;

  Norm attention_norm;   // layer.0.layer_norm
  AttentionT attention;  // layer.0.SelfAttention.{q,k,v}
  Linear<T, D> output;   // layer.0.SelfAttention.o
  Norm ffn_norm;         // layer.1.layer_norm
  FFNT ffn;              // layer.1.DenseReluDense or layer.1.mlp
  Dropout<T, D> attention_dropout, ffn_dropout;

  PreLNBlock() = default;
  // Initialised as transformers' T5PreTrainedModel does: q ~ N(0, (d_model * d_kv)^-1/2),
  // k, v ~ N(0, d_model^-1/2), o ~ N(0, (heads * d_kv)^-1/2); norms 1; the FFN its own way.
  PreLNBlock(const Config& config, Rng& rng) : config_(config) {
    require(config.d_model > 0 && config.heads > 0, "PreLNBlock", "d_model and heads must be positive, got ",
            config.d_model, " and ", config.heads);
    require(config.ffn.d_model == config.d_model, "PreLNBlock", "ffn.d_model expected ", config.d_model, ", got ",
            config.ffn.d_model);
    attention_norm = Norm({config.d_model, config.norm_eps}, rng);
    attention = AttentionT({.hidden = config.d_model,
                            .heads = config.heads,
                            .head_dim = config.head_dim,
                            .dropout = config.attention_dropout,
                            .causal = config.causal,
                            .bias = false,
                            .scale = config.attention_scale,
                            .init_std = 1 / std::sqrt(static_cast<double>(config.d_model))},
                           rng);
    const index_t inner = attention.inner();
    ops::scale(T(1 / std::sqrt(static_cast<double>(attention.config().head_dim))), attention.query.weight.value.view());
    output = Linear<T, D>({.in_features = inner,
                           .out_features = config.d_model,
                           .bias = false,
                           .init_std = 1 / std::sqrt(static_cast<double>(inner))},
                          rng);
    ffn_norm = Norm({config.d_model, config.norm_eps}, rng);
    ffn = FFNT(config.ffn, rng);
    attention_dropout = Dropout<T, D>({config.dropout}, rng);
    ffn_dropout = Dropout<T, D>({config.dropout}, rng);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] index_t heads() const { return config_.heads; }

  void set_training(bool on) {
    attention.set_training(on);
    if constexpr (requires { ffn.set_training(on); }) ffn.set_training(on);
    attention_dropout.set_training(on);
    ffn_dropout.set_training(on);
  }
  template <class F>
  void visit_dropouts(F&& f) {
    attention.visit_dropouts(f);
    f(attention_dropout);
    if constexpr (requires { ffn.visit_dropouts(f); }) ffn.visit_dropouts(f);
    f(ffn_dropout);
  }

  // x: [B, S, d_model] -> [B, S, d_model]. An rvalue x is kept without a copy.
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, const SequenceContext<T, D>& context, Cache& cache) {
    return forward(clone(x), context, cache);
  }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, const SequenceContext<T, D>& context, Cache& cache) {
    require(x.rank() == 3 && x.dim(2) == config_.d_model, "PreLNBlock", "input shape expected [batch, seq, ",
            config_.d_model, "], got ", x.shape());
    Tensor<T, D> h = clone(x.cview());
    Tensor<T, D> a = attention.forward(attention_norm.forward(std::move(x), cache.attention_norm), context.mask,
                                       cache.attention, context.position_bias, context.global);
    Tensor<T, D> o = output.forward(std::move(a), cache.output);
    attention_dropout.forward_inplace(o.data(), o.numel(), cache.attention_dropout);
    ops::axpy(T(1), o.cview(), h.view());
    o = Tensor<T, D>();

    Tensor<T, D> f = ffn.forward(ffn_norm.forward(h.cview(), cache.ffn_norm), cache.ffn);
    ffn_dropout.forward_inplace(f.data(), f.numel(), cache.ffn_dropout);
    ops::axpy(T(1), f.cview(), h.view());
    return h;
  }

  // Incremental causal decoding: x [B, n, d_model] holds the next n positions; `kv` keeps this
  // block's keys and values (attention/kv_cache.hpp). key_mask [B, L] and position_bias
  // [heads, 2L - 1] cover all L = kv.length + n positions. Equal to forward()'s rows for those
  // positions, without dropout.
  [[nodiscard]] Tensor<T, D> decode(TensorView<const T, D> x, KVCache<T, D>& kv,
                                    TensorView<const std::int32_t, D> key_mask = {},
                                    TensorView<const T, D> position_bias = {}) {
    require(x.rank() == 3 && x.dim(2) == config_.d_model, "PreLNBlock", "input shape expected [batch, n, ",
            config_.d_model, "], got ", x.shape());
    Tensor<T, D> h = clone(x);
    const Tensor<T, D> a = attention.decode(attention_norm.apply(x).cview(), kv, key_mask, position_bias);
    ops::axpy(T(1), output.apply(a.cview()).cview(), h.view());
    typename FFNT::Cache ffn_cache;  // an MoE layer routes through its cache; nothing is kept
    const Tensor<T, D> f = ffn.forward(ffn_norm.apply(h.cview()).cview(), ffn_cache);
    ops::axpy(T(1), f.cview(), h.view());
    return h;
  }

  // dy: [B, S, d_model]. Accumulates parameter gradients (and the FFN's auxiliary-loss gradients);
  // when d_position_bias [heads, 2S - 1] is given, accumulates the position bias's gradient.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> d_position_bias = {}) {
    require(!cache.ffn_norm.input.empty(), "PreLNBlock", "backward needs a forward's cache");
    require_shape(dy, cache.ffn_norm.input.shape(), "PreLNBlock", "dy");
    Tensor<T, D> df = clone(dy);
    ffn_dropout.backward_inplace(df.data(), df.numel(), cache.ffn_dropout);
    Tensor<T, D> dh = ffn_norm.backward(ffn.backward(df.cview(), cache.ffn).cview(), cache.ffn_norm);
    ops::axpy(T(1), dy, dh.view());  // the residual
    df = clone(dh.cview());
    attention_dropout.backward_inplace(df.data(), df.numel(), cache.attention_dropout);
    Tensor<T, D> da = output.backward(df.cview(), cache.output);
    Tensor<T, D> dn = d_position_bias.empty() ? attention.backward(da.cview(), cache.attention)
                                              : attention.backward(da.cview(), cache.attention, d_position_bias);
    ops::axpy(T(1), attention_norm.backward(dn.cview(), cache.attention_norm).cview(), dh.view());
    return dh;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    attention_norm.visit_params(f, join_name(prefix, "layer.0.layer_norm"));
    attention.query.visit_params(f, join_name(prefix, "layer.0.SelfAttention.q"));
    attention.key.visit_params(f, join_name(prefix, "layer.0.SelfAttention.k"));
    attention.value.visit_params(f, join_name(prefix, "layer.0.SelfAttention.v"));
    output.visit_params(f, join_name(prefix, "layer.0.SelfAttention.o"));
    ffn_norm.visit_params(f, join_name(prefix, "layer.1.layer_norm"));
    ffn.visit_params(f, join_name(prefix, is_moe ? "layer.1.mlp" : "layer.1.DenseReluDense"));
  }

 private:
  Config config_;
};

}  // namespace nexa
