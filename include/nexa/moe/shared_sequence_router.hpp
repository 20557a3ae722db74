#pragma once
// SharedSequenceRouter<Classifier, K>: one sequence classifier routes every MoE layer of a model
// (NEXA-MOE: the domain classifier picks a sequence's expert once, and each layer's FFN of that
// domain serves it). Each layer holds a SharedSequenceRouter attached to one
// SequenceClassifierRouter, the hub, which the model owns (a shared_ptr, so moving the model
// keeps the layers attached):
//
//   auto hub = std::make_shared<SequenceClassifierRouter<BertModel<>, 1>>(router_config, std::move(bert));
//   for (auto& block : stack.blocks) block.ffn.router.attach(hub);
//   hub->classify(batch);                    // once per batch
//   ... forward and backward through the layers ...
//   hub->backward_classifier();              // once, after every layer's backward
//   loss += hub->aux().total();               // the routing losses, counted once
//
// route() hands every token its sequence's routing; backward() only adds the layer's
// dL/dweights to the hub. The layers' caches report no auxiliary loss (the hub's aux() has it,
// once per batch rather than once per layer), and visit_params visits nothing: the hub's
// parameters belong to the model, once.
#include <memory>
#include <string>

#include "nexa/moe/sequence_router.hpp"

namespace nexa {

template <class Classifier, int K, class T = float, class D = cpu>
class SharedSequenceRouter {
 public:
  using Hub = SequenceClassifierRouter<Classifier, K, T, D>;
  using A = acc_t<T>;
  using Config = RouterConfig;
  static constexpr int k = K;
  using Cache = typename Hub::Cache;
  template <class T2, class D2>
  using rebind = SharedSequenceRouter<Classifier, K, T2, D2>;

  SharedSequenceRouter() = default;
  SharedSequenceRouter(const Config& config, Rng&) : config_(config) {
    require(config.num_experts >= K, "SharedSequenceRouter", "num_experts must be at least K = ", K, ", got ",
            config.num_experts);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] index_t num_experts() const { return config_.num_experts; }
  [[nodiscard]] const std::shared_ptr<Hub>& hub() const { return hub_; }

  void attach(std::shared_ptr<Hub> hub) {
    require(hub != nullptr, "SharedSequenceRouter", "attach needs a router, got a null pointer");
    require(hub->num_experts() == config_.num_experts, "SharedSequenceRouter", "the shared router must route to ",
            config_.num_experts, " experts (this layer's), got ", hub->num_experts());
    hub_ = std::move(hub);
  }

  // x: [B * S, d]: every token takes its sequence's routing from the hub's last classify().
  const Routing<A, D>& route(TensorView<const T, D> x, Cache& cache) {
    require(hub_ != nullptr, "SharedSequenceRouter", "no shared router attached: call attach first");
    const Routing<A, D>& routing = hub_->route(x, cache);
    cache.aux = {};  // counted once, by the hub
    return routing;
  }

  // Adds this layer's dL/dweights to the hub; the hub's backward_classifier() runs the classifier.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const A, D> d_weights, Cache&) {
    require(hub_ != nullptr, "SharedSequenceRouter", "no shared router attached: call attach first");
    hub_->accumulate_weight_grads(d_weights);
    return Tensor<T, D>({d_weights.dim(0), config_.d_model});
  }

  template <class F>
  void visit_params(F&&, const std::string& = "") {}

 private:
  Config config_;
  std::shared_ptr<Hub> hub_;
};

}  // namespace nexa
