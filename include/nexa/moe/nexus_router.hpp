#pragma once
// NexusRouter<K> (Gritsch et al. 2024): experts are scored through embeddings computed from
// fixed domain embeddings d_i, e_i = W2 SwiGLU(W1 d_i) = W_down (silu(W_gate d_i) * W_up d_i),
// and a token's logits are score_scale * (x . e_i); softmax, top-k and the auxiliary losses as in
// TopKRouter. Because e_i comes from d_i through a shared projection, an expert can be added
// after training from its domain embedding alone (add_expert). The paper leaves the score
// normalisation, top-k and load-balancing coefficient open: here they are softmax over
// score_scale * x . e_i, K, and RouterConfig's coefficients.
#include <cmath>
#include <string>
#include <vector>

#include "nexa/core/param.hpp"
#include "nexa/moe/config.hpp"
#include "nexa/moe/routing_head.hpp"
#include "nexa/nn/activation.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/gemm.hpp"

namespace nexa {

template <int K, class T = float, class D = cpu>
class NexusRouter {
  static_assert(K >= 1, "NexusRouter: K must be at least 1");

 public:
  using A = acc_t<T>;
  using Config = RouterConfig;
  static constexpr int k = K;
  struct Cache : LogitRouting<A, D> {
    Tensor<A, D> input;       // [T, d_model]
    Tensor<A, D> gate;        // [E, h] W_gate d_i
    Tensor<A, D> up;          // [E, h] W_up d_i
    Tensor<A, D> hidden;      // [E, h] silu(gate) * up
    Tensor<A, D> embeddings;  // [E, d_model] e_i
  };
  template <class T2, class D2>
  using rebind = NexusRouter<K, T2, D2>;

  Param<A, D> domain_embeddings;  // [E, domain_dim], frozen unless the user unfreezes it
  Param<A, D> gate_proj;          // [h, domain_dim]
  Param<A, D> up_proj;            // [h, domain_dim]
  Param<A, D> down_proj;          // [d_model, h]

  NexusRouter() = default;
  NexusRouter(const Config& config, Rng& rng) : config_(config) {
    require(config.d_model > 0, "NexusRouter", "d_model must be positive, got ", config.d_model);
    require(config.domain_dim > 0, "NexusRouter", "domain_dim (size of the domain embeddings) must be positive, got ",
            config.domain_dim);
    require(config.num_experts >= K, "NexusRouter", "num_experts must be at least K = ", K, ", got ",
            config.num_experts);
    const index_t h = hidden_size();
    // Until the user sets real domain embeddings: random unit-scale vectors.
    domain_embeddings = Param<A, D>(
        Tensor<A, D>::randn({config.num_experts, config.domain_dim}, rng, 1.0 / std::sqrt(double(config.domain_dim))),
        false);
    const double in_std = 1.0 / std::sqrt(double(config.domain_dim));
    gate_proj = Param<A, D>(Tensor<A, D>::randn({h, config.domain_dim}, rng, in_std));
    up_proj = Param<A, D>(Tensor<A, D>::randn({h, config.domain_dim}, rng, in_std));
    down_proj = Param<A, D>(Tensor<A, D>::randn({config.d_model, h}, rng, config.init_std));
  }

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] index_t num_experts() const { return config_.num_experts; }
  [[nodiscard]] index_t hidden_size() const {
    return config_.projection_hidden > 0 ? config_.projection_hidden : config_.d_model;
  }

  // Replaces the domain embeddings, one row per expert: [E, domain_dim].
  void set_domain_embeddings(TensorView<const A, D> embeddings) {
    require_shape(embeddings, Shape{config_.num_experts, config_.domain_dim}, "NexusRouter", "domain embeddings");
    domain_embeddings.value = clone(embeddings);
  }

  // Appends an expert with domain embedding `d` [domain_dim]; routing includes it at once.
  void add_expert(TensorView<const A, D> d) {
    require(d.numel() == config_.domain_dim, "NexusRouter", "a new expert's domain embedding needs ",
            config_.domain_dim, " values, got shape ", d.shape());
    const index_t n = config_.num_experts, dim = config_.domain_dim;
    auto grown = Tensor<A, D>::uninitialized({n + 1, dim});
    ops::copy(domain_embeddings.value.cview(), TensorView<A, D>(grown.data(), {n, dim}));
    ops::copy(d, TensorView<A, D>(grown.data() + n * dim, {dim}));
    domain_embeddings = Param<A, D>(std::move(grown), domain_embeddings.trainable);
    ++config_.num_experts;
  }

  // The expert embeddings e_i = W_down (silu(W_gate d_i) * W_up d_i): [E, d_model].
  [[nodiscard]] Tensor<A, D> expert_embeddings() const {
    Cache scratch;
    project(scratch);
    return std::move(scratch.embeddings);
  }

