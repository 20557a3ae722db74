#pragma once
// QuantizedExpert<T5FFN<Act>, Format, T, D>: a frozen T5 expert whose weights (wi and wo, or
// wi_0, wi_1 and wo when gated) are stored quantised and dequantised tile by tile inside the
// GEMMs (quant/quantized_gemm.hpp). It satisfies the Expert concept, so
//   MoELayer<TopKRouter<2, Frozen>, QuantizedExpert<T5FFN<Relu>, NF4>, SharedExpert<T5FFN<Relu>>>
// is NEXUS's frozen MoE with NF4 experts and a trainable shared expert. Quantized<T5FFN<Relu>, NF4>
// names the same type. Built from a dense expert (its weights quantised, its dropout kept), or
// from an ExpertConfig and an Rng (a random T5 expert, quantised; what MoELayer does);
// with_quantized_experts<Format>(layer) converts a (trained) MoELayer's routed experts.
// Like QuantizedLinear it has no parameters: visit_params visits nothing, so optimizers,
// freezing and safetensors I/O pass it by (quantise from the dense checkpoint at load time).
// backward_into gives dx only. bytes() is its storage; with NF4 and double quantisation about
// 0.516 bytes per parameter (0.5 for the codes, 1/64 for the 8-bit absmax codes, 4/16384 for
// their float absmax).
// With D = nexa::cuda (float; include nexa/backend/cuda.hpp) the codes and statistics are also
// placed on the device and the GEMMs run there (QuantizedGemmKernel<Format, cuda>:
// backend/cuda/nf4.hpp, backend/cuda/int8_mxfp4.hpp); a cuda dense expert's weights are copied
// to the host and quantised there, as on the CPU, so both devices hold the same codes.
#include <concepts>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "nexa/moe/moe_layer.hpp"
#include "nexa/moe/t5_expert_pass.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/quant/quantized_linear.hpp"

namespace nexa {

template <class Expert, quant::QuantFormat Format, class T = float, class D = cpu>
class QuantizedExpert;

namespace quant_detail {
template <class A>
using ExpertAct = t5_pass::ExpertAct<A>;

template <class Format, class T, class D>
typename Format::tensor_type quantize_param(const Param<T, D>& p) {
  if constexpr (std::same_as<T, float> && std::same_as<D, cpu>) {
    return Format::quantize(p.value.cview());
  } else {
    const auto host = p.value.to_host();
    std::vector<float> f(host.begin(), host.end());
    return Format::quantize(TensorView<const float, cpu>(f.data(), p.value.shape()));
  }
}
}  // namespace quant_detail

template <class Act, class T0, class D0, quant::QuantFormat Format, class T, class D>
class QuantizedExpert<T5FFN<Act, T0, D0>, Format, T, D> {
  static_assert(quant::has_quantized_gemm<Format, T, D>, "QuantizedExpert on CUDA: quantised weights compute in float");
  static constexpr bool gated = quant_detail::ExpertAct<Act>::gated;
  using Pass = t5_pass::T5ExpertPass<Act, T, D>;
  using Kernel = quant::QuantizedGemmKernel<Format, D>;  // CPU: quant/quantized_gemm.hpp; CUDA: backend/cuda/

 public:
  using Config = ExpertConfig;
  using DenseT = T5FFN<Act, T, D>;
  using Cache = typename DenseT::Cache;  // the same activations as the dense expert keeps
  using Storage = typename Format::tensor_type;
  template <class T2, class D2>
  using rebind = QuantizedExpert<T5FFN<Act, T0, D0>, Format, T2, D2>;

