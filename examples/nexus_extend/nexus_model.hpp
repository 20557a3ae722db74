#pragma once
// nexus_model.hpp: the Nexus LM of nexus-extend and how it is made.
//   NexusLM      the demo's decoder LM (examples/nexa_moe/lm.hpp) whose FFN slots are
//                MoELayer<NexusRouter<1>, T5FFN<Relu>>: token-level top-1 routing by
//                logits = score_scale * x . e_i, e_i = W_down SwiGLU(W_up/W_gate d_i), d_i the
//                MiniLM domain embedding of expert i's domain.
//   upcycle      a nexa-moe checkpoint's domain experts become the Nexus experts; attention,
//                embeddings, norms and the LM head are copied; the routers' projections are fresh.
//   add_domain_expert  one more expert in every layer: the router scores it from its domain
//                embedding alone (NexusRouter::add_expert), its weights start as a copy of an
//                existing expert.
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../nexa_moe/checkpoint.hpp"
#include "../nexa_moe/lm.hpp"
#include "nexa/io/safetensors.hpp"

namespace nexus_extend {

using nexa::index_t;
using NexusFFN = nexa::MoELayer<nexa::NexusRouter<1>, nexa::T5FFN<nexa::Relu>>;
using NexusLM = nexa_moe::DecoderLM<NexusFFN>;

// What the routers are built with (the rest of each layer comes from the LM's config).
struct RouterOptions {
  double score_scale = 1.0;
  double load_balance_coef = 1e-2;
  double z_loss_coef = 1e-3;
};

[[nodiscard]] inline nexa::MoEConfig nexus_ffn(const nexa_moe::LMConfig& lm, index_t domain_dim,
                                               const RouterOptions& router) {
  nexa::MoEConfig c = nexa_moe::moe_ffn(lm);
  c.domain_dim = domain_dim;
  c.score_scale = router.score_scale;
  c.load_balance_coef = router.load_balance_coef;
  c.z_loss_coef = router.z_loss_coef;
  return c;
}

// True for the parameters of a router (".mlp.router." in the T5/Switch names).
[[nodiscard]] inline bool is_router_param(const std::string& name) {
  return name.find(".mlp.router.") != std::string::npos;
}

// A model's parameters other than its routers (what a nexa-moe checkpoint provides).
template <class Model>
struct WithoutRouters {
  Model& model;
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    model.visit_params(
        [&](const std::string& name, auto& p) {
          if (!is_router_param(name)) f(name, p);
        },
        prefix);
  }
};

// Every layer's router gets the same domain embeddings [experts, domain_dim].
inline void set_domain_embeddings(NexusLM& model, const nexa::Tensor<float>& domains) {
  for (auto& block : model.stack.blocks) block.ffn.router.set_domain_embeddings(domains.cview());
}

// The Nexus LM upcycled from a nexa-moe checkpoint: expert e of every layer is the checkpoint's
// domain expert e (nexa_moe.safetensors, the same names), every other LM weight is copied, the
// domain embeddings [experts, dim] are set, and the routers' projections are fresh (from rng).
[[nodiscard]] inline NexusLM upcycle(const nexa_moe::Checkpoint& ckpt, const nexa::Tensor<float>& domains,
                                     const RouterOptions& router, nexa::Rng& rng) {
  nexa::require(domains.rank() == 2 && domains.rows() == ckpt.lm.experts, "nexus-extend",
                "upcycling needs one domain embedding per expert of the checkpoint (", ckpt.lm.experts, "), got shape ",
                domains.shape());
  NexusLM model(ckpt.lm, nexus_ffn(ckpt.lm, domains.cols(), router), rng);
  WithoutRouters<NexusLM> lm_part{model};
  // strict = false: the file also holds the BERT classifier (router.classifier_model.*).
  nexa::load_safetensors(lm_part, ckpt.dir / "nexa_moe.safetensors", /*strict=*/false);
  set_domain_embeddings(model, domains);
  return model;
}

// Appends an expert to every layer: routed from `domain_embedding` [dim], its weights a copy of
// each layer's expert `copy_of`.
inline void add_domain_expert(NexusLM& model, nexa::TensorView<const float> domain_embedding, index_t copy_of) {
  for (auto& block : model.stack.blocks) {
    auto& layer = block.ffn;
    nexa::require(copy_of >= 0 && copy_of < layer.num_experts(), "nexus-extend", "expert to copy ", copy_of,
                  " is outside [0, ", layer.num_experts(), ")");
    layer.add_expert(domain_embedding, layer.experts[static_cast<std::size_t>(copy_of)]);
  }
}

// The cosine similarity of rows a and b of m.
[[nodiscard]] inline double row_cosine(const nexa::Tensor<float>& m, index_t a, index_t b) {
  double dot = 0, na = 0, nb = 0;
  for (index_t c = 0; c < m.cols(); ++c) {
    const double x = m(a, c), y = m(b, c);
    dot += x * y, na += x * x, nb += y * y;
  }
  return dot / std::max(std::sqrt(na * nb), 1e-12);
}