  // x: [T, d_model]. Fills cache.routing and cache.aux.
  const Routing<A, D>& route(TensorView<const T, D> x, Cache& cache) {
    require(x.cols() == config_.d_model, "NexusRouter", "input's last axis expected ", config_.d_model, ", got shape ",
            x.shape());
    [[maybe_unused]] const FullPrecisionGemms<D> fp32_routing;  // routing stays fp32 under mixed-precision GEMMs
    project(cache);
    cache.input = convert_rows<A>(x);
    cache.logits = Tensor<A, D>::uninitialized({cache.input.rows(), config_.num_experts});
    ops::gemm(cache.input, Trans::N, cache.embeddings, Trans::T, cache.logits, A(config_.score_scale), A(0));
    route_logits(cache, config_, K);
    return cache.routing;
  }

  // Given dL/dweights [T, K]: accumulates the projection's gradients (and the domain embeddings'
  // if unfrozen), the auxiliary losses included; returns this router's part of dL/dx.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const A, D> d_weights, Cache& cache) {
    [[maybe_unused]] const FullPrecisionGemms<D> fp32_routing;
    const Tensor<A, D> d_logits = logits_backward(cache, config_, K, d_weights);
    return backward_logits(d_logits, cache);
  }

  // The same from dL/dlogits [T, E] directly: for a loss on the scores themselves (e.g. a
  // supervised cross-entropy on the routing, which the top-k weights cannot carry). Accumulates
  // the projection's gradients (and the domain embeddings' if unfrozen); returns dL/dx.
  [[nodiscard]] Tensor<T, D> backward_logits(TensorView<const A, D> d_logits, Cache& cache) {
    require_shape(d_logits, cache.logits.shape(), "NexusRouter", "d_logits");
    [[maybe_unused]] const FullPrecisionGemms<D> fp32_routing;
    const A scale = A(config_.score_scale);
    // logits = scale * x E^T: dE = scale * d_logits^T x, dx = scale * d_logits E.
    auto d_emb = Tensor<A, D>::uninitialized(cache.embeddings.shape());
    ops::gemm(d_logits, Trans::T, cache.input, Trans::N, d_emb, scale, A(0));
    if (down_proj.trainable) ops::gemm(d_emb, Trans::T, cache.hidden, Trans::N, down_proj.grad, A(1), A(1));
    auto d_gate = ops::matmul(d_emb, Trans::N, down_proj.value, Trans::N);  // dL/dhidden, then dL/dgate
    auto d_up = Tensor<A, D>::uninitialized(d_gate.shape());
    ActivationKernel<D>::template gated_backward<Silu>(d_gate.numel(), cache.gate.data(), cache.up.data(),
                                                       d_gate.data(), d_up.data());
    if (gate_proj.trainable) ops::gemm(d_gate, Trans::T, domain_embeddings.value, Trans::N, gate_proj.grad, A(1), A(1));
    if (up_proj.trainable) ops::gemm(d_up, Trans::T, domain_embeddings.value, Trans::N, up_proj.grad, A(1), A(1));
    if (domain_embeddings.trainable) {
      ops::gemm(d_gate, Trans::N, gate_proj.value, Trans::N, domain_embeddings.grad, A(1), A(1));
      ops::gemm(d_up, Trans::N, up_proj.value, Trans::N, domain_embeddings.grad, A(1), A(1));
    }
    auto dx = Tensor<A, D>::uninitialized(cache.input.shape());
    ops::gemm(d_logits, Trans::N, cache.embeddings, Trans::N, dx, scale, A(0));
    return convert<T>(std::move(dx));
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "domain_embeddings"), domain_embeddings);
    f(join_name(prefix, "projection.gate_proj.weight"), gate_proj);
    f(join_name(prefix, "projection.up_proj.weight"), up_proj);
    f(join_name(prefix, "projection.down_proj.weight"), down_proj);
  }

 private:
  void project(Cache& cache) const {
    cache.gate = ops::matmul(domain_embeddings.value, Trans::N, gate_proj.value, Trans::T);
    cache.up = ops::matmul(domain_embeddings.value, Trans::N, up_proj.value, Trans::T);
    cache.hidden = Tensor<A, D>::uninitialized(cache.gate.shape());
    ActivationKernel<D>::template gated_forward<Silu>(cache.gate.numel(), cache.gate.data(), cache.up.data(),
                                                      cache.hidden.data());
    cache.embeddings = ops::matmul(cache.hidden, Trans::N, down_proj.value, Trans::T);
  }

  Config config_;
};

}  // namespace nexa
