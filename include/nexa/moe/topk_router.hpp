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
#include "nexa/moe/aux_loss.hpp"
#include "nexa/moe/config.hpp"
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
  struct Cache {
    Tensor<A, D> input;   // [T, d] in the accumulation type; kept only when W_r is trainable
    Tensor<A, D> logits;  // [T, E]
    Routing<A, D> routing;
    AuxLosses aux;
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
  // Top-1 is never renormalised: its weight would be the constant 1, cutting the router off from
  // the task gradient. Switch Transformers scales the expert output by the raw probability.
  [[nodiscard]] bool renormalize() const { return config_.renormalize && K > 1; }

  // x: [T, d]. Fills cache.routing and cache.aux.
  const Routing<A, D>& route(TensorView<const T, D> x, Cache& cache) {
    require(x.cols() == config_.d_model, "TopKRouter", "input's last axis expected ", config_.d_model, ", got shape ",
            x.shape());
    Tensor<A, D> xa = to_acc(x);
    cache.logits = Tensor<A, D>::uninitialized({xa.rows(), config_.num_experts});
    ops::gemm(xa, Trans::N, weight.value, Trans::T, cache.logits);
    cache.routing = ops::softmax_topk(cache.logits, K, renormalize());
    cache.aux.load_balance =
        load_balance_loss<A>(cache.routing.probs, cache.routing.experts, config_.load_balance_coef, nullptr);
    cache.aux.z_loss = z_loss<A>(cache.logits, cache.routing.probs, config_.z_loss_coef, nullptr);
    cache.input = weight.trainable ? std::move(xa) : Tensor<A, D>();
    return cache.routing;
  }

  // Given dL/dweights [T, K], accumulates dW_r (when trainable) including the auxiliary losses'
  // gradients, and returns this router's contribution to dL/dx.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const A, D> d_weights, Cache& cache) {
    const Routing<A, D>& r = cache.routing;
    Tensor<A, D> d_probs(r.probs.shape());
    (void)load_balance_loss<A>(r.probs, r.experts, config_.load_balance_coef, &d_probs);
    Tensor<A, D> d_logits = ops::softmax_topk_backward<A, D>(r, d_weights, d_probs.cview(), renormalize());
    (void)z_loss<A>(cache.logits, r.probs, config_.z_loss_coef, &d_logits);
    if (weight.trainable) {
      require(!cache.input.empty() || d_logits.rows() == 0, "TopKRouter",
              "backward needs the input, which was not kept because W_r was frozen during forward");
      ops::gemm(d_logits, Trans::T, cache.input, Trans::N, weight.grad, A(1), A(1));
    }
    return from_acc(ops::matmul(d_logits, Trans::N, weight.value, Trans::N));
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "classifier.weight"), weight);
  }

 private:
  static Tensor<A, D> to_acc(TensorView<const T, D> x) {
    if constexpr (std::same_as<A, T>) {
      Tensor<A, D> out = clone(x);
      out.reshape({x.rows(), x.cols()});
      return out;
    } else {
      auto out = Tensor<A, D>::uninitialized({x.rows(), x.cols()});
      for (index_t i = 0; i < x.numel(); ++i) out.data()[i] = static_cast<A>(x.data()[i]);
      return out;
    }
  }
  static Tensor<T, D> from_acc(Tensor<A, D> x) {
    if constexpr (std::same_as<A, T>) {
      return x;
    } else {
      auto out = Tensor<T, D>::uninitialized(x.shape());
      for (index_t i = 0; i < x.numel(); ++i) out.data()[i] = static_cast<T>(x.data()[i]);
      return out;
    }
  }

  Config config_;
};

}  // namespace nexa
