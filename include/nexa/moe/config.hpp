#pragma once
// Configuration aggregates for MoE layers and the parts a layer builds (router, experts).
#include "nexa/core/shape.hpp"

namespace nexa {

// What every expert is constructed from.
struct ExpertConfig {
  index_t d_model = 0;
  index_t d_ff = 0;
  double dropout = 0.0;
  // 0 selects T5's initialisation: wi ~ N(0, d_model^-1/2), wo ~ N(0, d_ff^-1/2).
  double init_std = 0.0;
};

// What every router is constructed from.
struct RouterConfig {
  index_t d_model = 0;
  index_t num_experts = 0;
  bool renormalize = true;          // rescale the k chosen probabilities to sum to 1 (k > 1 only)
  double load_balance_coef = 1e-2;  // Switch: alpha * N * sum_i f_i P_i
  double z_loss_coef = 1e-3;        // ST-MoE: c_z * mean_t logsumexp(logits_t)^2
  double init_std = 0.02;
  // Domain-projection routers (NexusRouter): size of the domain embeddings and of the SwiGLU
  // projection's hidden layer (0: d_model), and the factor on the scores x . e_i.
  index_t domain_dim = 0;
  index_t projection_hidden = 0;
  double score_scale = 1.0;
  // Sequence-classifier routers: weight of the supervised cross-entropy on domain labels.
  double supervised_coef = 0.0;
};

// A whole MoE layer. Designated initialisers keep call sites short:
//   MoELayer<...> layer({.d_model = 512, .d_ff = 2048, .num_experts = 8}, rng);
struct MoEConfig {
  index_t d_model = 0;
  index_t d_ff = 0;
  index_t num_experts = 0;
  double dropout = 0.0;     // inside each expert, after the activation (T5's placement)
  bool renormalize = true;  // rescale the k chosen probabilities to sum to 1 (k > 1 only)
  double load_balance_coef = 1e-2;
  double z_loss_coef = 1e-3;
  double router_init_std = 0.02;
  double expert_init_std = 0.0;  // 0: T5 initialisation
  double shared_scale = 0.2;     // NEXUS: out = routed + scale * shared (initial value if learnable)
  // 0: dropless. Otherwise each expert takes at most ceil(capacity_factor * T * k / E) of a
  // batch's T * k assignments (Switch); the others skip the expert, so the token passes only
  // through the residual around the layer (and the shared expert, if any).
  double capacity_factor = 0.0;

  [[nodiscard]] ExpertConfig expert() const { return {d_model, d_ff, dropout, expert_init_std}; }
  index_t domain_dim = 0;         // NexusRouter only: see RouterConfig
  index_t projection_hidden = 0;  // NexusRouter only
  double score_scale = 1.0;       // NexusRouter only
  double supervised_coef = 0.0;   // SequenceClassifierRouter only: see RouterConfig

  [[nodiscard]] RouterConfig router() const {
    return {d_model,         num_experts, renormalize,       load_balance_coef, z_loss_coef,
            router_init_std, domain_dim,  projection_hidden, score_scale,       supervised_coef};
  }
};

}  // namespace nexa
