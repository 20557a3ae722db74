#pragma once
// Attention<Scores, T, D>: multi-head self-attention whose core (scores, masking, softmax, the
// weighted sum of values) is a policy, so a block or model swaps full, local-window + global and
// flash-style attention by changing one template argument:
//
//   Q, K, V = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv      x: [B, S, hidden] -> [B, heads, S, head_dim]
//   context = Scores(Q, K, V, masks, relative bias)     -> [B, S, heads * head_dim]
//
// The output projection is not part of it (BERT keeps it in attention.output.dense, T5 in "o").
//
// Every policy computes, for each (batch b, head h, query i), softmax over the keys j it sees of
//   s_ij = scale * q_i . k_j + bias[h, j - i]
// then Dropout on those probabilities and the weighted sum of v_j. What "sees" means is the
// policy's: all non-padding keys (and j <= i when causal) for full and flash attention; the
// Longformer window plus global tokens for local-global attention. The bias is relative, indexed
// by the offset j - i, so it costs O(S) memory for every policy (T5's relative position bias is
// one): `position_bias` is [heads, 2S - 1] with bias[h, j - i] at [h, (j - i) + S - 1].
//
// A policy `Scores` provides
//   static constexpr const char* name;                    // used in error messages
//   template <class T, class D> struct Saved;            // what its backward needs
//   template <class T, class D> static void forward(const AttentionProblem<T, D>&, Saved<T, D>&, T* context);
//   template <class T, class D> static void backward(const AttentionProblem<T, D>&, const Saved<T, D>&,
//                                                    const T* d_context, AttentionGrads<T>);
// with q, k, v, context and their gradients laid out [B, heads, S, head_dim].
//
// Devices: the head split/merge is LayoutKernel<D> and masks stay where the tensors live (checked
// on a host copy), so a policy that sets runs_on_device (FlashScores, whose core is then
// FlashAttentionKernel<D>) runs with D = cuda; the others compute on the host and are CPU-only.
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nexa/attention/kv_cache.hpp"
#include "nexa/backend/cpu/layout.hpp"
#include "nexa/core/parallel.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/nn/dropout.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/layout_fwd.hpp"

namespace nexa {

// A policy that runs with D other than cpu says so (static constexpr bool runs_on_device = true):
// its core then calls device kernels instead of host loops.
template <class Scores>
inline constexpr bool attention_runs_on_device = requires {
  requires Scores::runs_on_device;
};

struct AttentionConfig {
  index_t hidden = 0;     // width of the input x
  index_t heads = 0;      // number of attention heads
  index_t head_dim = 0;   // 0 selects hidden / heads (which must then divide)
  double dropout = 0.0;   // on the attention probabilities (BERT: attention_probs_dropout_prob)
  bool causal = false;    // query i sees keys j <= i only
  bool bias = true;       // Q, K, V projection biases (BERT: yes, T5: no)
  bool scale = true;      // divide the scores by sqrt(head_dim) (BERT: yes, T5: no)
  double init_std = 0.0;  // projection init: 0 = PyTorch's default, else N(0, init_std)
};

// The problem a Scores policy solves: projected heads, masks, bias and dropout, read-only.
template <class T, class D>
struct AttentionProblem {
  index_t batch = 0, heads = 0, seq = 0, head_dim = 0;
  const T* q = nullptr;  // [B, heads, S, head_dim]
  const T* k = nullptr;
  const T* v = nullptr;
  const std::int32_t* padding = nullptr;  // [B, S], 1 = token, 0 = padding; null = no padding
  const std::int32_t* global = nullptr;   // [B, S], 1 = global token; null = none
  const T* relative_bias = nullptr;       // [heads, 2S - 1], null = none
  T scale = T(1);
  bool causal = false;
  const Dropout<T, D>* dropout = nullptr;           // applies the mask by element index
  typename Dropout<T, D>::Cache dropout_call = {};  // the call this forward reserved

