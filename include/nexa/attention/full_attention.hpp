#pragma once
// FullAttention: every query sees every non-padding key (and only keys j <= i when causal), as
// BERT's BertSelfAttention and T5's attention compute it. The [S, S] probabilities of every
// (batch, head) are kept for the backward: memory O(B * heads * S^2).
//
// Masking follows Hugging Face's extended attention mask: lowest() (finfo.min) is added once to
// the score of a key that is padding or, when causal, in the future, so it stays finite: a query
// that sees no key at all (an all-padding sequence) gets uniform weights over all keys, never
// NaN. Its scores are lowest() + s, which rounds to lowest() exactly, so the backward passes no
// gradient through a masked score (the same as the central difference of the computed function).
//
// Parameters, named as Hugging Face BERT names them under "...attention.self": query.weight,
// query.bias, key.*, value.*. Work is split per (batch, head) with one ops::gemm per product, so
// results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "nexa/attention/attention.hpp"
#include "nexa/attention/flash_attention.hpp"
#include "nexa/attention/score_rows.hpp"
#include "nexa/core/parallel.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/gemm.hpp"

namespace nexa {

namespace attention_detail {
template <class T, class D>
struct FullSaved {
  Tensor<T, D> probs;  // [B, heads, S, S], before dropout
};
}  // namespace attention_detail

// On a device the same function is computed by the FlashAttention-2 kernel: softmax over the
// visible keys (a masked key's weight is exactly 0 in both), uniform weights for a query that sees
// no key, the same relative bias and its gradient; O(S) memory instead of the [S, S]
// probabilities. Attention dropout is not applied there (FlashScores raises when it would be).
struct FullScores {
  static constexpr const char* name = "FullAttention";
  // A causal query sees every earlier non-padding key, so KV-cache decoding computes the same.
  static constexpr bool decodes_incrementally = true;
  static constexpr bool runs_on_device = true;
  using DeviceCore = FlashScores<>;

  template <class T, class D>
  using Saved = std::conditional_t<std::same_as<D, cpu>, attention_detail::FullSaved<T, D>,
                                   typename DeviceCore::template Saved<T, D>>;

  template <class T, class D>
  static void forward(const AttentionProblem<T, D>& p, Saved<T, D>& saved, T* context) {
    if constexpr (!std::same_as<D, cpu>) {
      DeviceCore::device_forward(DeviceCore::device_args(p, name), saved, context);
    } else {
      host_forward(p, saved, context);
    }
  }

  template <class T, class D>
  static void backward(const AttentionProblem<T, D>& p, const Saved<T, D>& saved, const T* dcontext,
                       AttentionGrads<T> g) {
    if constexpr (!std::same_as<D, cpu>) {
      DeviceCore::check_saved(p, saved, name);
      DeviceCore::device_backward(DeviceCore::device_args(p, name), saved, dcontext, g);
    } else {
      host_backward(p, saved, dcontext, g);
    }
  }

 private:
  template <class T, class D>
  static void host_forward(const AttentionProblem<T, D>& p, Saved<T, D>& saved, T* context) {
    const index_t B = p.batch, H = p.heads, S = p.seq, dh = p.head_dim;
    saved.probs = Tensor<T, D>::uninitialized({B, H, S, S});
    T* probs = saved.probs.data();
    NEXA_PARALLEL_FOR_IF(B * H > 1 && B * H * S * S * dh > parallel_grain)
    for (index_t bh = 0; bh < B * H; ++bh) {
      const index_t b = bh / H, h = bh % H;
      T* pb = probs + bh * S * S;
      ops::gemm(TensorView<const T, D>(p.q + bh * S * dh, {S, dh}), Trans::N,
                TensorView<const T, D>(p.k + bh * S * dh, {S, dh}), Trans::T, TensorView<T, D>(pb, {S, S}), p.scale,
                T(0));
      for (index_t i = 0; i < S; ++i) {
        T* row = pb + i * S;
        if (p.relative_bias)
          for (index_t j = 0; j < S; ++j) row[j] += p.bias(h, i, j);
        // Keys 0..i (all keys unless causal) masked by padding, keys i+1.. by causality.
        const index_t visible_end = p.causal ? i + 1 : S;
        if (p.padding)
          for (index_t j = 0; j < visible_end; ++j)
            row[j] += p.is_padding(b, j) ? std::numeric_limits<T>::lowest() : T(0);
        for (index_t j = visible_end; j < S; ++j) row[j] += std::numeric_limits<T>::lowest();
        attention_detail::softmax_row(row, S);
      }
      // context = Dropout(P) V
      const T* pd = pb;
      std::vector<T> dropped;
      if (p.dropout_applied()) {
        dropped.assign(pb, pb + S * S);
        for (index_t i = 0; i < S; ++i) p.apply_dropout(dropped.data() + i * S, S, b, h, i, 0);
        pd = dropped.data();
      }
      ops::gemm(TensorView<const T, D>(pd, {S, S}), Trans::N, TensorView<const T, D>(p.v + bh * S * dh, {S, dh}),
                Trans::N, TensorView<T, D>(context + bh * S * dh, {S, dh}));
    }
  }

