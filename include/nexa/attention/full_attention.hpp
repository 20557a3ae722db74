#pragma once
// FullAttention: multi-head scaled dot-product self-attention over every position, as BERT's
// BertSelfAttention computes it (the output projection is not part of it: BERT keeps that in
// attention.output.dense, T5 in its own "o").
//
//   Q, K, V = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv        x: [B, S, hidden] -> [B, S, heads * head_dim]
//   scores[b, h] = Q_bh K_bh^T / sqrt(head_dim) + position_bias[h] + mask_add     [S, S] per (b, h)
//   P = softmax(scores) over keys;  context_bh = Dropout(P) V_bh                   -> [B, S, heads * head_dim]
//
// mask_add is Hugging Face's extended attention mask: 0 where key j is visible to query i and
// lowest() (finfo.min) where it is not: attention_mask[b, j] == 0 (padding) or, when causal,
// j > i. Added once however many reasons mask a key, so it stays finite: a query that sees no key
// at all (an all-padding sequence) gets uniform weights, never NaN. Its scores are lowest() + s,
// which rounds to lowest() exactly, so the backward passes no gradient through a masked score
// (the same as the central difference of the computed function).
//
// The optional additive position bias [heads, S, S] (T5's relative attention bias) is shared by
// the batch; backward(dy, cache, d_position_bias) accumulates its gradient. Config::scale = false
// and bias = false give T5's unscaled attention without projection biases.
//
// Parameters, named as Hugging Face BERT names them under "...attention.self": query.weight,
// query.bias, key.*, value.*. Work is split per (batch, head) with one ops::gemm per product, so
// results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "nexa/core/parallel.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/nn/dropout.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/gemm.hpp"

namespace nexa {

template <class T = float, class D = cpu>
class FullAttention {
  static_assert(std::same_as<D, cpu>, "FullAttention: only the CPU backend implements it yet");
  using A = acc_t<T>;

 public:
  struct Config {
    index_t hidden = 0;     // width of the input x
    index_t heads = 0;      // number of attention heads
    index_t head_dim = 0;   // 0 selects hidden / heads (which must then divide)
    double dropout = 0.0;   // on the attention probabilities (BERT: attention_probs_dropout_prob)
    bool causal = false;    // query i sees keys j <= i only
    bool bias = true;       // Q, K, V projection biases (BERT: yes, T5: no)
    bool scale = true;      // divide the scores by sqrt(head_dim) (BERT: yes, T5: no)
    double init_std = 0.0;  // projection init: 0 = PyTorch's default, else N(0, init_std)
  };
  struct Cache {
    Tensor<T, D> input;            // [B, S, hidden]
    Tensor<std::int32_t, D> mask;  // [B, S], empty when no mask was given
    Tensor<T, D> q, k, v;          // [B, heads, S, head_dim]
    Tensor<T, D> probs;            // [B, heads, S, S], before dropout
    typename Dropout<T, D>::Cache dropout;
    bool has_position_bias = false;
  };
  template <class T2, class D2>
  using rebind = FullAttention<T2, D2>;

  Linear<T, D> query, key, value;
  Dropout<T, D> dropout;