  [[nodiscard]] bool is_padding(index_t b, index_t j) const { return padding && padding[b * seq + j] == 0; }
  [[nodiscard]] bool is_global(index_t b, index_t j) const { return global && global[b * seq + j] != 0; }
  [[nodiscard]] T bias(index_t h, index_t i, index_t j) const {
    return relative_bias ? relative_bias[h * (2 * seq - 1) + (j - i) + seq - 1] : T(0);
  }
  // The probabilities of (b, h, i, j0..j0+n) are elements ((b*heads + h)*S + i)*S + j0.. of one
  // virtual [B, heads, S, S] dropout call, whatever the policy: full, local and flash attention
  // drop the same entries for the same seed.
  void apply_dropout(T* p, index_t n, index_t b, index_t h, index_t i, index_t j0) const {
    if (!dropout_call.applied) return;
    const auto first = static_cast<std::uint64_t>(((b * heads + h) * seq + i) * seq + j0);
    dropout->apply_range(p, n, first, dropout_call);
  }
  [[nodiscard]] bool dropout_applied() const { return dropout_call.applied; }
};

// Where a policy's backward writes: dq, dk, dv [B, heads, S, head_dim] (overwritten) and, when
// not null, d(relative bias) [heads, 2S - 1] (accumulated).
template <class T>
struct AttentionGrads {
  T* dq = nullptr;
  T* dk = nullptr;
  T* dv = nullptr;
  T* d_relative_bias = nullptr;
};

template <class Scores, class T = float, class D = cpu>
class Attention {
  static_assert(std::same_as<D, cpu> || attention_runs_on_device<Scores>,
                "Attention: this Scores policy computes its core with host loops (no runs_on_device)");

 public:
  using Config = AttentionConfig;
  using Policy = Scores;
  struct Cache {
    Tensor<T, D> input;              // [B, S, hidden]
    Tensor<std::int32_t, D> mask;    // [B, S], empty when no mask was given
    Tensor<std::int32_t, D> global;  // [B, S], empty when no global tokens were given
    Tensor<T, D> q, k, v;            // [B, heads, S, head_dim]
    typename Scores::template Saved<T, D> saved;
    Tensor<T, D> position_bias;  // [heads, 2S - 1] (O(S): kept, the backward may recompute scores)
    typename Dropout<T, D>::Cache dropout;
  };
  template <class T2, class D2>
  using rebind = Attention<Scores, T2, D2>;

  Linear<T, D> query, key, value;
  Dropout<T, D> dropout;

