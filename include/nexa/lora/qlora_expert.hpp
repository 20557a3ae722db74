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
#include <utility>

#include "nexa/lora/lora_expert.hpp"
#include "nexa/quant/quantized_expert.hpp"

namespace nexa {

template <class Act, class T0, class D0, quant::QuantFormat Format, class T1, class D1, class T, class D>
class LoRA<QuantizedExpert<T5FFN<Act, T0, D0>, Format, T1, D1>, T, D>
    : public lora_detail::T5ExpertAdapters<LoRA<QuantizedExpert<T5FFN<Act, T0, D0>, Format, T1, D1>, T, D>, Act,
                                           QuantizedExpert<T5FFN<Act>, Format, T, D>, T, D> {
  using Adapters = lora_detail::T5ExpertAdapters<LoRA, Act, QuantizedExpert<T5FFN<Act>, Format, T, D>, T, D>;

 public:
  using typename Adapters::BaseT;
  using typename Adapters::Cache;
  using typename Adapters::Config;
  template <class T2, class D2>
  using rebind = LoRA<QuantizedExpert<T5FFN<Act, T0, D0>, Format, T1, D1>, T2, D2>;

  using Adapters::Adapters;

  // QuantizedExpert's forward with each adapter's term added to its linear's output.
  void forward_into(Tensor<T, D>&& x, Cache& cache, TensorView<T, D> y) {
    require(this->base.wo().shape.rank() == 2, name(), "the expert holds no weights (default-constructed)");
    this->forward_adapted(name(), this->base, std::move(x), cache, y);
  }
  // dx, and the adapters' gradients (accumulated); the quantised base has none.
  void backward_into(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> dx) {
    this->backward_adapted(name(), this->base, dy, cache, dx);
  }

  // The dense expert this one computes: dequantised weights plus scale * B A.
  [[nodiscard]] typename BaseT::DenseT dequantized_with_adapters(Rng& rng) const {
    auto dense = this->base.dequantized(rng);
    this->add_adapters_to(dense, T(1));
    return dense;
  }

 private:
  static constexpr const char* name() {
    return Adapters::gated ? "LoRA<QuantizedExpert<Gated>>" : "LoRA<QuantizedExpert>";
  }
};

}  // namespace nexa
