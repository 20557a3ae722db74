#pragma once
// MaskedPeakHead: Nexa-Spec's masked peak modelling head (seed 004, section 4.1). From the
// encoder's hidden states of the masked peak tokens [N, d_model] it predicts two distributions,
// as BERT's masked-LM head does for words:
//   h = LayerNorm(GELU(W_t x + b_t));  mz_logits = W_m h + b_m [N, mz_bins];
//   intensity_logits = W_i h + b_i [N, intensity_bins].
// masked_peak_loss adds the two mean cross-entropies and returns both logit gradients.
// Tied m/z decoder (Config::tied_mz, as language models tie their output embedding to the input
// one): the m/z classes are not free rows W_m but a matrix E [mz_bins, d_model] the caller passes
// to forward, the input embedding of each bin's centre m/z (SpecEncoder: the m/z projection of the
// Fourier features), so mz_logits = h E^T + b_m and a class near a seen m/z starts near it; the
// backward then returns dE for the caller to pass on.
// D = cpu or cuda: every step is a module or op that runs on either device (Linear, GELU through
// ActivationKernel, LayerNorm, broadcast_rows/gemm/sum_rows, cross-entropy in LossKernel).
// Parameter names: transform.*, norm.*, mz.* (mz.bias alone when tied), intensity.*.
#include <cstdint>
#include <string>
#include <utility>

#include "nexa/core/error.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/nn/activation.hpp"
#include "nexa/nn/layer_norm.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/gemm.hpp"
#include "nexa/train/loss.hpp"

namespace nexa {

struct MaskedPeakHeadConfig {
  index_t d_model = 0;
  index_t mz_bins = 0;
  index_t intensity_bins = 0;
  double norm_eps = 1e-12;
  double init_std = 0.02;
  bool tied_mz = false;  // m/z logits against a decoder matrix given to forward (see the top)
};

template <class T = float, class D = cpu>
struct MaskedPeakLogits {
  Tensor<T, D> mz;         // [N, mz_bins]
  Tensor<T, D> intensity;  // [N, intensity_bins]
};

template <class T = float, class D = cpu>
class MaskedPeakHead {
 public:
  using Config = MaskedPeakHeadConfig;
  struct Cache {
    typename Linear<T, D>::Cache transform, mz, intensity;
    typename Activation<Gelu, T, D>::Cache act;
    typename LayerNorm<T, D>::Cache norm;
    Tensor<T, D> decoder;  // tied: E [mz_bins, d_model]
  };
  template <class T2, class D2>
  using rebind = MaskedPeakHead<T2, D2>;

  Linear<T, D> transform;
  Activation<Gelu, T, D> act;
  LayerNorm<T, D> norm;
  Linear<T, D> mz, intensity;  // mz: unused when tied
  Param<T, D> mz_bias;         // [mz_bins], when tied

  MaskedPeakHead() = default;
  MaskedPeakHead(const Config& config, Rng& rng) : config_(config) {
    require(config.d_model > 0 && config.mz_bins > 0 && config.intensity_bins > 0, "MaskedPeakHead",
            "d_model, mz_bins and intensity_bins must be positive, got ", config.d_model, ", ", config.mz_bins, " and ",
            config.intensity_bins);
    const auto linear = [&](index_t out) {
      return Linear<T, D>(
          {.in_features = config.d_model, .out_features = out, .bias = true, .init_std = config.init_std}, rng);
    };
    transform = linear(config.d_model);
    norm = LayerNorm<T, D>({config.d_model, config.norm_eps}, rng);
    if (config.tied_mz)
      mz_bias = Param<T, D>(Tensor<T, D>({config.mz_bins}));
    else
      mz = linear(config.mz_bins);
    intensity = linear(config.intensity_bins);
  }

  [[nodiscard]] const Config& config() const { return config_; }

