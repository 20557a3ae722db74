#pragma once
// BertEmbeddings: x = LayerNorm(word[ids] + position[s] + token_type[types]), then dropout, as
// Hugging Face's BertEmbeddings with absolute positions 0..S-1. The word lookup can be replaced
// by given input embeddings (forward_embeds, HF's inputs_embeds); backward always returns the
// gradient with respect to those input embeddings and accumulates the three tables' gradients.
// As nn.Embedding(padding_idx = pad_token_id) does, the pad row of the word table gets no gradient.
// Parameter names: word_embeddings.weight, position_embeddings.weight,
// token_type_embeddings.weight, LayerNorm.weight, LayerNorm.bias.
// On a device the sums run through LayoutKernel/ElementwiseKernel in the CPU's order; ids and
// token types are range-checked on a host copy (as Embedding does).
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "nexa/core/parallel.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/models/bert_config.hpp"
#include "nexa/nn/dropout.hpp"
#include "nexa/nn/embedding.hpp"
#include "nexa/nn/layer_norm.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/layout.hpp"

namespace nexa {

template <class T = float, class D = cpu>
class BertEmbeddings {
 public:
  using Config = BertConfig;
  struct Cache {
    Tensor<std::int32_t, D> ids;    // [B, S]; empty when the input embeddings were given
    Tensor<std::int32_t, D> types;  // [B, S]
    typename LayerNorm<T, D>::Cache norm;
    typename Dropout<T, D>::Cache dropout;
  };
  template <class T2, class D2>
  using rebind = BertEmbeddings<T2, D2>;

  Embedding<T, D> word_embeddings, position_embeddings, token_type_embeddings;
  LayerNorm<T, D> layer_norm;
  Dropout<T, D> dropout;

  BertEmbeddings() = default;
  BertEmbeddings(const Config& config, Rng& rng) : config_(config) {
    config.validate();
    word_embeddings = Embedding<T, D>({config.vocab_size, config.hidden, config.init_std}, rng);
    position_embeddings = Embedding<T, D>({config.max_position, config.hidden, config.init_std}, rng);
    token_type_embeddings = Embedding<T, D>({config.type_vocab, config.hidden, config.init_std}, rng);
    if (config.pad_token_id >= 0 && config.pad_token_id < config.vocab_size) {
      T* pad_row = word_embeddings.weight.value.data() + config.pad_token_id * config.hidden;
      if constexpr (std::same_as<D, cpu>)
        std::fill_n(pad_row, config.hidden, T(0));
      else
        ElementwiseKernel<D>::fill(config.hidden, T(0), pad_row);
    }
    layer_norm = LayerNorm<T, D>({config.hidden, config.layer_norm_eps}, rng);
    dropout = Dropout<T, D>({config.dropout}, rng);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  void set_training(bool on) { dropout.set_training(on); }
  void rewind(std::uint64_t next = 0) { dropout.rewind(next); }

  // ids, token_types: [B, S] int32 (token_types empty: all 0) -> [B, S, hidden].
  [[nodiscard]] Tensor<T, D> forward(TensorView<const std::int32_t, D> ids, TensorView<const std::int32_t, D> types,
                                     Cache& cache) {
    require(ids.rank() == 2 && ids.dim(1) > 0, "BertEmbeddings", "input ids shape expected [batch, seq], got ",
            ids.shape());
    const std::vector<std::int32_t> host = on_host(ids);
    const std::int32_t* values = std::same_as<D, cpu> ? ids.data() : host.data();
    for (index_t t = 0; t < ids.numel(); ++t) {
      const index_t id = values[t];
      require(0 <= id && id < config_.vocab_size, "BertEmbeddings", "input id ", id, " at [", t / ids.dim(1), ", ",
              t % ids.dim(1), "] is out of range for vocab_size ", config_.vocab_size);
    }
    Tensor<T, D> x = word_embeddings.apply(ids);
    cache.ids = clone(ids);
    return finish(std::move(x), types, cache);
  }

  // inputs_embeds: [B, S, hidden] used in place of the word lookup.
  [[nodiscard]] Tensor<T, D> forward_embeds(TensorView<const T, D> inputs_embeds,
                                            TensorView<const std::int32_t, D> types, Cache& cache) {
    require(inputs_embeds.rank() == 3 && inputs_embeds.dim(1) > 0 && inputs_embeds.dim(2) == config_.hidden,
            "BertEmbeddings", "input embeddings shape expected [batch, seq, ", config_.hidden, "], got ",
            inputs_embeds.shape());
    cache.ids = Tensor<std::int32_t, D>();
    return finish(clone(inputs_embeds), types, cache);
  }

  // dy: [B, S, hidden]. Accumulates the tables' and LayerNorm's gradients; returns d(input embeddings).
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    require(!cache.types.empty(), "BertEmbeddings", "backward needs a forward's cache");
    const index_t B = cache.types.dim(0), S = cache.types.dim(1), Hd = config_.hidden;
    require_shape(dy, Shape{B, S, Hd}, "BertEmbeddings", "dy");
    Tensor<T, D> g = clone(dy);
    dropout.backward_inplace(g.data(), g.numel(), cache.dropout);
    Tensor<T, D> dx = layer_norm.backward(g.cview(), cache.norm);
    g = Tensor<T, D>();
    T* out = dx.data();
    if (position_embeddings.weight.trainable) {
      T* pg = position_embeddings.weight.grad.data();
      if constexpr (std::same_as<D, cpu>) {
        NEXA_PARALLEL_FOR_IF(dx.numel() > parallel_grain)
        for (index_t s = 0; s < S; ++s)
          for (index_t b = 0; b < B; ++b)
            for (index_t c = 0; c < Hd; ++c) pg[s * Hd + c] += out[(b * S + s) * Hd + c];
      } else {
        ElementwiseKernel<D>::sum_rows(B, S * Hd, out, pg);  // batch order, as above
      }
    }
    if (token_type_embeddings.weight.trainable) {
      typename Embedding<T, D>::Cache tc{cache.types};
      token_type_embeddings.backward(dx.cview(), tc);
      cache.types = std::move(tc.ids);
    }
    if constexpr (!std::same_as<D, cpu>) {
      if (!cache.ids.empty() && word_embeddings.weight.trainable) {
        // The word table's gradient without the pad tokens' rows: their segment is left out.
        const std::vector<std::int32_t> ids = on_host(cache.ids.cview());
        Segments seg = segments_by_key(ids.data(), B * S, config_.vocab_size);
        for (std::size_t u = 0; u < seg.target.size(); ++u) {
          if (seg.target[u] != config_.pad_token_id) continue;
          seg.order.erase(seg.order.begin() + seg.start[u], seg.order.begin() + seg.start[u + 1]);
          const index_t removed = seg.start[u + 1] - seg.start[u];
          seg.target.erase(seg.target.begin() + static_cast<std::ptrdiff_t>(u));
          seg.start.erase(seg.start.begin() + static_cast<std::ptrdiff_t>(u));
          for (std::size_t v = u; v < seg.start.size(); ++v) seg.start[v] -= removed;
          break;
        }
        if (!seg.target.empty())
          ops::scatter_add_segments<T, D>(seg, Hd, out, Strides{Hd, 1}, word_embeddings.weight.grad.data(),
                                          Strides{Hd, 1});
      }
    } else if (!cache.ids.empty() && word_embeddings.weight.trainable) {
      const index_t pad = config_.pad_token_id;
      const std::int32_t* ids = cache.ids.data();
      bool has_pad = false;
      for (index_t t = 0; t < B * S; ++t) has_pad = has_pad || ids[t] == pad;
      typename Embedding<T, D>::Cache wc{std::move(cache.ids)};
      if (has_pad) {
        Tensor<T, D> dw = clone(dx.cview());
        for (index_t t = 0; t < B * S; ++t)
          if (ids[t] == pad) std::fill_n(dw.data() + t * Hd, Hd, T(0));
        word_embeddings.backward(dw.cview(), wc);
      } else {
        word_embeddings.backward(dx.cview(), wc);
      }
      cache.ids = std::move(wc.ids);
    }
    return dx;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    word_embeddings.visit_params(f, join_name(prefix, "word_embeddings"));
    position_embeddings.visit_params(f, join_name(prefix, "position_embeddings"));
    token_type_embeddings.visit_params(f, join_name(prefix, "token_type_embeddings"));
    layer_norm.visit_params(f, join_name(prefix, "LayerNorm"));
  }

