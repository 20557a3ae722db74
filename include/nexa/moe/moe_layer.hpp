#pragma once
// MoELayer<Router, Expert, Shared = NoShared, Device = cpu, T = float>: a dropless
// Mixture-of-Experts layer. Every token reaches its k experts; tokens are grouped by expert so
// each expert runs one GEMM-shaped pass over its tokens; the weighted combine sums in a fixed
// order (choice j = 0..k-1), so outputs are bitwise identical across runs and thread counts.
// The router's auxiliary losses are part of the layer's objective: cache.aux_loss() reports them
// and backward() includes their gradients.
#include <cmath>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "nexa/core/scalar.hpp"
#include "nexa/moe/aux_loss.hpp"
#include "nexa/moe/combine_backward.hpp"
#include "nexa/moe/concepts.hpp"
#include "nexa/moe/config.hpp"
#include "nexa/moe/grouped_t5_ffn.hpp"
#include "nexa/moe/shared_expert.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/routing.hpp"

namespace nexa {

template <Router R, Expert E, SharedPolicy S = NoShared, Device D = cpu, class T = float>
class MoELayer {
 public:
  using RouterT = typename R::template rebind<T, D>;
  using ExpertT = typename E::template rebind<T, D>;
  using SharedT = typename S::template rebind<T, D>;
  using A = acc_t<T>;
  using Config = MoEConfig;
  static constexpr bool has_shared = !std::same_as<SharedT, NoShared>;
  static constexpr int k = RouterT::k;
  static constexpr bool grouped = GroupedExpertType<ExpertT>;

  struct Cache {
    typename RouterT::Cache router;
    DispatchPlan<D> plan;
    // Grouped experts (moe/grouped_t5_ffn.hpp) share one cache; others keep one each.
    expert_caches_t<ExpertT> experts;
    Tensor<T, D> expert_out;  // [slots, d] in the plan's slot order (slots = T * k when dropless)
    typename SharedT::Cache shared;
    Shape input_shape;

    // Auxiliary losses (already multiplied by their coefficients) of the last forward.
    [[nodiscard]] double aux_loss() const { return router.aux.total(); }
    [[nodiscard]] const AuxLosses& aux() const { return router.aux; }
    // Tokens routed to each expert (counting each of a token's k choices).
    [[nodiscard]] std::vector<index_t> tokens_per_expert() const {
      std::vector<index_t> n;
      for (index_t e = 0; e + 1 < static_cast<index_t>(plan.offsets.size()); ++e) n.push_back(plan.tokens_of(e));
      return n;
    }
  };
  template <class T2, class D2>
  using rebind = MoELayer<R, E, S, D2, T2>;

  RouterT router;
  std::vector<ExpertT> experts;
  [[no_unique_address]] std::conditional_t<has_shared, SharedT, NoShared> shared;

  MoELayer() = default;
  MoELayer(const Config& config, Rng& rng) : config_(config) {
    require(config.num_experts >= k, "MoELayer", "num_experts must be at least k = ", k, ", got ", config.num_experts);
    require(config.d_model > 0 && config.d_ff > 0, "MoELayer", "d_model and d_ff must be positive, got ",
            config.d_model, " and ", config.d_ff);
    require(config.capacity_factor >= 0, "MoELayer", "capacity_factor must be 0 (dropless) or positive, got ",
            config.capacity_factor);
    router = RouterT(config.router(), rng);
    experts.reserve(static_cast<std::size_t>(config.num_experts));
    for (index_t e = 0; e < config.num_experts; ++e) experts.emplace_back(config.expert(), rng);
    if constexpr (has_shared) shared = SharedT({config.expert(), config.shared_scale}, rng);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] index_t num_experts() const { return static_cast<index_t>(experts.size()); }
  // Assignments each expert may take for a batch of `tokens` (-1: no limit, dropless).
  [[nodiscard]] index_t capacity(index_t tokens) const {
    if (config_.capacity_factor <= 0) return -1;
    return static_cast<index_t>(
        std::ceil(config_.capacity_factor * static_cast<double>(tokens * k) / static_cast<double>(num_experts())));
  }

  // Appends an expert after training (routers with domain embeddings, e.g. NexusRouter): the
  // router scores it from `domain_embedding` at once, and existing tokens change route only where
  // the new expert outranks one of their k choices.
  template <class Embedding>
  requires requires(RouterT& r, const Embedding& e) { r.add_expert(read_view(e)); }
  void add_expert(const Embedding& domain_embedding, ExpertT expert) {
    require(expert.config().d_model == config_.d_model, "MoELayer", "a new expert's d_model expected ", config_.d_model,
            ", got ", expert.config().d_model);
    router.add_expert(read_view(domain_embedding));
    experts.push_back(std::move(expert));
    ++config_.num_experts;
  }

