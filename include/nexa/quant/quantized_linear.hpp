#pragma once
// QuantizedLinear<Format, T, D>: a frozen Linear whose weight [out, in] is stored quantised (NF4,
// Int8, MXFP4) and dequantised tile by tile inside the GEMMs (quant/quantized_gemm.hpp), forward
// and backward to the input. Spelled after the issue as
//   Quantized<Linear<>, NF4>          = QuantizedLinear<NF4>
//   LoRA<Quantized<Linear<>, NF4>>    = QLoRA (Dettmers et al., 2023): NF4 base, fp adapters
// (Quantized<Module, Format> maps a dense module type to its quantised counterpart; T5FFN experts
// map to QuantizedExpert, see quant/quantized_expert.hpp).
//
// Built from a dense Linear (its weight is quantised; an optional bias is kept unquantised in
// float), or from a Linear config and an Rng (a random Linear, then quantised), which is what
// LoRA<QuantizedLinear<...>>(config, rng) uses. It is frozen by construction: it has no
// parameters at all, so visit_params visits nothing, optimizers and freezing pass it by, and
// save_safetensors / load_safetensors neither write nor expect its weight (a LoRA over it saves
// only its adapters, as peft does). Keep the dense checkpoint and quantise at load time; the
// quantised storage itself is available through storage().
// The backward gives dx only (backward_input); the forward keeps nothing.
// With D = nexa::cuda (float; include nexa/backend/cuda.hpp) the packed codes and block
// statistics also live on the device and both GEMMs dequantise a tile of rows at a time into
// cuBLAS there (backend/cuda/nf4.hpp; Int8 and MXFP4: backend/cuda/int8_mxfp4.hpp); the host
// storage stays the reference copy.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/param.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/quant/quantized_gemm.hpp"

namespace nexa {

using quant::Int8;
using quant::MXFP4;
using quant::NF4;
using quant::NF4Format;

template <quant::QuantFormat Format, class T = float, class D = cpu>
class QuantizedLinear {
  // On CUDA: float (backend/cuda/nf4.hpp, backend/cuda/int8_mxfp4.hpp).
  static_assert(quant::has_quantized_gemm<Format, T, D>, "QuantizedLinear on CUDA: quantised weights compute in float");
  using Kernel = quant::QuantizedGemmKernel<Format, D>;

 public:
  using Config = typename Linear<T, D>::Config;
  using Storage = typename Format::tensor_type;
  struct Cache {};  // the backward to the input needs no activations
  template <class T2, class D2>
  using rebind = QuantizedLinear<Format, T2, D2>;

  QuantizedLinear() = default;
  // A random Linear (PyTorch's initialisation, or N(0, init_std)), quantised.
  QuantizedLinear(const Config& config, Rng& rng) : QuantizedLinear(Linear<T, D>(config, rng)) {}
  // Quantises a dense Linear's weight; its bias (if any) is kept in float.
  explicit QuantizedLinear(const Linear<T, D>& dense, index_t tile_rows = quant::default_tile_rows)
      : config_(dense.config()), tile_rows_(tile_rows) {
    require(dense.weight.value.rank() == 2 && dense.weight.value.numel() > 0, "QuantizedLinear",
            "expected a dense Linear with a [out, in] weight, got shape ", dense.weight.value.shape());
    set_tile_rows(tile_rows);
    if constexpr (std::same_as<T, float> && std::same_as<D, cpu>) {
      weight_ = Format::quantize(dense.weight.value.cview());
    } else {
      const auto host = dense.weight.value.to_host();
      std::vector<float> f(host.begin(), host.end());
      weight_ = Format::quantize(TensorView<const float, cpu>(f.data(), dense.weight.value.shape()));
    }
    placed_ = Kernel::place(weight_);
    if (config_.bias) {
      const auto b = dense.bias.value.to_host();
      bias_.assign(b.begin(), b.end());
      std::vector<T> rounded(bias_.size());
      for (std::size_t i = 0; i < rounded.size(); ++i) rounded[i] = static_cast<T>(bias_[i]);
      bias_values_ = Tensor<T, D>::from_host({config_.out_features}, rounded);
    }
  }

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] index_t in_features() const { return config_.in_features; }
  [[nodiscard]] index_t out_features() const { return config_.out_features; }
  [[nodiscard]] const Storage& storage() const { return weight_; }
  [[nodiscard]] const std::vector<float>& bias() const { return bias_; }
  // Output rows dequantised at a time (scratch bound: see quant/quantized_gemm.hpp).
  [[nodiscard]] index_t tile_rows() const { return tile_rows_; }
  void set_tile_rows(index_t rows) {
    require(rows > 0, "QuantizedLinear", "tile_rows must be positive, got ", rows);
    tile_rows_ = rows;
  }
  // Parameters the dense layer had (weight and bias), and the bytes this one stores for them.
  [[nodiscard]] index_t num_parameters() const {
    return config_.in_features * config_.out_features + (config_.bias ? config_.out_features : 0);
  }
  [[nodiscard]] std::size_t bytes() const { return weight_.bytes() + bias_.size() * sizeof(float); }
  // The dense weight the layer computes with, dequantised whole (tests, inspection, merging).
  [[nodiscard]] Tensor<float, cpu> dequantized_weight() const { return quant::dequantize<Format>(weight_); }

