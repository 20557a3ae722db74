#pragma once
// SharedExpert<Expert, FixedScale|LearnableScale>: an always-active expert whose output is added
// to the routed output with a scale, out = routed + scale * shared (NEXUS; the scale is fixed at
// 0.2 there). NoShared is the "no shared expert" policy.
#include <string>

#include "nexa/core/param.hpp"
#include "nexa/moe/config.hpp"

namespace nexa {

struct FixedScale {};
struct LearnableScale {};

struct NoShared {
  struct Cache {};
  template <class T2, class D2>
  using rebind = NoShared;
};

template <class Expert, class ScaleMode = FixedScale, class T = float, class D = cpu>
class SharedExpert {
  static_assert(std::same_as<ScaleMode, FixedScale> || std::same_as<ScaleMode, LearnableScale>,
                "SharedExpert: ScaleMode must be nexa::FixedScale or nexa::LearnableScale");

 public:
  using ExpertModule = typename Expert::template rebind<T, D>;
  struct Config {
    ExpertConfig expert;
    double scale = 0.2;
  };
  struct Cache {
    typename ExpertModule::Cache expert;
    Tensor<T, D> expert_out;  // unscaled; kept only when the scale is learnable
  };
  template <class T2, class D2>
  using rebind = SharedExpert<Expert, ScaleMode, T2, D2>;

  ExpertModule expert;
  Param<T, D> scale;  // one element; trainable only with LearnableScale

  SharedExpert() = default;
  SharedExpert(const Config& config, Rng& rng)
      : expert(config.expert, rng),
        scale(Tensor<T, D>::full({1}, static_cast<T>(config.scale)), std::same_as<ScaleMode, LearnableScale>) {}

  [[nodiscard]] T scale_value() const { return scale.value.to_host()[0]; }
  void set_training(bool on) {
    if constexpr (requires { expert.set_training(on); }) expert.set_training(on);
  }
  template <class F>
  void visit_dropouts(F&& f) {
    if constexpr (requires { expert.visit_dropouts(f); }) expert.visit_dropouts(f);
  }

  // Returns scale * Expert(x).
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) {
    Tensor<T, D> y = expert.forward(x, cache.expert);
    if (scale.trainable) cache.expert_out = y;
    const T s = scale_value();
    for (index_t i = 0; i < y.numel(); ++i) y.data()[i] *= s;
    return y;
  }

  // dy is the gradient of the layer output (scale is applied here).
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    const T s = scale_value();
    if (scale.trainable) {
      T ds = 0;
      for (index_t i = 0; i < dy.numel(); ++i) ds += dy.data()[i] * cache.expert_out.data()[i];
      scale.grad.data()[0] += ds;
    }
    Tensor<T, D> scaled = clone(dy);
    for (index_t i = 0; i < scaled.numel(); ++i) scaled.data()[i] *= s;
    return expert.backward(scaled, cache.expert);
  }

  // Names follow Qwen2-MoE's "shared_expert.*"; the scale is "<prefix>.scale".
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    expert.visit_params(f, prefix);
    f(join_name(prefix, "scale"), scale);
  }
};

}  // namespace nexa