  // Dropout on or off in every expert.
  void set_training(bool on) {
    for (auto& e : experts)
      if constexpr (requires { e.set_training(on); }) e.set_training(on);
    if constexpr (has_shared) shared.set_training(on);
  }
  // Calls f(Dropout&) for every dropout inside (what gradient checkpointing rewinds to replay a forward).
  template <class F>
  void visit_dropouts(F&& f) {
    for (auto& e : experts)
      if constexpr (requires { e.visit_dropouts(f); }) e.visit_dropouts(f);
    if constexpr (has_shared) shared.visit_dropouts(f);
  }

  // x: [..., d_model] -> same shape.
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) {
    require(x.rank() >= 1 && x.cols() == config_.d_model, "MoELayer", "input's last axis expected ", config_.d_model,
            ", got shape ", x.shape());
    const index_t tokens = x.rows(), d = config_.d_model;
    const TensorView<const T, D> flat = x.reshaped({tokens, d});
    cache.input_shape = x.shape();

    const Routing<A, D>& routing = router.route(flat, cache.router);
    cache.plan = ops::group_by_expert(routing.experts, num_experts(), capacity(tokens));
    cache.expert_out = Tensor<T, D>::uninitialized({cache.plan.num_slots(), d});
    if constexpr (grouped) {
      GroupedExperts<ExpertT>::forward(std::span<ExpertT>(experts), cache.plan.offsets,
                                       ops::gather_rows(flat, cache.plan), cache.experts, cache.expert_out.view());
    } else {
      cache.experts.resize(experts.size());
      for (index_t e = 0; e < num_experts(); ++e) {
        const index_t begin = cache.plan.offsets[e], count = cache.plan.tokens_of(e);
        auto expert_in = Tensor<T, D>::uninitialized({count, d});
        RoutingKernel<D>::gather_rows(flat.data(), cache.plan.slot_token.data() + begin, count, d, expert_in.data());
        experts[e].forward_into(std::move(expert_in), cache.experts[e],
                                cache.expert_out.view().slice_rows(begin, begin + count));
      }
    }

    auto y = Tensor<T, D>::uninitialized(x.shape());
    ops::weighted_combine(cache.expert_out, cache.plan, routing.weights.data(), y.view().reshaped({tokens, d}));
    if constexpr (has_shared) {
      const Tensor<T, D> s = shared.forward(flat, cache.shared);
      ops::axpy(T(1), s.cview(), y.view().reshaped({tokens, d}));
    }
    return y;
  }

  // Accumulates the gradients of every trainable parameter; returns dL/dx.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    require(dy.shape() == cache.input_shape, "MoELayer", "dy shape expected ", cache.input_shape, ", got ", dy.shape());
    const index_t tokens = dy.rows(), d = config_.d_model;
    const TensorView<const T, D> flat_dy = dy.reshaped({tokens, d});
    const Routing<A, D>& routing = cache.router.routing;

    const CombineGrads<T, A, D> grads = combine_backward(flat_dy, cache.expert_out, cache.plan, routing.weights);
    auto d_expert_in = Tensor<T, D>::uninitialized({cache.plan.num_slots(), d});
    if constexpr (grouped) {
      GroupedExperts<ExpertT>::backward(std::span<ExpertT>(experts), cache.plan.offsets, grads.d_expert_out.cview(),
                                        cache.experts, d_expert_in.view());
    } else {
      for (index_t e = 0; e < num_experts(); ++e) {
        const index_t begin = cache.plan.offsets[e], end = cache.plan.offsets[e + 1];
        experts[e].backward_into(grads.d_expert_out.view().slice_rows(begin, end), cache.experts[e],
                                 d_expert_in.view().slice_rows(begin, end));
      }
    }

    auto dx = Tensor<T, D>::uninitialized(dy.shape());
    const auto flat_dx = dx.view().reshaped({tokens, d});
    dispatch_backward(d_expert_in, cache.plan, grads.d_weights, router, cache.router, flat_dx);
    if constexpr (has_shared) {
      const Tensor<T, D> dx_shared = shared.backward(flat_dy, cache.shared);
      ops::axpy(T(1), dx_shared.cview(), flat_dx);
    }
    return dx;
  }

  // Switch Transformers names: router.classifier.weight, experts.expert_<i>.<expert names>,
  // and shared_expert.<expert names> (Qwen2-MoE's spelling).
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    router.visit_params(f, join_name(prefix, "router"));
    for (std::size_t e = 0; e < experts.size(); ++e)
      experts[e].visit_params(f, join_name(prefix, "experts.expert_" + std::to_string(e)));
    if constexpr (has_shared) shared.visit_params(f, join_name(prefix, "shared_expert"));
  }

 private:
  Config config_;
};

}  // namespace nexa