 private:
  Tensor<T, D> finish(Tensor<T, D>&& x, TensorView<const std::int32_t, D> types, Cache& cache) {
    const index_t B = x.dim(0), S = x.dim(1), Hd = config_.hidden;
    require(S <= config_.max_position, "BertEmbeddings", "sequence length ", S, " exceeds max_position ",
            config_.max_position);
    if (types.empty()) {
      cache.types = Tensor<std::int32_t, D>::zeros({B, S});
    } else {
      require_shape(types, Shape{B, S}, "BertEmbeddings", "token type ids");
      const std::vector<std::int32_t> host = on_host(types);
      const std::int32_t* values = std::same_as<D, cpu> ? types.data() : host.data();
      for (index_t t = 0; t < types.numel(); ++t) {
        const index_t id = values[t];
        require(0 <= id && id < config_.type_vocab, "BertEmbeddings", "token type id ", id, " at [", t / S, ", ", t % S,
                "] is out of range for type_vocab ", config_.type_vocab);
      }
      cache.types = clone(types);
    }
    const T* pos = position_embeddings.weight.value.data();
    const T* typ = token_type_embeddings.weight.value.data();
    const std::int32_t* tt = cache.types.data();
    T* out = x.data();
    if constexpr (std::same_as<D, cpu>) {
      NEXA_PARALLEL_FOR_IF(x.numel() > parallel_grain)
      for (index_t t = 0; t < B * S; ++t) {
        const T* p = pos + (t % S) * Hd;
        const T* y = typ + static_cast<index_t>(tt[t]) * Hd;
        for (index_t c = 0; c < Hd; ++c) out[t * Hd + c] = (out[t * Hd + c] + y[c]) + p[c];  // HF's order
      }
    } else {  // the same sums: (x + type row) + position row
      auto y = Tensor<T, D>::uninitialized({B * S, Hd});
      LayoutKernel<D>::gather(B * S, Hd, tt, typ, Strides{Hd, 1}, y.data(), Strides{Hd, 1});
      ElementwiseKernel<D>::axpy(B * S * Hd, T(1), y.data(), out);
      ElementwiseKernel<D>::add_row(B, S * Hd, pos, out);
    }
    Tensor<T, D> h = layer_norm.forward(std::move(x), cache.norm);
    dropout.forward_inplace(h.data(), h.numel(), cache.dropout);
    return h;
  }

  // Device ids copied to the host for the range checks (empty on the CPU, which reads them in place).
  [[nodiscard]] static std::vector<std::int32_t> on_host(TensorView<const std::int32_t, D> ids) {
    std::vector<std::int32_t> host;
    if constexpr (!std::same_as<D, cpu>) {
      host.resize(static_cast<std::size_t>(ids.numel()));
      detail::Transfer<D>::to_host(host.data(), ids.data(), host.size());
    }
    return host;
  }

  Config config_;
};

}  // namespace nexa