  // hidden: [N, d_model] (the masked tokens' rows); decoder: E [mz_bins, d_model] when tied.
  [[nodiscard]] MaskedPeakLogits<T, D> forward(TensorView<const T, D> hidden, Cache& cache,
                                               TensorView<const T, D> decoder = {}) const {
    require(config_.d_model > 0, "MaskedPeakHead", "module is not constructed");
    require(hidden.rank() == 2 && hidden.dim(1) == config_.d_model, "MaskedPeakHead", "hidden shape expected [N, ",
            config_.d_model, "], got ", hidden.shape());
    require(config_.tied_mz != decoder.empty(), "MaskedPeakHead",
            config_.tied_mz ? "a tied head needs the m/z decoder matrix" : "an untied head takes no decoder matrix");
    Tensor<T, D> t = transform.forward(hidden, cache.transform);
    Tensor<T, D> h = norm.forward(act.forward(t.cview(), cache.act), cache.norm);
    MaskedPeakLogits<T, D> out;
    if (config_.tied_mz) {
      require_shape(decoder, Shape{config_.mz_bins, config_.d_model}, "MaskedPeakHead", "m/z decoder");
      cache.decoder = clone(decoder);
      out.mz = Tensor<T, D>::uninitialized({h.dim(0), config_.mz_bins});
      ops::broadcast_rows(mz_bias.value.cview(), out.mz.view());
      ops::gemm(h.cview(), Trans::N, decoder, Trans::T, out.mz.view(), T(1), T(1));
      cache.mz.input = clone(h.cview());
    } else {
      out.mz = mz.forward(h.cview(), cache.mz);
    }
    out.intensity = intensity.forward(std::move(h), cache.intensity);
    return out;
  }

  // Accumulates the parameter gradients (and, when tied, adds dE into d_decoder [mz_bins,
  // d_model]); returns d(hidden) [N, d_model].
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> d_mz, TensorView<const T, D> d_intensity, Cache& cache,
                                      TensorView<T, D> d_decoder = {}) {
    require(!cache.mz.input.empty(), "MaskedPeakHead", "backward needs a forward's cache");
    Tensor<T, D> dh;
    if (config_.tied_mz) {
      require_shape(d_decoder, cache.decoder.shape(), "MaskedPeakHead", "d_decoder");
      require_shape(d_mz, Shape{cache.mz.input.dim(0), config_.mz_bins}, "MaskedPeakHead", "d_mz");
      if (mz_bias.trainable) ops::sum_rows(d_mz, mz_bias.grad.view());
      ops::gemm(d_mz, Trans::T, cache.mz.input.cview(), Trans::N, d_decoder, T(1), T(1));
      dh = Tensor<T, D>::uninitialized({d_mz.dim(0), config_.d_model});
      ops::gemm(d_mz, Trans::N, cache.decoder.cview(), Trans::N, dh.view());
    } else {
      dh = mz.backward(d_mz, cache.mz);
    }
    ops::axpy(T(1), intensity.backward(d_intensity, cache.intensity).cview(), dh.view());
    const Tensor<T, D> dt = act.backward(norm.backward(dh.cview(), cache.norm).cview(), cache.act);
    return transform.backward(dt.cview(), cache.transform);
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    transform.visit_params(f, join_name(prefix, "transform"));
    norm.visit_params(f, join_name(prefix, "norm"));
    if (config_.tied_mz)
      f(join_name(prefix, "mz.bias"), mz_bias);
    else
      mz.visit_params(f, join_name(prefix, "mz"));
    intensity.visit_params(f, join_name(prefix, "intensity"));
  }

 private:
  Config config_;
};

template <class T = float, class D = cpu>
struct MaskedPeakLoss {
  double mz = 0, intensity = 0;    // mean cross-entropies
  Tensor<T, D> d_mz, d_intensity;  // gradients of mz + intensity with respect to the logits
  [[nodiscard]] double total() const { return mz + intensity; }
};

// Cross-entropy of both heads against the bins of the masked peaks (targets [N], int32).
template <class T, class D>
[[nodiscard]] MaskedPeakLoss<T, D> masked_peak_loss(const MaskedPeakLogits<T, D>& logits,
                                                    TensorView<const std::int32_t, D> mz_targets,
                                                    TensorView<const std::int32_t, D> intensity_targets) {
  auto [mz_loss, d_mz] = train::cross_entropy(logits.mz, mz_targets);
  auto [intensity_loss, d_intensity] = train::cross_entropy(logits.intensity, intensity_targets);
  return {static_cast<double>(mz_loss), static_cast<double>(intensity_loss), std::move(d_mz), std::move(d_intensity)};
}

}  // namespace nexa
