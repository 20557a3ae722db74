#pragma once
// SpecEmbedding: Nexa-Spec's peak-token embedding (seed 004). Each token of an MS/MS spectrum
// (a peak, the precursor, [CLS], a masked peak) is the sum of three parts:
//   e = W_f fourier(mz) + b_f  +  W_2 GELU(W_1 intensity + b_1) + b_2  +  type_embedding[type]
// with fixed Fourier features of the m/z value (the sinusoidal peak encoding of Casanovo and
// depthcharge):
//   fourier(mz) = [sin(2 pi mz / lambda_k) for k < F, cos(2 pi mz / lambda_k) for k < F],
//   lambda_k = min_wavelength * (max_wavelength / min_wavelength)^(k / (F - 1)),
// so the shortest wavelength sets the m/z resolution the model can tell apart and the longest
// covers the whole m/z range without wrapping. The features are computed in double (m/z values
// near 2000 divided by a wavelength near 1 keep their fraction) and then rounded to T.
// Inputs: mz and intensity [B, S] (T), type [B, S] (int32, < token_types); output [B, S, d_model].
// D = cpu or cuda: the features run in FourierKernel<D> (backend/cpu/fourier.hpp,
// backend/cuda/fourier.hpp: the same formula, the wavelengths computed once on the host), the rest
// in Linear, ActivationKernel<Gelu> and Embedding. Parameter names: mz_projection.*,
// intensity_mlp.{0,2}.*, token_type.weight.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "nexa/backend/cpu/fourier.hpp"
#include "nexa/core/error.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/nn/activation.hpp"
#include "nexa/nn/embedding.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/fourier_fwd.hpp"

namespace nexa {

struct SpecEmbeddingConfig {
  index_t d_model = 0;
  index_t frequencies = 32;  // F: the Fourier features are 2F wide
  double min_wavelength = 1.0;
  double max_wavelength = 10000.0;
  index_t intensity_hidden = 32;  // width of the intensity MLP's hidden layer
  index_t token_types = 4;        // e.g. peak, precursor, [CLS], [MASK]
  double init_std = 0.02;         // the token-type embeddings (the linears keep Linear's default init)
};

inline void check_fourier_config(const SpecEmbeddingConfig& c) {
  require(c.frequencies > 0, "SpecEmbedding", "frequencies must be positive, got ", c.frequencies);
  require(c.min_wavelength > 0 && c.max_wavelength >= c.min_wavelength, "SpecEmbedding",
          "need 0 < min_wavelength <= max_wavelength, got ", c.min_wavelength, " and ", c.max_wavelength);
}

// The fixed Fourier features [..., 2F] of m/z values [...] (see the top).
template <class T, class D>
[[nodiscard]] Tensor<T, D> mz_fourier_features(TensorView<const T, D> mz, const SpecEmbeddingConfig& c) {
  check_fourier_config(c);
  const index_t F = c.frequencies, n = mz.numel();
  std::vector<index_t> dims = mz.shape().dims();
  dims.push_back(2 * F);
  auto out = Tensor<T, D>::uninitialized(Shape(std::move(dims)));
  std::vector<double> angular(static_cast<std::size_t>(F));
  const double ratio = c.max_wavelength / c.min_wavelength;
  for (index_t k = 0; k < F; ++k) {
    const double exponent = F > 1 ? static_cast<double>(k) / static_cast<double>(F - 1) : 0.0;
    angular[static_cast<std::size_t>(k)] = 2 * std::numbers::pi / (c.min_wavelength * std::pow(ratio, exponent));
  }
  if constexpr (std::same_as<D, cpu>) {
    FourierKernel<cpu>::features(n, F, mz.data(), angular.data(), out.data());
  } else {
    const auto device_angular = Tensor<double, D>::from_host({F}, angular);
    FourierKernel<D>::features(n, F, mz.data(), device_angular.data(), out.data());
  }
  return out;
}

template <class T = float, class D = cpu>
class SpecEmbedding {
 public:
  using Config = SpecEmbeddingConfig;
  struct Cache {
    typename Linear<T, D>::Cache mz_projection, intensity_in, intensity_out;
    typename Activation<Gelu, T, D>::Cache intensity_act;
    typename Embedding<T, D>::Cache token_type;
  };
  template <class T2, class D2>
  using rebind = SpecEmbedding<T2, D2>;

