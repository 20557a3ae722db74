#pragma once
// TopKRouter<K, Frozen|Trainable>: logits = W_r x in fp32 (or wider), softmax, top-k, optional
// renormalisation of the k weights, plus the Switch load-balancing and ST-MoE z-losses.
// A Frozen router stores and computes no gradient for W_r; the gradient still flows through the
// routing weights to the input.
#include <cstdint>
#include <optional>
#include <string>

#include "nexa/core/param.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/moe/config.hpp"
#include "nexa/moe/routing_head.hpp"
#include "nexa/ops/gemm.hpp"
#include "nexa/ops/routing.hpp"

namespace nexa {

struct Trainable {};
struct Frozen {};

template <int K, class Mode = Trainable, class T = float, class D = cpu>
class TopKRouter {
  static_assert(K >= 1, "TopKRouter: K must be at least 1");
  static_assert(std::same_as<Mode, Trainable> || std::same_as<Mode, Frozen>,
                "TopKRouter: Mode must be nexa::Trainable or nexa::Frozen");

 public:
  using A = acc_t<T>;
  using Config = RouterConfig;
  static constexpr int k = K;
  struct Cache : LogitRouting<A, D> {
    Tensor<A, D> input;  // [T, d] in the accumulation type; kept only when W_r is trainable
  };
  template <class T2, class D2>
  using rebind = TopKRouter<K, Mode, T2, D2>;

  Param<A, D> weight;  // [E, d]; named "classifier.weight" as in Switch Transformers

  TopKRouter() = default;
  TopKRouter(const Config& config, Rng& rng) : config_(config) {
    require(config.d_model > 0, "TopKRouter", "d_model must be positive, got ", config.d_model);
    require(config.num_experts >= K, "TopKRouter", "num_experts must be at least K = ", K, ", got ",
            config.num_experts);
    weight = Param<A, D>(Tensor<A, D>::randn({config.num_experts, config.d_model}, rng, config.init_std),
                         std::same_as<Mode, Trainable>);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] index_t num_experts() const { return config_.num_experts; }
  [[nodiscard]] bool renormalize() const { return renormalizes(config_, K); }

  // x: [T, d]. Fills cache.routing and cache.aux.
  const Routing<A, D>& route(TensorView<const T, D> x, Cache& cache) {
    require(x.cols() == config_.d_model, "TopKRouter", "input's last axis expected ", config_.d_model, ", got shape ",
            x.shape());
    [[maybe_unused]] const FullPrecisionGemms<D> fp32_routing;  // routing stays fp32 under mixed-precision GEMMs
    cache.logits = Tensor<A, D>::uninitialized({x.rows(), config_.num_experts});
    // x is copied (and widened) only when it must be: to be kept for dW_r, or to reach fp32.
    if constexpr (std::same_as<A, T>) {
      const TensorView<const A, D> rows = x.reshaped({x.rows(), x.cols()});
      ops::gemm(rows, Trans::N, weight.value, Trans::T, cache.logits);
      cache.input = weight.trainable ? clone(rows) : Tensor<A, D>();
    } else {
      Tensor<A, D> xa = convert_rows<A>(x);
      ops::gemm(xa, Trans::N, weight.value, Trans::T, cache.logits);
      cache.input = weight.trainable ? std::move(xa) : Tensor<A, D>();
    }
    route_logits(cache, config_, K);
    return cache.routing;
  }

  // Given dL/dweights [T, K], accumulates dW_r (when trainable) including the auxiliary losses'
  // gradients, and returns this router's contribution to dL/dx.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const A, D> d_weights, Cache& cache) {
    [[maybe_unused]] const FullPrecisionGemms<D> fp32_routing;
    const Tensor<A, D> d_logits = logits_backward(cache, config_, K, d_weights);
    if (weight.trainable) {
      require(!cache.input.empty() || d_logits.rows() == 0, "TopKRouter",
              "backward needs the input, which was not kept because W_r was frozen during forward");
      ops::gemm(d_logits, Trans::T, cache.input, Trans::N, weight.grad, A(1), A(1));
    }
    return convert<T>(ops::matmul(d_logits, Trans::N, weight.value, Trans::N));
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "classifier.weight"), weight);
  }

 private:
  Config config_;
};

}  // namespace nexa