  FullAttention() = default;
  FullAttention(const Config& config, Rng& rng) : config_(config) {
    require(config.hidden > 0 && config.heads > 0, "FullAttention", "hidden and heads must be positive, got ",
            config.hidden, " and ", config.heads);
    require(config.head_dim >= 0, "FullAttention", "head_dim must be non-negative, got ", config.head_dim);
    if (config_.head_dim == 0) {
      require(config.hidden % config.heads == 0, "FullAttention", "hidden (", config.hidden,
              ") must be a multiple of heads (", config.heads, ") when head_dim is 0");
      config_.head_dim = config.hidden / config.heads;
    }
    const typename Linear<T, D>::Config proj{
        .in_features = config_.hidden, .out_features = inner(), .bias = config_.bias, .init_std = config_.init_std};
    query = Linear<T, D>(proj, rng);
    key = Linear<T, D>(proj, rng);
    value = Linear<T, D>(proj, rng);
    dropout = Dropout<T, D>({.p = config_.dropout}, rng);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  // heads * head_dim: the width of the output.
  [[nodiscard]] index_t inner() const { return config_.heads * config_.head_dim; }

  void set_training(bool on) { dropout.set_training(on); }
  void rewind(std::uint64_t next = 0) { dropout.rewind(next); }

  // x: [B, S, hidden]; mask: [B, S] of 0/1 (empty: every key visible); position_bias: [heads, S, S]
  // or empty. Returns the context [B, S, heads * head_dim]. An rvalue x is kept without a copy.
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, TensorView<const std::int32_t, D> mask, Cache& cache,
                                     TensorView<const T, D> position_bias = {}) {
    check_input(x);
    return forward(clone(x), mask, cache, position_bias);
  }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, TensorView<const std::int32_t, D> mask, Cache& cache,
                                     TensorView<const T, D> position_bias = {}) {
    check_input(x.cview());
    const index_t B = x.dim(0), S = x.dim(1), H = config_.heads, dh = config_.head_dim;
    check_mask(mask, B, S);
    check_bias(position_bias, S);
    cache.input = std::move(x);
    cache.mask = mask.empty() ? Tensor<std::int32_t, D>() : clone(mask);
    cache.has_position_bias = !position_bias.empty();

    const TensorView<const T, D> in = cache.input.cview();
    cache.q = split_heads(query.apply(in).cview(), B, S);
    cache.k = split_heads(key.apply(in).cview(), B, S);
    cache.v = split_heads(value.apply(in).cview(), B, S);
    cache.probs = Tensor<T, D>::uninitialized({B, H, S, S});

    const T alpha = config_.scale ? T(1 / std::sqrt(static_cast<double>(dh))) : T(1);
    const std::int32_t* m = mask.empty() ? nullptr : mask.data();
    const T* pb = position_bias.empty() ? nullptr : position_bias.data();
    const bool causal = config_.causal;
    const T* q = cache.q.data();
    const T* k = cache.k.data();
    T* probs = cache.probs.data();
    NEXA_PARALLEL_FOR_IF(B * H > 1 && B * H * S * S * dh > parallel_grain)
    for (index_t bh = 0; bh < B * H; ++bh) {
      const index_t b = bh / H, h = bh % H;
      T* p = probs + bh * S * S;
      ops::gemm(TensorView<const T, D>(q + bh * S * dh, {S, dh}), Trans::N,
                TensorView<const T, D>(k + bh * S * dh, {S, dh}), Trans::T, TensorView<T, D>(p, {S, S}), alpha, T(0));
      const std::int32_t* mb = m ? m + b * S : nullptr;
      for (index_t i = 0; i < S; ++i) {
        T* row = p + i * S;
        if (pb)
          for (index_t j = 0; j < S; ++j) row[j] += pb[(h * S + i) * S + j];
        // Keys 0..i (all keys unless causal) masked by padding, keys i+1.. by causality.
        const index_t visible_end = causal ? i + 1 : S;
        if (mb)
          for (index_t j = 0; j < visible_end; ++j) row[j] += mb[j] ? T(0) : std::numeric_limits<T>::lowest();
        for (index_t j = visible_end; j < S; ++j) row[j] += std::numeric_limits<T>::lowest();
        softmax_row(row, S);
      }
    }

    // context = Dropout(P) V per (b, h); the dropout mask spans all of [B, heads, S, S].
    Tensor<T, D> dropped;
    const T* pd = probs;
    cache.dropout = {};
    if (dropout.active()) {
      dropped = clone(cache.probs.cview());
      dropout.forward_inplace(dropped.data(), dropped.numel(), cache.dropout);
      pd = dropped.data();
    }
    auto context = Tensor<T, D>::uninitialized({B, H, S, dh});
    const T* v = cache.v.data();
    T* c = context.data();
    NEXA_PARALLEL_FOR_IF(B * H > 1 && B * H * S * S * dh > parallel_grain)
    for (index_t bh = 0; bh < B * H; ++bh) {
      ops::gemm(TensorView<const T, D>(pd + bh * S * S, {S, S}), Trans::N,
                TensorView<const T, D>(v + bh * S * dh, {S, dh}), Trans::N, TensorView<T, D>(c + bh * S * dh, {S, dh}));
    }
    return merge_heads(context.cview(), B, S);
  }

  // Forward without keeping anything (inference).
  [[nodiscard]] Tensor<T, D> apply(TensorView<const T, D> x, TensorView<const std::int32_t, D> mask = {},
                                   TensorView<const T, D> position_bias = {}) {
    Cache cache;
    return forward(x, mask, cache, position_bias);
  }