  template <class T, class D>
  static void host_backward(const AttentionProblem<T, D>& p, const Saved<T, D>& saved, const T* dcontext,
                            AttentionGrads<T> g) {
    using A = acc_t<T>;
    const index_t B = p.batch, H = p.heads, S = p.seq, dh = p.head_dim, R = 2 * S - 1;
    std::vector<T> bias_partial(g.d_relative_bias ? static_cast<std::size_t>(B * H * R) : 0, T(0));
    NEXA_PARALLEL_FOR_IF(B * H > 1 && B * H * S * S * dh > parallel_grain)
    for (index_t bh = 0; bh < B * H; ++bh) {
      const index_t b = bh / H, h = bh % H;
      const T* pb = saved.probs.data() + bh * S * S;
      const TensorView<const T, D> gb(dcontext + bh * S * dh, {S, dh});
      // dV = Dropout(P)^T dctx and d(Dropout(P)) = dctx V^T, then through the dropout: dP.
      std::vector<T> ds(static_cast<std::size_t>(S * S));
      const T* pd = pb;
      if (p.dropout_applied()) {
        ds.assign(pb, pb + S * S);
        for (index_t i = 0; i < S; ++i) p.apply_dropout(ds.data() + i * S, S, b, h, i, 0);
        pd = ds.data();
      }
      ops::gemm(TensorView<const T, D>(pd, {S, S}), Trans::T, gb, Trans::N,
                TensorView<T, D>(g.dv + bh * S * dh, {S, dh}));
      ops::gemm(gb, Trans::N, TensorView<const T, D>(p.v + bh * S * dh, {S, dh}), Trans::T,
                TensorView<T, D>(ds.data(), {S, S}));
      // Softmax backward in place: ds = P * (dP - <P, dP>), zero where masked.
      for (index_t i = 0; i < S; ++i) {
        T* row = ds.data() + i * S;
        p.apply_dropout(row, S, b, h, i, 0);
        const T* prow = pb + i * S;
        A dot = 0;
        for (index_t j = 0; j < S; ++j) dot += A(prow[j]) * A(row[j]);
        for (index_t j = 0; j < S; ++j) {
          const bool masked = p.is_padding(b, j) || (p.causal && j > i);
          row[j] = masked ? T(0) : static_cast<T>(A(prow[j]) * (A(row[j]) - dot));
        }
        if (g.d_relative_bias) {
          T* db = bias_partial.data() + bh * R + (S - 1 - i);  // offset j - i = -i at j = 0
          for (index_t j = 0; j < S; ++j) db[j] += row[j];
        }
      }
      const TensorView<const T, D> dsv(ds.data(), {S, S});
      ops::gemm(dsv, Trans::N, TensorView<const T, D>(p.k + bh * S * dh, {S, dh}), Trans::N,
                TensorView<T, D>(g.dq + bh * S * dh, {S, dh}), p.scale, T(0));
      ops::gemm(dsv, Trans::T, TensorView<const T, D>(p.q + bh * S * dh, {S, dh}), Trans::N,
                TensorView<T, D>(g.dk + bh * S * dh, {S, dh}), p.scale, T(0));
    }
    if (g.d_relative_bias) attention_detail::reduce_bias_grad(bias_partial, B, H, S, g.d_relative_bias);
  }
};

template <class T = float, class D = cpu>
using FullAttention = Attention<FullScores, T, D>;

}  // namespace nexa
