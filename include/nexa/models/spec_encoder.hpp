#pragma once
// SpecEncoder<Window>: the Nexa-Spec encoder (seed 004) at any size. Peak tokens (SpecEmbedding)
// go through a stack of pre-LN blocks whose attention is LocalGlobalAttention<Window>: each peak
// sees the peaks within Window / 2 positions on either side (peaks are sorted by m/z, so a
// neighbourhood in m/z) plus the global tokens ([CLS] and [PREC]), and the global tokens see the
// whole spectrum. A relative position bias (T5's buckets of j - i, by default) lets a token tell
// its nearest peaks from the rest of its window. The hidden states of the masked tokens go to MaskedPeakHead; with
// tied_mz (the default) its m/z classes are the embedding's own m/z projection of each bin's centre, (k + 1/2) *
// mz_bin_width, so predicting an m/z bin reuses what the embedding knows of m/z.
//
//   Tokens:     mz, intensity [B, S]; type, padding (1 = token), global (1 = global) [B, S];
//               masked: the flat positions b * S + s of the masked peaks, in order.
//   forward -> MaskedPeakLogits for the masked positions; backward(d_mz, d_intensity) accumulates
//   every gradient; encode -> the final hidden states [B, S, d_model] (the [CLS] row is the
//   spectrum embedding).
// D = cpu or cuda (attention dropout must be 0 on the device: LocalGlobalScores raises there).
// The masked rows move with LayoutKernel::gather and their gradients with scatter_add (the
// positions stay on the host, where they are checked); the tied decoder's bin features are
// computed on the host and copied to D once.
// Parameter names: embedding.*, encoder.block.<i>.*, encoder.final_layer_norm.*, head.*.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nexa/attention/local_global_attention.hpp"
#include "nexa/blocks/pre_ln_block.hpp"
#include "nexa/blocks/stack.hpp"
#include "nexa/core/error.hpp"
#include "nexa/models/masked_peak_head.hpp"
#include "nexa/models/spec_embedding.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/nn/activation.hpp"
#include "nexa/ops/layout.hpp"

namespace nexa {

struct SpecEncoderConfig {
  SpecEmbeddingConfig embedding;  // its d_model is the model's
  index_t layers = 2;
  index_t heads = 4;
  index_t d_ff = 0;
  double dropout = 0.0;
  // T5's relative position bias, shared by the blocks (0: none). Without it nothing tells a
  // masked token (whose m/z is hidden) which peaks are its neighbours: its window is a set.
  index_t relative_buckets = 32;
  index_t relative_max_distance = 64;
  index_t mz_bins = 0, intensity_bins = 0;
  double mz_bin_width = 1.0;  // the m/z bins' width, for the tied decoder's bin centres
  bool tied_mz = true;        // m/z classes = the m/z projection of the bin centres
};

template <index_t Window = 64, class T = float, class D = cpu>
class SpecEncoder {
 public:
  using Block = PreLNBlock<LocalGlobalAttention<Window>, T5FFN<Gelu>>;
  using Encoder = Stack<Block, T, D>;
  using Config = SpecEncoderConfig;
  // Token tensors in the model's scalar type (the gradient checks run in double).
  struct Tokens {
    Tensor<T, D> mz, intensity;
    Tensor<std::int32_t, D> type, padding, global;
    std::vector<index_t> masked;
  };
  struct Cache {
    typename SpecEmbedding<T, D>::Cache embedding;
    typename Encoder::Cache encoder;
    typename MaskedPeakHead<T, D>::Cache head;
    typename Linear<T, D>::Cache decoder;  // the tied decoder's m/z projection
    Shape hidden_shape;
    std::vector<index_t> masked;
  };

  SpecEmbedding<T, D> embedding;
  Encoder encoder;
  MaskedPeakHead<T, D> head;

  SpecEncoder() = default;
  SpecEncoder(const Config& config, Rng& rng) : config_(config) {
    const index_t d = config.embedding.d_model;
    require(d > 0 && config.d_ff > 0 && config.heads > 0 && d % config.heads == 0, "SpecEncoder",
            "need positive d_model and d_ff and heads dividing d_model, got d_model ", d, ", d_ff ", config.d_ff,
            ", heads ", config.heads);
    embedding = SpecEmbedding<T, D>(config.embedding, rng);
    encoder = Encoder({.layers = config.layers,
                       .block = {.d_model = d,
                                 .heads = config.heads,
                                 .dropout = config.dropout,
                                 .attention_dropout = config.dropout,
                                 .attention_scale = true,
                                 .ffn = {.d_model = d, .d_ff = config.d_ff, .dropout = config.dropout}},
                       .relative_buckets = config.relative_buckets,
                       .relative_max_distance = config.relative_max_distance,
                       .final_norm = true},
                      rng);
    head = MaskedPeakHead<T, D>(
        {.d_model = d, .mz_bins = config.mz_bins, .intensity_bins = config.intensity_bins, .tied_mz = config.tied_mz},
        rng);
    if (config.tied_mz) {
      require(config.mz_bin_width > 0, "SpecEncoder", "mz_bin_width must be positive, got ", config.mz_bin_width);
      auto centres = Tensor<T>::uninitialized({config.mz_bins});
      for (index_t k = 0; k < config.mz_bins; ++k)
        centres.data()[k] = static_cast<T>((static_cast<double>(k) + 0.5) * config.mz_bin_width);
      if constexpr (std::same_as<D, cpu>)
        bin_features_ = mz_fourier_features(centres.cview(), config.embedding);
      else
        bin_features_ = mz_fourier_features(centres.cview(), config.embedding).template to<D>();
    }
  }