  Linear<T, D> mz_projection;                // 2F -> d_model
  Linear<T, D> intensity_in, intensity_out;  // 1 -> hidden -> d_model
  Activation<Gelu, T, D> intensity_act;
  Embedding<T, D> token_type;

  SpecEmbedding() = default;
  SpecEmbedding(const Config& config, Rng& rng) : config_(config) {
    require(config.d_model > 0 && config.intensity_hidden > 0 && config.token_types > 0, "SpecEmbedding",
            "d_model, intensity_hidden and token_types must be positive, got ", config.d_model, ", ",
            config.intensity_hidden, " and ", config.token_types);
    check_fourier_config(config);
    mz_projection = Linear<T, D>(
        {.in_features = 2 * config.frequencies, .out_features = config.d_model, .bias = true, .init_std = 0}, rng);
    intensity_in = Linear<T, D>({.in_features = 1, .out_features = config.intensity_hidden, .bias = true}, rng);
    intensity_out =
        Linear<T, D>({.in_features = config.intensity_hidden, .out_features = config.d_model, .bias = true}, rng);
    token_type = Embedding<T, D>({config.token_types, config.d_model, config.init_std}, rng);
  }

  [[nodiscard]] const Config& config() const { return config_; }

  // mz, intensity: [B, S]; type: [B, S] -> [B, S, d_model].
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> mz, TensorView<const T, D> intensity,
                                     TensorView<const std::int32_t, D> type, Cache& cache) const {
    check_inputs(mz, intensity, type);
    Tensor<T, D> e = mz_projection.forward(mz_fourier_features(mz, config_), cache.mz_projection);
    std::vector<index_t> dims = intensity.shape().dims();
    dims.push_back(1);
    const TensorView<const T, D> column(intensity.data(), Shape(std::move(dims)));
    Tensor<T, D> hidden = intensity_in.forward(column, cache.intensity_in);
    Tensor<T, D> activated = intensity_act.forward(hidden.cview(), cache.intensity_act);
    ops::axpy(T(1), intensity_out.forward(std::move(activated), cache.intensity_out).cview(), e.view());
    ops::axpy(T(1), token_type.forward(type, cache.token_type).cview(), e.view());
    return e;
  }

  // Inference: forward without keeping anything.
  [[nodiscard]] Tensor<T, D> apply(TensorView<const T, D> mz, TensorView<const T, D> intensity,
                                   TensorView<const std::int32_t, D> type) const {
    Cache cache;
    return forward(mz, intensity, type, cache);
  }

  // dy: [B, S, d_model]. Accumulates every parameter's gradient (the inputs are data: no dx).
  void backward(TensorView<const T, D> dy, Cache& cache) {
    require(!cache.mz_projection.input.empty(), "SpecEmbedding", "backward needs a forward's cache");
    (void)mz_projection.backward(dy, cache.mz_projection);
    const Tensor<T, D> d_activated = intensity_out.backward(dy, cache.intensity_out);
    (void)intensity_in.backward(intensity_act.backward(d_activated.cview(), cache.intensity_act).cview(),
                                cache.intensity_in);
    token_type.backward(dy, cache.token_type);
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    mz_projection.visit_params(f, join_name(prefix, "mz_projection"));
    intensity_in.visit_params(f, join_name(prefix, "intensity_mlp.0"));
    intensity_out.visit_params(f, join_name(prefix, "intensity_mlp.2"));
    token_type.visit_params(f, join_name(prefix, "token_type"));
  }

 private:
  void check_inputs(TensorView<const T, D> mz, TensorView<const T, D> intensity,
                    TensorView<const std::int32_t, D> type) const {
    require(config_.d_model > 0, "SpecEmbedding", "module is not constructed");
    require(mz.rank() == 2, "SpecEmbedding", "mz shape expected [batch, seq], got ", mz.shape());
    require(intensity.shape() == mz.shape(), "SpecEmbedding", "intensity shape expected ", mz.shape(), ", got ",
            intensity.shape());
    require(type.shape() == mz.shape(), "SpecEmbedding", "type shape expected ", mz.shape(), ", got ", type.shape());
  }

  Config config_;
};

}  // namespace nexa
