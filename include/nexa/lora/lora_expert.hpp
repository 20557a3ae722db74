#pragma once
// LoRA<T5FFN<Act>> and LoRA<T5FFN<Gated<Act>>>: a T5 expert with an adapter on each linear
// (wi and wo, or wi_0, wi_1 and wo), as peft's target_modules = ["wi", "wo"] gives. It satisfies
// the Expert concept, so MoELayer<Router, LoRA<T5FFN<Relu>>> is a layer of LoRA experts:
//   experts.expert_0.wi.weight          (the frozen base, its own name)
//   experts.expert_0.wi.lora_A.weight   [r, d_model]
//   experts.expert_0.wi.lora_B.weight   [d_ff, r]
// Constructed from an ExpertConfig alone (what MoELayer does) it takes LoRAConfig's defaults;
// with_lora(layer, lora, rng) turns a (trained) MoELayer into one with LoRA experts of any config.
// lora_detail::T5ExpertAdapters holds what it shares with LoRA<QuantizedExpert<T5FFN<Act>, F>>
// (lora/qlora_expert.hpp): the adapters, and the pass (moe/t5_expert_pass.hpp) with their terms.
#include <string>
#include <utility>

#include "nexa/lora/lora_linear.hpp"
#include "nexa/moe/moe_layer.hpp"
#include "nexa/moe/t5_expert_pass.hpp"
#include "nexa/moe/t5_ffn.hpp"

namespace nexa {

namespace lora_detail {
template <class A>
using ExpertAct = t5_pass::ExpertAct<A>;

// A T5 expert (Base: T5FFN<Act, T, D> or a quantised one with the same Cache) with a LoRA adapter
// on each linear. Derived provides forward_into and backward_into, which run the pass over its
// base's linears through forward_adapted and backward_adapted.
template <class Derived, class Act, class Base, class T, class D>
class T5ExpertAdapters {
 protected:
  static constexpr bool gated = ExpertAct<Act>::gated;
  using Pass = t5_pass::T5ExpertPass<Act, T, D>;

 public:
  using BaseT = Base;
  using Config = ExpertConfig;
  struct Cache {
    typename BaseT::Cache base;
    typename LoRAAdapter<T, D>::Cache wi, wi_1, wo;  // wi is wi_0 when gated
    bool merged = false;
  };

  BaseT base;
  LoRAAdapter<T, D> wi;    // on base's wi, or wi_0 when gated
  LoRAAdapter<T, D> wi_1;  // gated only
  LoRAAdapter<T, D> wo;

  T5ExpertAdapters() = default;
  T5ExpertAdapters(const Config& config, Rng& rng) : T5ExpertAdapters(config, LoRAConfig{}, rng) {}
  T5ExpertAdapters(const Config& config, const LoRAConfig& lora, Rng& rng)
      : T5ExpertAdapters(BaseT(config, rng), lora, rng) {}
  // Wraps an existing (e.g. pretrained) expert, freezing it (a quantised one has no parameters).
  T5ExpertAdapters(BaseT base_module, const LoRAConfig& lora, Rng& rng) : base(std::move(base_module)) {
    check_config(lora);
    const index_t d = base.config().d_model, f = base.config().d_ff;
    wi = LoRAAdapter<T, D>(d, f, lora, rng);
    if constexpr (gated) wi_1 = LoRAAdapter<T, D>(d, f, lora, rng);
    wo = LoRAAdapter<T, D>(f, d, lora, rng);
    freeze(base);
  }

  [[nodiscard]] const Config& config() const { return base.config(); }
  [[nodiscard]] const LoRAConfig& lora_config() const { return wi.config(); }
  void set_training(bool on) {
    base.set_training(on);
    for_each_adapter([&](T5Linear, LoRAAdapter<T, D>& a) { a.set_training(on); });
  }
  template <class F>
  void visit_dropouts(F&& f) {
    base.visit_dropouts(f);
    for_each_adapter([&](T5Linear, LoRAAdapter<T, D>& a) { f(a.dropout()); });
  }

  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) { return forward(clone(x), cache); }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, Cache& cache) {
    auto y = Tensor<T, D>::uninitialized(x.shape());
    static_cast<Derived&>(*this).forward_into(std::move(x), cache, y.view());
    return y;
  }
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    auto dx = Tensor<T, D>::uninitialized(dy.shape());
    static_cast<Derived&>(*this).backward_into(dy, cache, dx.view());
    return dx;
  }

  // The base's parameters (none when quantised), then the adapters under the dense expert's
  // linear names (wi or wi_0, wi_1, wo).
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    base.visit_params(f, prefix);
    for_each_adapter([&](T5Linear which, LoRAAdapter<T, D>& a) {
      const char* linear = which == T5Linear::wo ? "wo" : which == T5Linear::wi_1 ? "wi_1" : gated ? "wi_0" : "wi";
      a.visit_params(f, join_name(prefix, linear));
    });
  }

 protected:
  // The pass over the base's linears with each adapter's term added to its linear's output.
  template <class Linears>
  void forward_adapted(const char* name, Linears&& linears, Tensor<T, D>&& x, Cache& cache, TensorView<T, D> y) {
    cache.merged = false;
    Pass::forward_into(name, linears, Terms{*this, cache}, std::move(x), cache.base, y);
  }
  template <class Linears>
  void backward_adapted(const char* name, Linears&& linears, TensorView<const T, D> dy, Cache& cache,
                        TensorView<T, D> dx) {
    Pass::backward_into(name, linears, Terms{*this, cache}, dy, cache.base, dx);
  }

  // Every weight of `dense` (the base's layout) += sign * scale * B A.
  void add_adapters_to(T5FFN<Act, T, D>& dense, T sign) const {
    t5_pass::DenseLinears<Act, T, D> linears{dense};
    wi.add_to(linears.weight(T5Linear::wi).value, sign);
    if constexpr (gated) wi_1.add_to(linears.weight(T5Linear::wi_1).value, sign);
    wo.add_to(linears.weight(T5Linear::wo).value, sign);
  }

 private:
  // The adapters as the pass's extra terms, with their caches.
  struct Terms {
    T5ExpertAdapters& m;
    Cache& cache;
    void forward_add(T5Linear which, TensorView<const T, D> in, TensorView<T, D> out) {
      m.adapter(which).forward_add(in, adapter_cache(cache, which), out);
    }
    void backward_add(T5Linear which, TensorView<const T, D> in, TensorView<const T, D> dout, TensorView<T, D> din) {
      m.adapter(which).backward_add(in, dout, adapter_cache(cache, which), din);
    }
  };

  [[nodiscard]] LoRAAdapter<T, D>& adapter(T5Linear which) {
    return which == T5Linear::wi ? wi : which == T5Linear::wi_1 ? wi_1 : wo;
  }
  static typename LoRAAdapter<T, D>::Cache& adapter_cache(Cache& c, T5Linear which) {
    return which == T5Linear::wi ? c.wi : which == T5Linear::wi_1 ? c.wi_1 : c.wo;
  }
  template <class F>
  void for_each_adapter(F&& f) {
    f(T5Linear::wi, wi);
    if constexpr (gated) f(T5Linear::wi_1, wi_1);
    f(T5Linear::wo, wo);
  }
};
}  // namespace lora_detail

