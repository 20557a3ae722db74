#pragma once
// MaskedPeakHead: Nexa-Spec's masked peak modelling head (seed 004, section 4.1). From the
// encoder's hidden states of the masked peak tokens [N, d_model] it predicts two distributions,
// as BERT's masked-LM head does for words:
//   h = LayerNorm(GELU(W_t x + b_t));  mz_logits = W_m h + b_m [N, mz_bins];
//   intensity_logits = W_i h + b_i [N, intensity_bins].
// masked_peak_loss adds the two mean cross-entropies and returns both logit gradients.
// Parameter names: transform.*, norm.*, mz.*, intensity.*.
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
#include "nexa/train/loss.hpp"

namespace nexa {

struct MaskedPeakHeadConfig {
  index_t d_model = 0;
  index_t mz_bins = 0;
  index_t intensity_bins = 0;
  double norm_eps = 1e-12;
  double init_std = 0.02;
};

template <class T = float>
struct MaskedPeakLogits {
  Tensor<T> mz;         // [N, mz_bins]
  Tensor<T> intensity;  // [N, intensity_bins]
};

template <class T = float>
class MaskedPeakHead {
 public:
  using Config = MaskedPeakHeadConfig;
  struct Cache {
    typename Linear<T>::Cache transform, mz, intensity;
    typename Activation<Gelu, T>::Cache act;
    typename LayerNorm<T>::Cache norm;
  };

  Linear<T> transform;
  Activation<Gelu, T> act;
  LayerNorm<T> norm;
  Linear<T> mz, intensity;

  MaskedPeakHead() = default;
  MaskedPeakHead(const Config& config, Rng& rng) : config_(config) {
    require(config.d_model > 0 && config.mz_bins > 0 && config.intensity_bins > 0, "MaskedPeakHead",
            "d_model, mz_bins and intensity_bins must be positive, got ", config.d_model, ", ", config.mz_bins, " and ",
            config.intensity_bins);
    const auto linear = [&](index_t out) {
      return Linear<T>({.in_features = config.d_model, .out_features = out, .bias = true, .init_std = config.init_std},
                       rng);
    };
    transform = linear(config.d_model);
    norm = LayerNorm<T>({config.d_model, config.norm_eps}, rng);
    mz = linear(config.mz_bins);
    intensity = linear(config.intensity_bins);
  }

  [[nodiscard]] const Config& config() const { return config_; }

  // hidden: [N, d_model] (the masked tokens' rows).
  [[nodiscard]] MaskedPeakLogits<T> forward(TensorView<const T> hidden, Cache& cache) const {
    require(config_.d_model > 0, "MaskedPeakHead", "module is not constructed");
    require(hidden.rank() == 2 && hidden.dim(1) == config_.d_model, "MaskedPeakHead", "hidden shape expected [N, ",
            config_.d_model, "], got ", hidden.shape());
    Tensor<T> t = transform.forward(hidden, cache.transform);
    Tensor<T> h = norm.forward(act.forward(t.cview(), cache.act), cache.norm);
    MaskedPeakLogits<T> out;
    out.mz = mz.forward(h.cview(), cache.mz);
    out.intensity = intensity.forward(std::move(h), cache.intensity);
    return out;
  }

  // Accumulates the parameter gradients; returns d(hidden) [N, d_model].
  [[nodiscard]] Tensor<T> backward(TensorView<const T> d_mz, TensorView<const T> d_intensity, Cache& cache) {
    require(!cache.mz.input.empty(), "MaskedPeakHead", "backward needs a forward's cache");
    Tensor<T> dh = mz.backward(d_mz, cache.mz);
    ops::axpy(T(1), intensity.backward(d_intensity, cache.intensity).cview(), dh.view());
    const Tensor<T> dt = act.backward(norm.backward(dh.cview(), cache.norm).cview(), cache.act);
    return transform.backward(dt.cview(), cache.transform);
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    transform.visit_params(f, join_name(prefix, "transform"));
    norm.visit_params(f, join_name(prefix, "norm"));
    mz.visit_params(f, join_name(prefix, "mz"));
    intensity.visit_params(f, join_name(prefix, "intensity"));
  }

 private:
  Config config_;
};

template <class T = float>
struct MaskedPeakLoss {
  double mz = 0, intensity = 0;  // mean cross-entropies
  Tensor<T> d_mz, d_intensity;   // gradients of mz + intensity with respect to the logits
  [[nodiscard]] double total() const { return mz + intensity; }
};

// Cross-entropy of both heads against the bins of the masked peaks (targets [N], int32).
template <class T>
[[nodiscard]] MaskedPeakLoss<T> masked_peak_loss(const MaskedPeakLogits<T>& logits,
                                                 TensorView<const std::int32_t> mz_targets,
                                                 TensorView<const std::int32_t> intensity_targets) {
  auto [mz_loss, d_mz] = train::cross_entropy(logits.mz, mz_targets);
  auto [intensity_loss, d_intensity] = train::cross_entropy(logits.intensity, intensity_targets);
  return {static_cast<double>(mz_loss), static_cast<double>(intensity_loss), std::move(d_mz), std::move(d_intensity)};
}

}  // namespace nexa