// The row of `domains` [n, dim] closest (cosine) to `d` [dim].
[[nodiscard]] inline index_t closest_domain(const nexa::Tensor<float>& domains, nexa::TensorView<const float> d) {
  nexa::require(d.numel() == domains.cols(), "nexus-extend", "domain embedding has ", d.numel(), " values, expected ",
                domains.cols());
  index_t best = 0;
  double best_cos = -2;
  for (index_t r = 0; r < domains.rows(); ++r) {
    double dot = 0, na = 0, nb = 0;
    for (index_t c = 0; c < domains.cols(); ++c) {
      const double x = domains(r, c), y = d.data()[c];
      dot += x * y, na += x * x, nb += y * y;
    }
    const double cos = dot / std::max(std::sqrt(na * nb), 1e-12);
    if (cos > best_cos) best_cos = cos, best = r;
  }
  return best;
}

// How much each token of a batch weighs in the routers' supervised cross-entropy, per domain
// (index: domain): 1 / divisor[domain]. by_domain false: every non-padding token alike (divisor:
// the batch's token count, the plain mean); true: every domain present alike (divisor: the
// domains present times that domain's tokens), so that a domain with more rows in the batch does
// not become the routers' prior. Computed on a whole batch, it also weighs any part of it.
template <class Batch>
[[nodiscard]] std::vector<double> routing_divisors(const Batch& batch, std::size_t domains, bool by_domain) {
  const index_t S = batch.ids.dim(1);
  std::vector<double> tokens(domains, 0.0);
  double all = 0;
  for (index_t t = 0; t < batch.ids.numel(); ++t) {
    if (batch.mask.data()[t] == 0) continue;
    const auto d = static_cast<std::size_t>(batch.domains[static_cast<std::size_t>(t / S)]);
    nexa::require(d < domains, "routing_divisors", "domain ", d, " is outside [0, ", domains, ")");
    tokens[d] += 1, all += 1;
  }
  const auto present = static_cast<double>(std::count_if(tokens.begin(), tokens.end(), [](double n) { return n > 0; }));
  std::vector<double> divisor(domains, all);
  if (by_domain)
    for (std::size_t d = 0; d < domains; ++d) divisor[d] = present * tokens[d];
  return divisor;
}

// The routers' supervised signal: the cross-entropy of softmax(logits) against the expert of each
// token's domain (row b of the batch: domain batch.domains[b], expert of the same index), summed
// over the batch's non-padding tokens, token t weighing 1 / divisor[its domain]
// (routing_divisors; empty: the batch's token count, the plain mean). Adds coef * its gradient to
// the router's projection (NexusRouter::backward_logits); the gradient to the router's input is
// dropped, so the loss trains the scoring and leaves the representation to the LM loss. Returns
// the loss.
template <class Router, class Batch>
double supervise_routing(Router& router, typename Router::Cache& cache, const Batch& batch, double coef,
                         const std::vector<double>& divisor = {}) {
  const auto& logits = cache.logits;
  const index_t E = logits.dim(1), S = batch.ids.dim(1);
  nexa::require(logits.rows() == batch.ids.numel(), "supervise_routing", "logits rows expected ", batch.ids.numel(),
                ", got ", logits.rows());
  double n = 0;
  for (index_t t = 0; t < batch.ids.numel(); ++t) n += batch.mask.data()[t] != 0 ? 1 : 0;
  using A = typename std::remove_cvref_t<decltype(logits)>::value_type;
  auto d_logits = nexa::Tensor<A>::zeros(logits.shape());
  double loss = 0;
  for (index_t t = 0; t < batch.ids.numel() && n > 0; ++t) {
    if (batch.mask.data()[t] == 0) continue;
    const auto label = static_cast<index_t>(batch.domains[static_cast<std::size_t>(t / S)]);
    nexa::require(label >= 0 && label < E, "supervise_routing", "domain ", label, " has no expert among ", E);
    nexa::require(divisor.empty() || static_cast<std::size_t>(label) < divisor.size(), "supervise_routing", "domain ",
                  label, " has no divisor among ", divisor.size());
    const double div = divisor.empty() ? n : divisor[static_cast<std::size_t>(label)];
    const A* z = logits.data() + t * E;
    const A top = *std::max_element(z, z + E);
    double sum = 0;
    for (index_t e = 0; e < E; ++e) sum += std::exp(double(z[e] - top));
    loss += (std::log(sum) - double(z[label] - top)) / div;
    for (index_t e = 0; e < E; ++e) {
      const double p = std::exp(double(z[e] - top)) / sum;
      d_logits.data()[t * E + e] = static_cast<A>(coef * (p - (e == label ? 1.0 : 0.0)) / div);
    }
  }
  if (n > 0) (void)router.backward_logits(d_logits.cview(), cache);
  return n > 0 ? loss : 0.0;
}

// Makes exactly the parameters for which keep(name) holds trainable; returns their count.
template <class Model, class Keep>
index_t train_only(Model& model, Keep&& keep) {
  index_t n = 0;
  model.visit_params([&](const std::string& name, auto& p) {
    const bool on = keep(name);
    p.set_trainable(on);
    n += on ? p.value.numel() : 0;
  });
  return n;
}

// The name of expert e's parameters inside an MoE layer.
[[nodiscard]] inline bool is_expert_param(const std::string& name, index_t e) {
  return name.find(nexa::detail::concat(".mlp.experts.expert_", e, ".")) != std::string::npos;
}

}  // namespace nexus_extend
