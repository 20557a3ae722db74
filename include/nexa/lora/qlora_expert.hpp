#pragma once
// LoRA<QuantizedExpert<T5FFN<Act>, Format>>: QLoRA on a T5 expert. The expert's linears (wi and
// wo, or wi_0, wi_1 and wo when gated) stay quantised (NF4, Int8, MXFP4) and frozen; each gets a
// floating-point LoRA adapter, as LoRA<T5FFN<Act>> does for a dense expert, under the same peft
// names:
//   experts.expert_0.wi.lora_A.weight   [r, d_model]
//   experts.expert_0.wi.lora_B.weight   [d_ff, r]
// The quantised base has no parameters (QuantizedExpert's visit_params visits nothing), so
// optimizers, save_adapters and load_adapters see the adapters alone. It satisfies the Expert
// concept: MoELayer<Router, LoRA<QuantizedExpert<T5FFN<Relu>, NF4>>> is a layer of QLoRA experts,
// and with_lora(with_quantized_experts<NF4>(std::move(layer)), lora, rng) builds one from a
// trained dense layer. There is no merge: B A cannot be added to NF4 codes without requantising
// (dequantized_with_adapters() gives the dense expert the adapters compute with, to merge there).
#include <concepts>
#include <string>
#include <utility>

#include "nexa/lora/lora_expert.hpp"
#include "nexa/lora/lora_linear.hpp"
#include "nexa/quant/quantized_expert.hpp"

namespace nexa {

template <class Act, class T0, class D0, quant::QuantFormat Format, class T1, class D1, class T, class D>
class LoRA<QuantizedExpert<T5FFN<Act, T0, D0>, Format, T1, D1>, T, D> {
  static constexpr bool gated = quant_detail::ExpertAct<Act>::gated;
  using gated_act = typename quant_detail::ExpertAct<Act>::type;

 public:
  using BaseT = QuantizedExpert<T5FFN<Act>, Format, T, D>;
  using Config = ExpertConfig;
  struct Cache {
    typename BaseT::Cache base;
    typename LoRAAdapter<T, D>::Cache wi, wi_1, wo;  // wi is wi_0 when gated
  };
  template <class T2, class D2>
  using rebind = LoRA<QuantizedExpert<T5FFN<Act, T0, D0>, Format, T1, D1>, T2, D2>;

  BaseT base;
  LoRAAdapter<T, D> wi;    // on base.wi(), or wi_0 when gated
  LoRAAdapter<T, D> wi_1;  // gated only
  LoRAAdapter<T, D> wo;

  LoRA() = default;
  LoRA(const Config& config, Rng& rng) : LoRA(config, LoRAConfig{}, rng) {}
  LoRA(const Config& config, const LoRAConfig& lora, Rng& rng) : LoRA(BaseT(config, rng), lora, rng) {}
  // Wraps a quantised (e.g. pretrained, then quantised) expert.
  LoRA(BaseT base_module, const LoRAConfig& lora, Rng& rng) : base(std::move(base_module)) {
    lora_detail::check_config(lora);
    const index_t d = base.config().d_model, f = base.config().d_ff;
    wi = LoRAAdapter<T, D>(d, f, lora, rng);
    if constexpr (gated) wi_1 = LoRAAdapter<T, D>(d, f, lora, rng);
    wo = LoRAAdapter<T, D>(f, d, lora, rng);
  }