  Attention() = default;
  Attention(const Config& config, Rng& rng) : config_(config) {
    require(config.hidden > 0 && config.heads > 0, Scores::name, "hidden and heads must be positive, got ",
            config.hidden, " and ", config.heads);
    require(config.head_dim >= 0, Scores::name, "head_dim must be non-negative, got ", config.head_dim);
    if (config_.head_dim == 0) {
      require(config.hidden % config.heads == 0, Scores::name, "hidden (", config.hidden,
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
  template <class F>
  void visit_dropouts(F&& f) {
    f(dropout);
  }

  // x: [B, S, hidden]; mask: [B, S] of 0/1 (empty: no padding); position_bias: [heads, 2S - 1]
  // relative bias or empty; global: [B, S] of 0/1 marking global tokens (local-global attention;
  // the others let every token see every other already and accept it unchanged). Returns the
  // context [B, S, heads * head_dim]. An rvalue x is kept without a copy.
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, TensorView<const std::int32_t, D> mask, Cache& cache,
                                     TensorView<const T, D> position_bias = {},
                                     TensorView<const std::int32_t, D> global = {}) {
    check_input(x);
    return forward(clone(x), mask, cache, position_bias, global);
  }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, TensorView<const std::int32_t, D> mask, Cache& cache,
                                     TensorView<const T, D> position_bias = {},
                                     TensorView<const std::int32_t, D> global = {}) {
    check_input(x.cview());
    const index_t B = x.dim(0), S = x.dim(1);
    check_flags(mask, B, S, "attention mask");
    check_flags(global, B, S, "global mask");
    check_bias(position_bias, S);
    cache.input = std::move(x);
    cache.mask = mask.empty() ? Tensor<std::int32_t, D>() : clone(mask);
    cache.global = global.empty() ? Tensor<std::int32_t, D>() : clone(global);
    cache.position_bias = position_bias.empty() ? Tensor<T, D>() : clone(position_bias);
    const TensorView<const T, D> in = cache.input.cview();
    cache.q = split_heads(query.apply(in).cview(), B, S);
    cache.k = split_heads(key.apply(in).cview(), B, S);
    cache.v = split_heads(value.apply(in).cview(), B, S);
    cache.dropout = dropout.reserve_call();
    cache.saved = {};

    auto context = Tensor<T, D>::uninitialized({B, config_.heads, S, config_.head_dim});
    Scores::forward(problem(cache), cache.saved, context.data());
    return merge_heads(context.cview(), B, S);
  }

  // Forward without keeping anything (inference).
  [[nodiscard]] Tensor<T, D> apply(TensorView<const T, D> x, TensorView<const std::int32_t, D> mask = {},
                                   TensorView<const T, D> position_bias = {},
                                   TensorView<const std::int32_t, D> global = {}) {
    Cache cache;
    return forward(x, mask, cache, position_bias, global);
  }

  // Incremental causal decoding (attention/kv_cache.hpp): x [B, n, hidden] holds the next n
  // positions, whose keys and values are appended to `kv`; they attend to every cached position
  // up to their own. key_mask: [B, L] of 0/1 over all L = kv.length + n positions (0: padding),
  // or empty; position_bias: [heads, 2L - 1] or empty. Returns the context [B, n, heads * head_dim],
  // equal to a causal forward's rows for those positions. No dropout (inference).
  [[nodiscard]] Tensor<T, D> decode(TensorView<const T, D> x, KVCache<T, D>& kv,
                                    TensorView<const std::int32_t, D> key_mask = {},
                                    TensorView<const T, D> position_bias = {}) const {
    static_assert(std::same_as<D, cpu>, "Attention::decode: only the CPU backend implements decoding yet");
    static_assert(
        requires { requires Scores::decodes_incrementally; },
        "Attention::decode: this policy's keys are not every earlier key (local-global attention's "
        "window), which KV-cache decoding computes");
    check_input(x);
    require(config_.causal, Scores::name, "decode needs a causal attention (config.causal)");
    const index_t B = x.dim(0), n = x.dim(1), L = kv.length + n;
    check_flags(key_mask, B, L, "key mask");
    check_bias(position_bias, L);
    const Tensor<T, D> q = split_heads(query.apply(x).cview(), B, n);
    kv.append(split_heads(key.apply(x).cview(), B, n).cview(), split_heads(value.apply(x).cview(), B, n).cview());
    auto context = Tensor<T, D>::uninitialized({B, config_.heads, n, config_.head_dim});
    const T scale = config_.scale ? T(1 / std::sqrt(static_cast<double>(config_.head_dim))) : T(1);
    decode_attention(kv, q.data(), n, key_mask.empty() ? nullptr : key_mask.data(),
                     position_bias.empty() ? nullptr : position_bias.data(), scale, context.data());
    return merge_heads(context.cview(), B, n);
  }

  // dy: [B, S, heads * head_dim]. Accumulates the projections' gradients when trainable; returns dx.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) { return backward_impl(dy, cache, {}); }
  // The same, also accumulating d(position_bias) [heads, 2S - 1] into `d_position_bias`.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> d_position_bias) {
    require(!cache.input.empty(), Scores::name, "backward needs a forward's cache");
    require_shape(d_position_bias, Shape{config_.heads, 2 * cache.input.dim(1) - 1}, Scores::name, "d_position_bias");
    return backward_impl(dy, cache, d_position_bias);
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    query.visit_params(f, join_name(prefix, "query"));
    key.visit_params(f, join_name(prefix, "key"));
    value.visit_params(f, join_name(prefix, "value"));
  }

 private:
  [[nodiscard]] AttentionProblem<T, D> problem(const Cache& cache) const {
    AttentionProblem<T, D> p;
    p.batch = cache.input.dim(0);
    p.heads = config_.heads;
    p.seq = cache.input.dim(1);
    p.head_dim = config_.head_dim;
    p.q = cache.q.data();
    p.k = cache.k.data();
    p.v = cache.v.data();
    p.padding = cache.mask.empty() ? nullptr : cache.mask.data();
    p.global = cache.global.empty() ? nullptr : cache.global.data();
    p.relative_bias = cache.position_bias.empty() ? nullptr : cache.position_bias.data();
    p.scale = config_.scale ? T(1 / std::sqrt(static_cast<double>(config_.head_dim))) : T(1);
    p.causal = config_.causal;
    p.dropout = &dropout;
    p.dropout_call = cache.dropout;
    return p;
  }