  // x: [..., in] -> [..., out].
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache&) const { return apply(x); }
  [[nodiscard]] Tensor<T, D> apply(TensorView<const T, D> x) const {
    require(x.rank() >= 1 && x.cols() == config_.in_features, "QuantizedLinear", "input's last axis expected ",
            config_.in_features, ", got shape ", x.shape());
    require(weight_.shape.rank() == 2, "QuantizedLinear", "the layer holds no weight (default-constructed)");
    std::vector<index_t> dims = x.shape().dims();
    dims.back() = config_.out_features;
    auto y = Tensor<T, D>::uninitialized(Shape(dims));
    // y starts as the bias rows and the GEMM adds x W^T onto them.
    if (config_.bias) ops::broadcast_rows(bias_values_.cview(), y.view());
    Kernel::template x_wt<T>(weight_, placed_, x, y.view(), config_.bias ? T(1) : T(0), tile_rows_);
    return y;
  }

  // dx = dy W (the layer is frozen: no parameter gradient).
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache&) const { return backward_input(dy); }
  [[nodiscard]] Tensor<T, D> backward_input(TensorView<const T, D> dy) const {
    require(dy.rank() >= 1 && dy.cols() == config_.out_features, "QuantizedLinear", "dy's last axis expected ",
            config_.out_features, ", got shape ", dy.shape());
    require(weight_.shape.rank() == 2, "QuantizedLinear", "the layer holds no weight (default-constructed)");
    std::vector<index_t> dims = dy.shape().dims();
    dims.back() = config_.in_features;
    auto dx = Tensor<T, D>::uninitialized(Shape(dims));
    Kernel::template dy_w<T>(weight_, placed_, dy, dx.view(), T(0), tile_rows_);
    return dx;
  }

  // No parameters: the quantised weight is constant storage, not a Param (see the header comment).
  template <class F>
  void visit_params(F&&, const std::string& = "") {}

 private:
  Config config_;
  Storage weight_;  // on the host, the reference copy
  [[no_unique_address]] typename Kernel::Placed placed_;
  std::vector<float> bias_;
  Tensor<T, D> bias_values_;  // bias_ in T on D
  index_t tile_rows_ = quant::default_tile_rows;
};

// Quantized<Module, Format>: the quantised counterpart of a dense module type.
template <class Module, class Format>
struct QuantizedOf;
template <class T, class D, class Format>
struct QuantizedOf<Linear<T, D>, Format> {
  using type = QuantizedLinear<Format, T, D>;
};
template <class Module, class Format>
using Quantized = typename QuantizedOf<Module, Format>::type;

}  // namespace nexa