template <class Act, class T0, class D0, class T, class D>
class LoRA<T5FFN<Act, T0, D0>, T, D>
    : public lora_detail::T5ExpertAdapters<LoRA<T5FFN<Act, T0, D0>, T, D>, Act, T5FFN<Act, T, D>, T, D> {
  using Adapters = lora_detail::T5ExpertAdapters<LoRA, Act, T5FFN<Act, T, D>, T, D>;

 public:
  using typename Adapters::BaseT;
  using typename Adapters::Cache;
  using typename Adapters::Config;
  template <class T2, class D2>
  using rebind = LoRA<T5FFN<Act, T0, D0>, T2, D2>;

  using Adapters::Adapters;

  [[nodiscard]] bool merged() const { return merged_; }

  // T5FFN's forward with each adapter's term added to its linear's output (skipped when merged).
  void forward_into(Tensor<T, D>&& x, Cache& cache, TensorView<T, D> y) {
    if (!merged_) {
      this->forward_adapted(name(), linears(), std::move(x), cache, y);
      return;
    }
    Adapters::Pass::check_forward(name(), this->config(), x, y);
    cache.merged = true;  // the base alone computes the merged expert
    this->base.forward_into(std::move(x), cache.base, y);
  }
  void backward_into(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> dx) {
    require(!cache.merged, name(), "backward through merged adapters: unmerge() before training");
    this->backward_adapted(name(), linears(), dy, cache, dx);
  }

  // Every base weight += scale * B A; the forward then runs the base alone.
  void merge() {
    require(!merged_, name(), "the adapters are already merged into the base weights");
    this->add_adapters_to(this->base, T(1));
    merged_ = true;
  }
  void unmerge() {
    require(merged_, name(), "unmerge of adapters that are not merged");
    this->add_adapters_to(this->base, T(-1));
    merged_ = false;
  }

 private:
  static constexpr const char* name() { return Adapters::gated ? "LoRA<T5FFN<Gated>>" : "LoRA<T5FFN>"; }
  [[nodiscard]] t5_pass::DenseLinears<Act, T, D> linears() { return {this->base}; }

  bool merged_ = false;
};

// MoELayer<R, E, S, D, T> -> MoELayer<R, LoRA<E>, S, D, T>: every expert wrapped (its weights
// moved in, frozen) with fresh adapters drawn from `rng`. The router and the shared expert are
// moved over and frozen too, as peft freezes everything but the adapters; unfreeze them through
// visit_params to train them alongside. (The new layer is first built with throwaway experts
// from a private Rng, then those are replaced: `rng` draws only the adapters.)
template <class R, class E, class S, class D, class T>
[[nodiscard]] MoELayer<R, LoRA<E>, S, D, T> with_lora(MoELayer<R, E, S, D, T>&& layer, const LoRAConfig& lora,
                                                      Rng& rng) {
  lora_detail::check_config(lora);
  Rng scratch(0);
  MoELayer<R, LoRA<E>, S, D, T> out(layer.config(), scratch);
  out.router = std::move(layer.router);
  lora_detail::freeze(out.router);
  if constexpr (MoELayer<R, E, S, D, T>::has_shared) {
    out.shared = std::move(layer.shared);
    lora_detail::freeze(out.shared);
  }
  for (std::size_t e = 0; e < layer.experts.size(); ++e)
    out.experts[e] = typename MoELayer<R, LoRA<E>, S, D, T>::ExpertT(std::move(layer.experts[e]), lora, rng);
  return out;
}

}  // namespace nexa