  [[nodiscard]] Tensor<T, D> backward_impl(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> d_bias) {
    require(!cache.input.empty() && !cache.q.empty(), Scores::name, "backward needs a forward's cache");
    const index_t B = cache.input.dim(0), S = cache.input.dim(1);
    require_shape(dy, Shape{B, S, inner()}, Scores::name, "dy");
    const Tensor<T, D> dctx = split_heads(dy, B, S);
    const Shape heads_shape{B, config_.heads, S, config_.head_dim};
    auto dq = Tensor<T, D>::uninitialized(heads_shape);
    auto dk = Tensor<T, D>::uninitialized(heads_shape);
    auto dv = Tensor<T, D>::uninitialized(heads_shape);
    Scores::backward(problem(cache), cache.saved, dctx.data(),
                     AttentionGrads<T>{dq.data(), dk.data(), dv.data(), d_bias.empty() ? nullptr : d_bias.data()});

    // Through the projections; each Linear reads x from one shared cache.
    typename Linear<T, D>::Cache lc;
    lc.input = std::move(cache.input);
    Tensor<T, D> dx = query.backward(merge_heads(dq.cview(), B, S).cview(), lc);
    ops::axpy(T(1), key.backward(merge_heads(dk.cview(), B, S).cview(), lc).cview(), dx.view());
    ops::axpy(T(1), value.backward(merge_heads(dv.cview(), B, S).cview(), lc).cview(), dx.view());
    cache.input = std::move(lc.input);
    return dx;
  }

  // [B, S, heads * dh] -> [B, heads, S, dh]
  [[nodiscard]] Tensor<T, D> split_heads(TensorView<const T, D> x, index_t B, index_t S) const {
    auto out = Tensor<T, D>::uninitialized({B, config_.heads, S, config_.head_dim});
    LayoutKernel<D>::split_heads(B, S, config_.heads, config_.head_dim, x.data(), out.data());
    return out;
  }

  // [B, heads, S, dh] -> [B, S, heads * dh]
  [[nodiscard]] Tensor<T, D> merge_heads(TensorView<const T, D> x, index_t B, index_t S) const {
    auto out = Tensor<T, D>::uninitialized({B, S, config_.heads * config_.head_dim});
    LayoutKernel<D>::merge_heads(B, S, config_.heads, config_.head_dim, x.data(), out.data());
    return out;
  }

  void check_input(TensorView<const T, D> x) const {
    require(config_.hidden > 0, Scores::name, "module is not constructed");
    require(x.rank() == 3 && x.dim(2) == config_.hidden && x.dim(1) > 0, Scores::name,
            "input shape expected [batch, seq, ", config_.hidden, "] with seq > 0, got ", x.shape());
  }
  void check_flags(TensorView<const std::int32_t, D> flags, index_t B, index_t S, const char* what) const {
    if (flags.empty()) return;
    require_shape(flags, Shape{B, S}, Scores::name, what);
    // Device flags are checked on a host copy: O(B * S), once per forward.
    std::vector<std::int32_t> host;
    const std::int32_t* values = flags.data();
    if constexpr (!std::same_as<D, cpu>) {
      host.resize(static_cast<std::size_t>(flags.numel()));
      detail::Transfer<D>::to_host(host.data(), flags.data(), host.size());
      values = host.data();
    }
    for (index_t i = 0; i < flags.numel(); ++i)
      require(values[i] == 0 || values[i] == 1, Scores::name, what, " values must be 0 or 1, got ", values[i],
              " at flat index ", i);
  }
  void check_bias(TensorView<const T, D> bias, index_t S) const {
    if (bias.empty()) return;
    require_shape(bias, Shape{config_.heads, 2 * S - 1}, Scores::name, "position bias");
  }

  Config config_;
};

}  // namespace nexa