  // dy: [B, S, heads * head_dim]. Accumulates the projections' gradients when trainable; returns dx.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) { return backward_impl(dy, cache, {}); }
  // The same, also accumulating d(position_bias) [heads, S, S] into `d_position_bias`.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> d_position_bias) {
    require(!cache.input.empty(), "FullAttention", "backward needs a forward's cache");
    const index_t S = cache.input.dim(1);
    require_shape(d_position_bias, Shape{config_.heads, S, S}, "FullAttention", "d_position_bias");
    return backward_impl(dy, cache, d_position_bias);
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    query.visit_params(f, join_name(prefix, "query"));
    key.visit_params(f, join_name(prefix, "key"));
    value.visit_params(f, join_name(prefix, "value"));
  }

 private:
  static bool is_masked(const std::int32_t* m, bool causal, index_t b, index_t S, index_t i, index_t j) {
    return (m && m[b * S + j] == 0) || (causal && j > i);
  }

  // In-place softmax of one row, computed in A. For float and double the exponentials are
  // Eigen's vectorised ones; shifted scores below log(min normal) (masked keys among them) give
  // exactly 0, as std::exp would up to a subnormal.
  static void softmax_row(T* row, index_t n) {
    if constexpr (std::same_as<T, A>) {
      using Array = Eigen::Array<A, Eigen::Dynamic, 1>;
      Eigen::Map<Array> r(row, n);
      static const A cutoff = std::log(std::numeric_limits<A>::min());
      r -= r.maxCoeff();
      r = (r < cutoff).select(A(0), r.exp());
      r *= A(1) / r.sum();
      return;
    }
    A mx = A(row[0]);
    for (index_t j = 1; j < n; ++j) mx = std::max(mx, A(row[j]));
    A sum = 0;
    for (index_t j = 0; j < n; ++j) {
      const A e = std::exp(A(row[j]) - mx);
      row[j] = static_cast<T>(e);
      sum += e;
    }
    const A inv = A(1) / sum;
    for (index_t j = 0; j < n; ++j) row[j] = static_cast<T>(A(row[j]) * inv);
  }

  // [B, S, heads * dh] -> [B, heads, S, dh]
  [[nodiscard]] Tensor<T, D> split_heads(TensorView<const T, D> x, index_t B, index_t S) const {
    const index_t H = config_.heads, dh = config_.head_dim;
    auto out = Tensor<T, D>::uninitialized({B, H, S, dh});
    const T* src = x.data();
    T* dst = out.data();
    NEXA_PARALLEL_FOR_IF(x.numel() > parallel_grain)
    for (index_t bs = 0; bs < B * S; ++bs) {
      const index_t b = bs / S, s = bs % S;
      for (index_t h = 0; h < H; ++h) std::copy_n(src + bs * H * dh + h * dh, dh, dst + ((b * H + h) * S + s) * dh);
    }
    return out;
  }

  // [B, heads, S, dh] -> [B, S, heads * dh]
  [[nodiscard]] Tensor<T, D> merge_heads(TensorView<const T, D> x, index_t B, index_t S) const {
    const index_t H = config_.heads, dh = config_.head_dim;
    auto out = Tensor<T, D>::uninitialized({B, S, H * dh});
    const T* src = x.data();
    T* dst = out.data();
    NEXA_PARALLEL_FOR_IF(x.numel() > parallel_grain)
    for (index_t bs = 0; bs < B * S; ++bs) {
      const index_t b = bs / S, s = bs % S;
      for (index_t h = 0; h < H; ++h) std::copy_n(src + ((b * H + h) * S + s) * dh, dh, dst + bs * H * dh + h * dh);
    }
    return out;
  }

  [[nodiscard]] Tensor<T, D> backward_impl(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> d_bias) {
    require(!cache.input.empty() && !cache.probs.empty(), "FullAttention", "backward needs a forward's cache");
    const index_t B = cache.input.dim(0), S = cache.input.dim(1), H = config_.heads, dh = config_.head_dim;
    require_shape(dy, Shape{B, S, inner()}, "FullAttention", "dy");
    const T alpha = config_.scale ? T(1 / std::sqrt(static_cast<double>(dh))) : T(1);
    const Tensor<T, D> dctx = split_heads(dy, B, S);

    // Dropout(P), as the forward used it.
    Tensor<T, D> dropped;
    const T* pd = cache.probs.data();
    if (cache.dropout.applied) {
      dropped = clone(cache.probs.cview());
      dropout.backward_inplace(dropped.data(), dropped.numel(), cache.dropout);
      pd = dropped.data();
    }
    // dV = Dropout(P)^T dctx and d(Dropout(P)) = dctx V^T per (b, h).
    auto dv = Tensor<T, D>::uninitialized({B, H, S, dh});
    auto ds = Tensor<T, D>::uninitialized({B, H, S, S});
    const T* g = dctx.data();
    const T* v = cache.v.data();
    NEXA_PARALLEL_FOR_IF(B * H > 1 && B * H * S * S * dh > parallel_grain)
    for (index_t bh = 0; bh < B * H; ++bh) {
      const TensorView<const T, D> gb(g + bh * S * dh, {S, dh});
      ops::gemm(TensorView<const T, D>(pd + bh * S * S, {S, S}), Trans::T, gb, Trans::N,
                TensorView<T, D>(dv.data() + bh * S * dh, {S, dh}));
      ops::gemm(gb, Trans::N, TensorView<const T, D>(v + bh * S * dh, {S, dh}), Trans::T,
                TensorView<T, D>(ds.data() + bh * S * S, {S, S}));
    }
    dropped = Tensor<T, D>();
    dropout.backward_inplace(ds.data(), ds.numel(), cache.dropout);  // now dP

    // Softmax backward in place: ds = P * (dP - <P, dP>), zero where masked; then dQ, dK.
    auto dq = Tensor<T, D>::uninitialized({B, H, S, dh});
    auto dk = Tensor<T, D>::uninitialized({B, H, S, dh});
    const std::int32_t* m = cache.mask.empty() ? nullptr : cache.mask.data();
    const bool causal = config_.causal;
    const T* p = cache.probs.data();
    const T* q = cache.q.data();
    const T* k = cache.k.data();
    NEXA_PARALLEL_FOR_IF(B * H > 1 && B * H * S * S * dh > parallel_grain)
    for (index_t bh = 0; bh < B * H; ++bh) {
      const index_t b = bh / H;
      T* dsb = ds.data() + bh * S * S;
      const T* pb = p + bh * S * S;
      for (index_t i = 0; i < S; ++i) {
        T* row = dsb + i * S;
        const T* prow = pb + i * S;
        A dot = 0;
        for (index_t j = 0; j < S; ++j) dot += A(prow[j]) * A(row[j]);
        for (index_t j = 0; j < S; ++j)
          row[j] = is_masked(m, causal, b, S, i, j) ? T(0) : static_cast<T>(A(prow[j]) * (A(row[j]) - dot));
      }
      const TensorView<const T, D> dsv(dsb, {S, S});
      ops::gemm(dsv, Trans::N, TensorView<const T, D>(k + bh * S * dh, {S, dh}), Trans::N,
                TensorView<T, D>(dq.data() + bh * S * dh, {S, dh}), alpha, T(0));
      ops::gemm(dsv, Trans::T, TensorView<const T, D>(q + bh * S * dh, {S, dh}), Trans::N,
                TensorView<T, D>(dk.data() + bh * S * dh, {S, dh}), alpha, T(0));
    }
    if (!d_bias.empty()) {
      // d(bias)[h] += sum_b ds[b, h], summed in b order: one thread per head.
      T* out = d_bias.data();
      NEXA_PARALLEL_FOR_IF(B * H * S * S > parallel_grain && H > 1)
      for (index_t h = 0; h < H; ++h)
        for (index_t b = 0; b < B; ++b) {
          const T* src = ds.data() + (b * H + h) * S * S;
          for (index_t e = 0; e < S * S; ++e) out[h * S * S + e] += src[e];
        }
    }
    ds = Tensor<T, D>();

    // Through the projections; each Linear reads x from one shared cache.
    typename Linear<T, D>::Cache lc;
    lc.input = std::move(cache.input);
    Tensor<T, D> dx = query.backward(merge_heads(dq.cview(), B, S).cview(), lc);
    ops::axpy(T(1), key.backward(merge_heads(dk.cview(), B, S).cview(), lc).cview(), dx.view());
    ops::axpy(T(1), value.backward(merge_heads(dv.cview(), B, S).cview(), lc).cview(), dx.view());
    cache.input = std::move(lc.input);
    return dx;
  }

  void check_input(TensorView<const T, D> x) const {
    require(config_.hidden > 0, "FullAttention", "module is not constructed");
    require(x.rank() == 3 && x.dim(2) == config_.hidden && x.dim(1) > 0, "FullAttention",
            "input shape expected [batch, seq, ", config_.hidden, "] with seq > 0, got ", x.shape());
  }
  void check_mask(TensorView<const std::int32_t, D> mask, index_t B, index_t S) const {
    if (mask.empty()) return;
    require_shape(mask, Shape{B, S}, "FullAttention", "attention mask");
    for (index_t i = 0; i < mask.numel(); ++i)
      require(mask.data()[i] == 0 || mask.data()[i] == 1, "FullAttention", "attention mask values must be 0 or 1, got ",
              mask.data()[i], " at flat index ", i);
  }
  void check_bias(TensorView<const T, D> bias, index_t S) const {
    if (bias.empty()) return;
    require_shape(bias, Shape{config_.heads, S, S}, "FullAttention", "position bias");
  }

  Config config_;
};

}  // namespace nexa