  [[nodiscard]] const Config& config() const { return base.config(); }
  [[nodiscard]] const LoRAConfig& lora_config() const { return wi.config(); }
  void set_training(bool on) {
    base.set_training(on);
    for_each_adapter([&](LoRAAdapter<T, D>& a) { a.set_training(on); });
  }
  template <class F>
  void visit_dropouts(F&& f) {
    base.visit_dropouts(f);
    for_each_adapter([&](LoRAAdapter<T, D>& a) { f(a.dropout()); });
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

  // QuantizedExpert's forward with each adapter's term added to its linear's output.
  void forward_into(Tensor<T, D>&& x, Cache& cache, TensorView<T, D> y) {
    const index_t d = base.config().d_model, d_ff = base.config().d_ff;
    require(base.wo().shape.rank() == 2, name(), "the expert holds no weights (default-constructed)");
    require(x.cols() == d, name(), "input's last axis expected ", d, ", got shape ", x.shape());
    require(y.rows() == x.rows() && y.cols() == d, name(), "output expected ", x.rows(), " x ", d, ", got ", y.shape());
    auto& c = cache.base;
    c.input = std::move(x);
    const index_t n = c.input.rows(), tile = base.tile_rows();
    const TensorView<const T, D> in(c.input.data(), {n, d});
    if constexpr (gated) {
      c.gate = Tensor<T, D>::uninitialized({n, d_ff});
      c.linear = Tensor<T, D>::uninitialized({n, d_ff});
      c.hidden = Tensor<T, D>::uninitialized({n, d_ff});
      if (n == 0) return;
      quant::gemm_x_wt<Format>(base.wi(), in, c.gate.view(), T(0), tile);
      wi.forward_add(in, cache.wi, c.gate.view());
      quant::gemm_x_wt<Format>(base.wi_1(), in, c.linear.view(), T(0), tile);
      wi_1.forward_add(in, cache.wi_1, c.linear.view());
      const T* a = c.gate.data();
      const T* b = c.linear.data();
      T* h = c.hidden.data();
      const index_t count = c.hidden.numel();
      NEXA_PARALLEL_FOR_IF(count > parallel_grain)
      for (index_t i = 0; i < count; ++i) h[i] = gated_act::value(a[i]) * b[i];
    } else {
      c.hidden = Tensor<T, D>::uninitialized({n, d_ff});
      if (n == 0) return;
      quant::gemm_x_wt<Format>(base.wi(), in, c.hidden.view(), T(0), tile);
      wi.forward_add(in, cache.wi, c.hidden.view());
      if constexpr (std::same_as<Act, Relu>) {
        nn_detail::apply_activation<Relu>(c.hidden.data(), c.hidden.numel());
      } else {
        c.pre = c.hidden;
        nn_detail::apply_activation<Act>(c.hidden.data(), c.hidden.numel());
      }
    }
    base.dropout().forward_inplace(c.hidden.data(), c.hidden.numel(), c.dropout);
    quant::gemm_x_wt<Format>(base.wo(), c.hidden.cview(), y, T(0), tile);
    wo.forward_add(c.hidden.cview(), cache.wo, y);
  }

  // dx, and the adapters' gradients (accumulated); the quantised base has none.
  void backward_into(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> dx) {
    auto& c = cache.base;
    const index_t n = c.input.rows(), d = base.config().d_model, d_ff = base.config().d_ff, tile = base.tile_rows();
    require(dy.rows() == n && dy.cols() == d, name(), "dy expected ", n, " x ", d, ", got ", dy.shape());
    require(dx.rows() == n && dx.cols() == d, name(), "dx expected ", n, " x ", d, ", got ", dx.shape());
    if (n == 0) return;
    const TensorView<const T, D> in(c.input.data(), {n, d});
    auto dh = Tensor<T, D>::uninitialized({n, d_ff});
    quant::gemm_dy_w<Format>(base.wo(), dy, dh.view(), T(0), tile);
    wo.backward_add(c.hidden.cview(), dy, cache.wo, dh.view());
    base.dropout().backward_inplace(dh.data(), dh.numel(), c.dropout);
    T* g = dh.data();
    const index_t count = dh.numel();
    if constexpr (gated) {
      auto d_linear = Tensor<T, D>::uninitialized({n, d_ff});
      T* dl = d_linear.data();
      const T* a = c.gate.data();
      const T* b = c.linear.data();
      NEXA_PARALLEL_FOR_IF(count > parallel_grain)
      for (index_t i = 0; i < count; ++i) {
        const T dhi = g[i];
        dl[i] = dhi * gated_act::value(a[i]);
        g[i] = dhi * b[i] * gated_act::derivative(a[i]);
      }
      quant::gemm_dy_w<Format>(base.wi(), dh.cview(), dx, T(0), tile);
      quant::gemm_dy_w<Format>(base.wi_1(), d_linear.cview(), dx, T(1), tile);
      wi.backward_add(in, dh.cview(), cache.wi, dx);
      wi_1.backward_add(in, d_linear.cview(), cache.wi_1, dx);
    } else {
      if constexpr (std::same_as<Act, Relu>) {
        const T* h = c.hidden.data();
        NEXA_PARALLEL_FOR_IF(count > parallel_grain)
        for (index_t i = 0; i < count; ++i) g[i] = h[i] > T(0) ? g[i] : T(0);
      } else {
        const T* a = c.pre.data();
        NEXA_PARALLEL_FOR_IF(count > parallel_grain)
        for (index_t i = 0; i < count; ++i) g[i] *= Act::derivative(a[i]);
      }
      quant::gemm_dy_w<Format>(base.wi(), dh.cview(), dx, T(0), tile);
      wi.backward_add(in, dh.cview(), cache.wi, dx);
    }
  }

  // The dense expert this one computes: dequantised weights plus scale * B A.
  [[nodiscard]] typename BaseT::DenseT dequantized_with_adapters(Rng& rng) const {
    auto dense = base.dequantized(rng);
    if constexpr (gated) {
      wi.add_to(dense.wi_0.value, T(1));
      wi_1.add_to(dense.wi_1.value, T(1));
    } else {
      wi.add_to(dense.wi.value, T(1));
    }
    wo.add_to(dense.wo.value, T(1));
    return dense;
  }

  // The adapters only, under the dense expert's linear names (wi or wi_0, wi_1, wo).
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    if constexpr (gated) {
      wi.visit_params(f, join_name(prefix, "wi_0"));
      wi_1.visit_params(f, join_name(prefix, "wi_1"));
    } else {
      wi.visit_params(f, join_name(prefix, "wi"));
    }
    wo.visit_params(f, join_name(prefix, "wo"));
  }

 private:
  static constexpr const char* name() { return gated ? "LoRA<QuantizedExpert<Gated>>" : "LoRA<QuantizedExpert>"; }

  template <class F>
  void for_each_adapter(F&& f) {
    f(wi);
    if constexpr (gated) f(wi_1);
    f(wo);
  }
};

}  // namespace nexa
