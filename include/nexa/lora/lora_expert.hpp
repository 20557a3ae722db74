#pragma once
// LoRA<T5FFN<Act>> and LoRA<T5FFN<Gated<Act>>>: a T5 expert with an adapter on each linear
// (wi and wo, or wi_0, wi_1 and wo), as peft's target_modules = ["wi", "wo"] gives. It satisfies
// the Expert concept, so MoELayer<Router, LoRA<T5FFN<Relu>>> is a layer of LoRA experts:
//   experts.expert_0.wi.weight          (the frozen base, its own name)
//   experts.expert_0.wi.lora_A.weight   [r, d_model]
//   experts.expert_0.wi.lora_B.weight   [d_ff, r]
// Constructed from an ExpertConfig alone (what MoELayer does) it takes LoRAConfig's defaults;
// with_lora(layer, lora, rng) turns a (trained) MoELayer into one with LoRA experts of any config.
#include <string>
#include <utility>

#include "nexa/lora/lora_linear.hpp"
#include "nexa/moe/moe_layer.hpp"
#include "nexa/moe/t5_ffn.hpp"

namespace nexa {

namespace lora_detail {
// The activation of a T5FFN and whether it is gated.
template <class A>
struct ExpertAct {
  using type = A;
  static constexpr bool gated = false;
};
template <class A>
struct ExpertAct<Gated<A>> {
  using type = A;
  static constexpr bool gated = true;
};
}  // namespace lora_detail

template <class Act, class T0, class D0, class T, class D>
class LoRA<T5FFN<Act, T0, D0>, T, D> {
  static constexpr bool gated = lora_detail::ExpertAct<Act>::gated;
  using gated_act = typename lora_detail::ExpertAct<Act>::type;

 public:
  using BaseT = T5FFN<Act, T, D>;
  using Config = ExpertConfig;
  struct Cache {
    typename BaseT::Cache base;
    typename LoRAAdapter<T, D>::Cache wi, wi_1, wo;  // wi is wi_0 when gated
    bool merged = false;
  };
  template <class T2, class D2>
  using rebind = LoRA<T5FFN<Act, T0, D0>, T2, D2>;

  BaseT base;
  LoRAAdapter<T, D> wi;    // on base.wi, or base.wi_0 when gated
  LoRAAdapter<T, D> wi_1;  // gated only
  LoRAAdapter<T, D> wo;

  LoRA() = default;
  LoRA(const Config& config, Rng& rng) : LoRA(config, LoRAConfig{}, rng) {}
  LoRA(const Config& config, const LoRAConfig& lora, Rng& rng) : LoRA(BaseT(config, rng), lora, rng) {}
  // Wraps an existing (e.g. pretrained) expert, freezing it.
  LoRA(BaseT base_module, const LoRAConfig& lora, Rng& rng) : base(std::move(base_module)) {
    lora_detail::check_config(lora);
    const index_t d = base.config().d_model, f = base.config().d_ff;
    wi = LoRAAdapter<T, D>(d, f, lora, rng);
    if constexpr (gated) wi_1 = LoRAAdapter<T, D>(d, f, lora, rng);
    wo = LoRAAdapter<T, D>(f, d, lora, rng);
    lora_detail::freeze(base);
  }

  [[nodiscard]] const Config& config() const { return base.config(); }
  [[nodiscard]] const LoRAConfig& lora_config() const { return wi.config(); }
  [[nodiscard]] bool merged() const { return merged_; }
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

