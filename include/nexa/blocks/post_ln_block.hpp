#pragma once
// PostLNBlock: a BERT-style post-LayerNorm Transformer block:
//   h   = LayerNorm(x + Dropout(W_o Attention(x) + b_o))
//   out = LayerNorm(h + Dropout(FFN(h)))
// Attention is any attention policy module (FullAttention<>, LocalGlobalAttention<W>,
// FlashAttention<>), with projection biases and 1/sqrt(head_dim) scaling as BERT has them; FFN is
// a dense FFN or any MoELayer. (models/bert_layer.hpp is BERT itself, with BERT's biased GELU FFN
// and checkpoint names; this block is the same arrangement for any attention and FFN.)
// Parameter names under the block's prefix: attention.self.{query,key,value}.*,
// attention.output.dense.*, attention.output.LayerNorm.*, mlp.*, output.LayerNorm.*.
#include <cstdint>
#include <string>
#include <utility>

#include "nexa/blocks/sequence_context.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/nn/dropout.hpp"
#include "nexa/nn/layer_norm.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/ops/elementwise.hpp"

namespace nexa {

template <class Attn, class FFN, class T = float, class D = cpu>
class PostLNBlock {
 public:
  using AttentionT = typename Attn::template rebind<T, D>;
  using FFNT = typename FFN::template rebind<T, D>;
  using Norm = LayerNorm<T, D>;

  struct Config {
    index_t d_model = 0;
    index_t heads = 0;
    index_t head_dim = 0;            // 0 selects d_model / heads
    double dropout = 0.0;            // on each sublayer's output (BERT: hidden_dropout_prob)
    double attention_dropout = 0.0;  // on the attention probabilities
    double norm_eps = 1e-12;         // BERT: layer_norm_eps
    bool causal = false;
    double init_std = 0.02;          // BERT's initializer_range, for the attention projections
    typename FFNT::Config ffn = {};  // the FFN's (or MoELayer's) own config; its d_model must match
  };
  struct Cache {
    typename AttentionT::Cache attention;
    typename Linear<T, D>::Cache output;
    typename Dropout<T, D>::Cache attention_dropout;
    typename Norm::Cache attention_norm;
    typename FFNT::Cache ffn;
    typename Dropout<T, D>::Cache ffn_dropout;
    typename Norm::Cache ffn_norm;
    [[nodiscard]] double aux_loss() const { return aux_loss_of(ffn); }
  };
  template <class T2, class D2>
  using rebind = PostLNBlock<Attn, FFN, T2, D2>;

  AttentionT attention;  // attention.self
  Linear<T, D> output;   // attention.output.dense
  Norm attention_norm;   // attention.output.LayerNorm
  FFNT ffn;              // mlp
  Norm ffn_norm;         // output.LayerNorm
  Dropout<T, D> attention_dropout, ffn_dropout;

  PostLNBlock() = default;
  PostLNBlock(const Config& config, Rng& rng) : config_(config) {
    require(config.d_model > 0 && config.heads > 0, "PostLNBlock", "d_model and heads must be positive, got ",
            config.d_model, " and ", config.heads);
    require(config.ffn.d_model == config.d_model, "PostLNBlock", "ffn.d_model expected ", config.d_model, ", got ",
            config.ffn.d_model);
    attention = AttentionT({.hidden = config.d_model,
                            .heads = config.heads,
                            .head_dim = config.head_dim,
                            .dropout = config.attention_dropout,
                            .causal = config.causal,
                            .bias = true,
                            .scale = true,
                            .init_std = config.init_std},
                           rng);
    output = Linear<T, D>(
        {.in_features = attention.inner(), .out_features = config.d_model, .bias = true, .init_std = config.init_std},
        rng);
    attention_norm = Norm({config.d_model, config.norm_eps}, rng);
    ffn = FFNT(config.ffn, rng);
    ffn_norm = Norm({config.d_model, config.norm_eps}, rng);
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
    require(x.rank() == 3 && x.dim(2) == config_.d_model, "PostLNBlock", "input shape expected [batch, seq, ",
            config_.d_model, "], got ", x.shape());
    Tensor<T, D> o = output.forward(
        attention.forward(std::move(x), context.mask, cache.attention, context.position_bias, context.global),
        cache.output);
    attention_dropout.forward_inplace(o.data(), o.numel(), cache.attention_dropout);
    ops::axpy(T(1), cache.attention.input.cview(), o.view());
    Tensor<T, D> h = attention_norm.forward(std::move(o), cache.attention_norm);

    Tensor<T, D> f = ffn.forward(h.cview(), cache.ffn);
    ffn_dropout.forward_inplace(f.data(), f.numel(), cache.ffn_dropout);
    ops::axpy(T(1), h.cview(), f.view());
    return ffn_norm.forward(std::move(f), cache.ffn_norm);
  }

  // dy: [B, S, d_model]. Accumulates parameter gradients (and the FFN's auxiliary-loss gradients);
  // when d_position_bias [heads, 2S - 1] is given, accumulates the position bias's gradient.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> d_position_bias = {}) {
    require(!cache.ffn_norm.input.empty(), "PostLNBlock", "backward needs a forward's cache");
    require_shape(dy, cache.ffn_norm.input.shape(), "PostLNBlock", "dy");
    Tensor<T, D> dr = ffn_norm.backward(dy, cache.ffn_norm);  // d(h + f)
    Tensor<T, D> df = clone(dr.cview());
    ffn_dropout.backward_inplace(df.data(), df.numel(), cache.ffn_dropout);
    ops::axpy(T(1), ffn.backward(df.cview(), cache.ffn).cview(), dr.view());      // now dh
    Tensor<T, D> dx = attention_norm.backward(dr.cview(), cache.attention_norm);  // d(x + o)
    Tensor<T, D> d_out = clone(dx.cview());
    attention_dropout.backward_inplace(d_out.data(), d_out.numel(), cache.attention_dropout);
    Tensor<T, D> da = output.backward(d_out.cview(), cache.output);
    Tensor<T, D> d_attention = d_position_bias.empty()
                                   ? attention.backward(da.cview(), cache.attention)
                                   : attention.backward(da.cview(), cache.attention, d_position_bias);
    ops::axpy(T(1), d_attention.cview(), dx.view());
    return dx;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    attention.visit_params(f, join_name(prefix, "attention.self"));
    output.visit_params(f, join_name(prefix, "attention.output.dense"));
    attention_norm.visit_params(f, join_name(prefix, "attention.output.LayerNorm"));
    ffn.visit_params(f, join_name(prefix, "mlp"));
    ffn_norm.visit_params(f, join_name(prefix, "output.LayerNorm"));
  }

 private:
  Config config_;
};

}  // namespace nexa