  [[nodiscard]] const Config& config() const { return config_; }
  void set_training(bool on) { encoder.set_training(on); }
  template <class F>
  void visit_dropouts(F&& f) {
    encoder.visit_dropouts(f);
  }

  // The final hidden states [B, S, d_model].
  [[nodiscard]] Tensor<T, D> encode(const Tokens& x, Cache& cache) {
    Tensor<T, D> e = embedding.forward(x.mz.cview(), x.intensity.cview(), x.type.cview(), cache.embedding);
    return encoder.forward(std::move(e), x.padding.cview(), cache.encoder, x.global.cview());
  }

  [[nodiscard]] MaskedPeakLogits<T, D> forward(const Tokens& x, Cache& cache) {
    const Tensor<T, D> hidden = encode(x, cache);
    const index_t d = hidden.dim(2), n = static_cast<index_t>(x.masked.size());
    require(n > 0, "SpecEncoder", "forward needs at least one masked position");
    auto rows = Tensor<T, D>::uninitialized({n, d});
    if constexpr (std::same_as<D, cpu>) {
      for (index_t r = 0; r < n; ++r) {
        const index_t at = x.masked[static_cast<std::size_t>(r)];
        check_masked(at, hidden);
        std::copy_n(hidden.data() + at * d, d, rows.data() + r * d);
      }
    } else {
      for (const index_t at : x.masked) check_masked(at, hidden);
      const auto idx = Tensor<index_t, D>::from_host({n}, x.masked);
      LayoutKernel<D>::gather(n, d, idx.data(), hidden.data(), Strides{d, 1}, rows.data(), Strides{d, 1});
    }
    cache.hidden_shape = hidden.shape();
    cache.masked = x.masked;
    if (!config_.tied_mz) return head.forward(rows.cview(), cache.head);
    const Tensor<T, D> decoder = embedding.mz_projection.forward(bin_features_.cview(), cache.decoder);
    return head.forward(rows.cview(), cache.head, decoder.cview());
  }

  void backward(TensorView<const T, D> d_mz, TensorView<const T, D> d_intensity, Cache& cache) {
    require(!cache.masked.empty(), "SpecEncoder", "backward needs a forward's cache");
    Tensor<T, D> d_decoder;
    if (config_.tied_mz) d_decoder = Tensor<T, D>({config_.mz_bins, config_.embedding.d_model});
    const Tensor<T, D> d_rows = head.backward(d_mz, d_intensity, cache.head, d_decoder.view());
    if (config_.tied_mz) (void)embedding.mz_projection.backward(d_decoder.cview(), cache.decoder);
    Tensor<T, D> d_hidden(cache.hidden_shape);
    const index_t d = d_rows.dim(1);
    if constexpr (std::same_as<D, cpu>) {
      for (std::size_t r = 0; r < cache.masked.size(); ++r) {
        const T* src = d_rows.data() + static_cast<index_t>(r) * d;
        T* dst = d_hidden.data() + cache.masked[r] * d;
        for (index_t c = 0; c < d; ++c) dst[c] += src[c];
      }
    } else {
      // One segment per masked position, its rows in their order (repeats add as above).
      const Segments seg = segments_by_key(cache.masked.data(), static_cast<index_t>(cache.masked.size()),
                                           cache.hidden_shape[0] * cache.hidden_shape[1]);
      ops::scatter_add_segments<T, D>(seg, d, d_rows.data(), Strides{d, 1}, d_hidden.data(), Strides{d, 1});
    }
    const Tensor<T, D> d_embedded = encoder.backward(d_hidden.cview(), cache.encoder);
    embedding.backward(d_embedded.cview(), cache.embedding);
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    embedding.visit_params(f, join_name(prefix, "embedding"));
    encoder.visit_params(f, join_name(prefix, "encoder"));
    head.visit_params(f, join_name(prefix, "head"));
  }

 private:
  static void check_masked(index_t at, const Tensor<T, D>& hidden) {
    require(0 <= at && at < hidden.dim(0) * hidden.dim(1), "SpecEncoder", "masked position ", at,
            " outside the batch's ", hidden.dim(0) * hidden.dim(1), " tokens");
  }

  Config config_;
  Tensor<T, D> bin_features_;  // Fourier features of the m/z bin centres [mz_bins, 2F], when tied
};

}  // namespace nexa