  // T5FFN's forward with each adapter's term added to its linear's output (skipped when merged).
  void forward_into(Tensor<T, D>&& x, Cache& cache, TensorView<T, D> y) {
    const index_t d = base.config().d_model, d_ff = base.config().d_ff;
    require(x.cols() == d, name(), "input's last axis expected ", d, ", got shape ", x.shape());
    require(y.rows() == x.rows() && y.cols() == d, name(), "output expected ", x.rows(), " x ", d, ", got ", y.shape());
    if (merged_) {  // the base alone computes the merged expert
      cache.merged = true;
      base.forward_into(std::move(x), cache.base, y);
      return;
    }
    cache.merged = false;
    auto& c = cache.base;
    c.input = std::move(x);
    const index_t n = c.input.rows();
    if constexpr (gated) {
      c.gate = Tensor<T, D>::uninitialized({n, d_ff});
      c.linear = Tensor<T, D>::uninitialized({n, d_ff});
      c.hidden = Tensor<T, D>::uninitialized({n, d_ff});
      if (n == 0) return;
      ops::gemm(c.input, Trans::N, base.wi_0.value, Trans::T, c.gate);
      wi.forward_add(c.input.cview(), cache.wi, c.gate.view());
      ops::gemm(c.input, Trans::N, base.wi_1.value, Trans::T, c.linear);
      wi_1.forward_add(c.input.cview(), cache.wi_1, c.linear.view());
      const T* a = c.gate.data();
      const T* b = c.linear.data();
      T* h = c.hidden.data();
      const index_t count = c.hidden.numel();
      NEXA_PARALLEL_FOR_IF(count > parallel_grain)
      for (index_t i = 0; i < count; ++i) h[i] = gated_act::value(a[i]) * b[i];
    } else {
      c.hidden = Tensor<T, D>::uninitialized({n, d_ff});
      if (n == 0) return;
      ops::gemm(c.input, Trans::N, base.wi.value, Trans::T, c.hidden);
      wi.forward_add(c.input.cview(), cache.wi, c.hidden.view());
      if constexpr (std::same_as<Act, Relu>) {
        nn_detail::apply_activation<Relu>(c.hidden.data(), c.hidden.numel());
      } else {
        c.pre = c.hidden;
        nn_detail::apply_activation<Act>(c.hidden.data(), c.hidden.numel());
      }
    }
    base.dropout().forward_inplace(c.hidden.data(), c.hidden.numel(), c.dropout);
    ops::gemm(c.hidden, Trans::N, base.wo.value, Trans::T, y);
    wo.forward_add(c.hidden.cview(), cache.wo, y);
  }

  void backward_into(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> dx) {
    require(!cache.merged, name(), "backward through merged adapters: unmerge() before training");
    auto& c = cache.base;
    const index_t n = c.input.rows(), d = base.config().d_model, d_ff = base.config().d_ff;
    require(dy.rows() == n && dy.cols() == d, name(), "dy expected ", n, " x ", d, ", got ", dy.shape());
    require(dx.rows() == n && dx.cols() == d, name(), "dx expected ", n, " x ", d, ", got ", dx.shape());
    if (n == 0) return;
    if (base.wo.trainable) ops::gemm(dy, Trans::T, c.hidden, Trans::N, base.wo.grad, T(1), T(1));
    auto dh = Tensor<T, D>::uninitialized({n, d_ff});
    ops::gemm(dy, Trans::N, base.wo.value, Trans::N, dh);
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
      if (base.wi_0.trainable) ops::gemm(dh, Trans::T, c.input, Trans::N, base.wi_0.grad, T(1), T(1));
      if (base.wi_1.trainable) ops::gemm(d_linear, Trans::T, c.input, Trans::N, base.wi_1.grad, T(1), T(1));
      ops::gemm(dh, Trans::N, base.wi_0.value, Trans::N, dx);
      ops::gemm(d_linear, Trans::N, base.wi_1.value, Trans::N, dx, T(1), T(1));
      wi.backward_add(c.input.cview(), dh.cview(), cache.wi, dx);
      wi_1.backward_add(c.input.cview(), d_linear.cview(), cache.wi_1, dx);
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
      if (base.wi.trainable) ops::gemm(dh, Trans::T, c.input, Trans::N, base.wi.grad, T(1), T(1));
      ops::gemm(dh, Trans::N, base.wi.value, Trans::N, dx);
      wi.backward_add(c.input.cview(), dh.cview(), cache.wi, dx);
    }
  }

  // Every base weight += scale * B A; the forward then runs the base alone.
  void merge() {
    require(!merged_, name(), "the adapters are already merged into the base weights");
    add_adapters(T(1));
    merged_ = true;
  }
  void unmerge() {
    require(merged_, name(), "unmerge of adapters that are not merged");
    add_adapters(T(-1));
    merged_ = false;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    base.visit_params(f, prefix);
    if constexpr (gated) {
      wi.visit_params(f, join_name(prefix, "wi_0"));
      wi_1.visit_params(f, join_name(prefix, "wi_1"));
    } else {
      wi.visit_params(f, join_name(prefix, "wi"));
    }
    wo.visit_params(f, join_name(prefix, "wo"));
  }

 private:
  static constexpr const char* name() { return gated ? "LoRA<T5FFN<Gated>>" : "LoRA<T5FFN>"; }

  template <class F>
  void for_each_adapter(F&& f) {
    f(wi);
    if constexpr (gated) f(wi_1);
    f(wo);
  }
  void add_adapters(T sign) {
    if constexpr (gated) {
      wi.add_to(base.wi_0.value, sign);
      wi_1.add_to(base.wi_1.value, sign);
    } else {
      wi.add_to(base.wi.value, sign);
    }
    wo.add_to(base.wo.value, sign);
  }

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