  QuantizedExpert() = default;
  QuantizedExpert(const Config& config, Rng& rng) : QuantizedExpert(DenseT(config, rng)) {}
  explicit QuantizedExpert(DenseT dense, index_t tile_rows = quant::default_tile_rows)
      : config_(dense.config()), dropout_(std::move(dense.dropout())) {
    set_tile_rows(tile_rows);
    if constexpr (gated) {
      wi_ = quant_detail::quantize_param<Format>(dense.wi_0);
      wi_1_ = quant_detail::quantize_param<Format>(dense.wi_1);
    } else {
      wi_ = quant_detail::quantize_param<Format>(dense.wi);
    }
    wo_ = quant_detail::quantize_param<Format>(dense.wo);
    wi_placed_ = Kernel::place(wi_);
    if constexpr (gated) wi_1_placed_ = Kernel::place(wi_1_);
    wo_placed_ = Kernel::place(wo_);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  void set_training(bool on) { dropout_.set_training(on); }
  [[nodiscard]] Dropout<T, D>& dropout() { return dropout_; }
  template <class F>
  void visit_dropouts(F&& f) {
    f(dropout_);
  }
  [[nodiscard]] index_t tile_rows() const { return tile_rows_; }
  void set_tile_rows(index_t rows) {
    require(rows > 0, name(), "tile_rows must be positive, got ", rows);
    tile_rows_ = rows;
  }

  // The quantised weights: wi (wi_0 when gated), wi_1 (gated only), wo.
  [[nodiscard]] const Storage& wi() const { return wi_; }
  [[nodiscard]] const Storage& wi_1() const { return wi_1_; }
  [[nodiscard]] const Storage& wo() const { return wo_; }
  // Parameters of the dense expert, and the bytes this one stores for them.
  [[nodiscard]] index_t num_parameters() const { return (gated ? 3 : 2) * config_.d_model * config_.d_ff; }
  [[nodiscard]] std::size_t bytes() const { return wi_.bytes() + (gated ? wi_1_.bytes() : 0) + wo_.bytes(); }
  [[nodiscard]] double bytes_per_parameter() const {
    return static_cast<double>(bytes()) / static_cast<double>(num_parameters());
  }
  // A dense expert holding the dequantised weights (what this one computes with).
  [[nodiscard]] DenseT dequantized(Rng& rng) const {
    DenseT dense(config_, rng);
    auto load = [](Param<T, D>& p, const Storage& q) {
      const auto w = quant::dequantize<Format>(q);
      if constexpr (std::same_as<D, cpu>) {
        for (index_t i = 0; i < w.numel(); ++i) p.value.data()[i] = static_cast<T>(w.data()[i]);
      } else {
        std::vector<T> host(static_cast<std::size_t>(w.numel()));
        for (index_t i = 0; i < w.numel(); ++i) host[static_cast<std::size_t>(i)] = static_cast<T>(w.data()[i]);
        p.value = Tensor<T, D>::from_host(p.value.shape(), host);
      }
    };
    if constexpr (gated) {
      load(dense.wi_0, wi_);
      load(dense.wi_1, wi_1_);
    } else {
      load(dense.wi, wi_);
    }
    load(dense.wo, wo_);
    return dense;
  }

  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) { return forward(clone(x), cache); }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, Cache& cache) {
    auto y = Tensor<T, D>::uninitialized(x.shape());
    forward_into(std::move(x), cache, y.view());
    return y;
  }
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    auto dx = Tensor<T, D>::uninitialized(dy.shape());
    backward_into(dy, cache, dx.view());
    return dx;
  }

  // T5FFN's forward with the GEMMs against the quantised weights.
  void forward_into(Tensor<T, D>&& x, Cache& cache, TensorView<T, D> y) {
    require(wo_.shape.rank() == 2, name(), "the expert holds no weights (default-constructed)");
    Pass::forward_into(name(), *this, t5_pass::NoTerms{}, std::move(x), cache, y);
  }

  // dx only: the weights are frozen.
  void backward_into(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> dx) {
    Pass::backward_into(name(), *this, t5_pass::NoTerms{}, dy, cache, dx);
  }

  // One linear against its quantised weight, as the pass (moe/t5_expert_pass.hpp) runs it here
  // and in LoRA<QuantizedExpert>: out = in W^T, and din = dout W + beta din (no gradient for W).
  void apply_linear(T5Linear which, TensorView<const T, D> in, TensorView<T, D> out) const {
    Kernel::template x_wt<T>(storage(which), placed(which), in, out, T(0), tile_rows_);
  }
  void backward_linear(T5Linear which, TensorView<const T, D> /*in*/, TensorView<const T, D> dout, TensorView<T, D> din,
                       T beta) const {
    Kernel::template dy_w<T>(storage(which), placed(which), dout, din, beta, tile_rows_);
  }

  // No parameters (see the header comment).
  template <class F>
  void visit_params(F&&, const std::string& = "") {}

 private:
  static constexpr const char* name() { return gated ? "QuantizedExpert<T5FFN<Gated>>" : "QuantizedExpert<T5FFN>"; }
  [[nodiscard]] const Storage& storage(T5Linear which) const {
    return which == T5Linear::wi ? wi_ : which == T5Linear::wi_1 ? wi_1_ : wo_;
  }
  [[nodiscard]] const typename Kernel::Placed& placed(T5Linear which) const {
    return which == T5Linear::wi ? wi_placed_ : which == T5Linear::wi_1 ? wi_1_placed_ : wo_placed_;
  }

  Config config_;
  Dropout<T, D> dropout_;
  Storage wi_, wi_1_, wo_;  // wi_ is wi_0 when gated; wi_1_ is empty unless gated (on the host, the reference)
  // Where D computes from (on the CPU nothing; on CUDA the device copies; wi_1_placed_ empty unless gated).
  [[no_unique_address]] typename Kernel::Placed wi_placed_;
  [[no_unique_address]] typename Kernel::Placed wi_1_placed_;
  [[no_unique_address]] typename Kernel::Placed wo_placed_;
  index_t tile_rows_ = quant::default_tile_rows;
};

template <class Act, class T, class D, class Format>
struct QuantizedOf<T5FFN<Act, T, D>, Format> {
  using type = QuantizedExpert<T5FFN<Act>, Format, T, D>;
};

// MoELayer<R, E, S, D, T> -> MoELayer<R, QuantizedExpert<E, Format>, S, D, T>: every routed
// expert quantised (the router and the shared expert are moved over unchanged; freeze the router
// with freeze_routed or TopKRouter<K, Frozen>). As with_lora, the new layer is first built with
// throwaway experts from a private Rng, which are then replaced.
template <quant::QuantFormat Format, class R, class E, class S, class D, class T>
[[nodiscard]] MoELayer<R, QuantizedExpert<E, Format>, S, D, T> with_quantized_experts(MoELayer<R, E, S, D, T>&& layer) {
  using Out = MoELayer<R, QuantizedExpert<E, Format>, S, D, T>;
  Rng scratch(0);
  Out out(layer.config(), scratch);
  out.router = std::move(layer.router);
  if constexpr (MoELayer<R, E, S, D, T>::has_shared) out.shared = std::move(layer.shared);
  for (std::size_t e = 0; e < layer.experts.size(); ++e)
    out.experts[e] = typename Out::ExpertT(std::move(layer.experts[e]));
  return out;
}

}  // namespace nexa
