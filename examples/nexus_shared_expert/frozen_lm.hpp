#pragma once
// frozen_lm.hpp: the trained NEXA-MOE LM, frozen, with a NEXUS shared expert in every MoE layer:
//   FFN of each block = MoELayer<SharedSequenceRouter<RouteTable, 1>, Expert, SharedExpert<T5FFN<Relu>>>
//   out = routed + scale * shared        (scale fixed, 0.2 by default, as NEXUS)
// Expert is NF4Expert (the routed experts quantised to NF4, what the trainer trains against) or
// T5FFN<Relu> (the checkpoint's fp32 experts, the reference). The router is the checkpoint's BERT
// classifier, cached per definition (route_table.hpp). load_frozen_lm reads a nexa-moe checkpoint;
// everything but the shared experts' weights is frozen.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../nexa_moe/checkpoint.hpp"
#include "../nexa_moe/lm.hpp"
#include "nexa/io/safetensors.hpp"
#include "nexa/moe/shared_expert_init.hpp"
#include "nexa/quant/quantized_expert.hpp"
#include "route_table.hpp"

namespace nexus_shared {

using DenseExpert = nexa::T5FFN<nexa::Relu>;
using NF4Expert = nexa::QuantizedExpert<DenseExpert, nexa::quant::NF4>;
using Shared = nexa::SharedExpert<DenseExpert>;  // FixedScale
using Hub = nexa::SequenceClassifierRouter<RouteTable<>, 1>;
template <class Expert>
using FrozenFFN = nexa::MoELayer<nexa::SharedSequenceRouter<RouteTable<>, 1>, Expert, Shared>;

// The dense experts of every layer, [layer][expert], as the checkpoint holds them.
using LayerExperts = std::vector<std::vector<nexa::T5FFN<nexa::Relu, float>>>;

[[nodiscard]] inline bool is_shared_param(const std::string& name) {
  return name.find(".shared_expert.") != std::string::npos;
}

// A module's parameters, filtered by name (load or save one part of a model).
template <class Module, class Keep>
struct FilteredParams {
  Module& module;
  Keep keep;
  template <class F>
  void visit_params(F&& f) {
    module.visit_params([&](const std::string& name, auto& p) {
      if (keep(name)) f(name, p);
    });
  }
};
template <class Module, class Keep>
FilteredParams(Module&, Keep) -> FilteredParams<Module, Keep>;

template <class Module>
[[nodiscard]] auto shared_params(Module& m) {
  return FilteredParams{m, [](const std::string& n) { return is_shared_param(n); }};
}

template <class Expert>
class FrozenMoeLM : public nexa_moe::DecoderLM<FrozenFFN<Expert>> {
 public:
  using Base = nexa_moe::DecoderLM<FrozenFFN<Expert>>;
  std::shared_ptr<Hub> router;  // routes every layer, from the table

  FrozenMoeLM() = default;
  FrozenMoeLM(const nexa_moe::LMConfig& config, double scale, std::shared_ptr<const Table> table, nexa::Rng& rng)
      : Base(config, ffn_config(config, scale), rng) {
    nexa::require(table != nullptr && table->labels == config.experts, "FrozenMoeLM", "the route table must have ",
                  config.experts, " labels (one per expert)");
    router = std::make_shared<Hub>(ffn_config(config, scale).router(), RouteTable<>(std::move(table)));
    for (auto& block : this->stack.blocks) block.ffn.router.attach(router);
  }

  // The routed layer of nexa-moe with the shared expert; no routing losses (nothing routes
  // differently when they change: the router is frozen).
  [[nodiscard]] static nexa::MoEConfig ffn_config(const nexa_moe::LMConfig& c, double scale) {
    nexa::MoEConfig mc = nexa_moe::moe_ffn(c);
    mc.load_balance_coef = 0;
    mc.z_loss_coef = 0;
    mc.shared_scale = scale;
    return mc;
  }

  // route: table_batch of the definitions; train: backward too (gradients reach only what trains).
  nexa_moe::StepLoss step(const nexa::SequenceBatch& route, const nexa_moe::TokenBatch& batch, bool train) {
    (void)router->classify(route);
    return Base::step(batch, train, [](std::size_t, auto&) {});
  }

  // Freezes everything, then unfreezes the shared experts' weights (the scale stays fixed).
  void train_only_shared() {
    nexa::set_trainable(*this, false);
    for (auto& block : this->stack.blocks) nexa::set_trainable(block.ffn.shared.expert, true);
  }
  // Every shared expert's weights to zero: the model computes the frozen MoE alone, exactly.
  void zero_shared() {
    for (auto& block : this->stack.blocks)
      block.ffn.shared.expert.visit_params(
          [](const std::string&, auto& p) { std::fill(p.value.data(), p.value.data() + p.value.numel(), 0.0f); });
  }
};

// The dense experts of the checkpoint's NEXA-MOE model (nexa_moe.safetensors).
[[nodiscard]] inline LayerExperts load_dense_experts(const nexa_moe::Checkpoint& ckpt) {
  nexa::Rng rng(0);
  LayerExperts out(static_cast<std::size_t>(ckpt.lm.layers));
  for (index_t l = 0; l < ckpt.lm.layers; ++l) {
    for (index_t e = 0; e < ckpt.lm.experts; ++e) {
      DenseExpert dense(nexa_moe::dense_ffn(ckpt.lm), rng);
      nexa_moe::PrefixedParams view{dense,
                                    nexa::detail::concat("decoder.block.", l, ".layer.1.mlp.experts.expert_", e)};
      nexa::load_safetensors(view, ckpt.dir / "nexa_moe.safetensors", /*strict=*/false);
      out[static_cast<std::size_t>(l)].push_back(std::move(dense));
    }
  }
  return out;
}

// The checkpoint's LM with `experts` as its routed experts (quantised when Expert is NF4Expert),
// the shared experts zero, and everything but the shared experts' weights frozen.
template <class Expert>
[[nodiscard]] FrozenMoeLM<Expert> load_frozen_lm(const nexa_moe::Checkpoint& ckpt, const LayerExperts& experts,
                                                 double scale, std::shared_ptr<const Table> table) {
  nexa::require(static_cast<index_t>(experts.size()) == ckpt.lm.layers, "load_frozen_lm", "experts for ",
                experts.size(), " layers, the checkpoint has ", ckpt.lm.layers);
  nexa::Rng rng(0);
  FrozenMoeLM<Expert> m(ckpt.lm, scale, std::move(table), rng);
  // Everything the file has but the routed experts (the file also holds the BERT router).
  FilteredParams rest{
      m, [](const std::string& n) { return !is_shared_param(n) && n.find(".mlp.experts.") == std::string::npos; }};
  nexa::load_safetensors(rest, ckpt.dir / "nexa_moe.safetensors", /*strict=*/false);
  for (std::size_t l = 0; l < experts.size(); ++l) {
    auto& ffn = m.stack.blocks[l].ffn;
    nexa::require(experts[l].size() == ffn.experts.size(), "load_frozen_lm", "layer ", l, ": ", experts[l].size(),
                  " experts, the model has ", ffn.experts.size());
    for (std::size_t e = 0; e < experts[l].size(); ++e)
      ffn.experts[e] = typename FrozenFFN<Expert>::ExpertT(experts[l][e]);
  }
  m.zero_shared();
  m.train_only_shared();
  m.set_training(false);  // the checkpoint's LM has no dropout; keep it that way
  return m;
}

// --- initialisation of the shared experts ----------------------------------------------------

// What an initialisation did: the experts it averaged (empty: random) and, for PCA, the scores.
struct InitResult {
  std::string name;
  std::vector<index_t> experts;
  std::optional<nexa::PcaExpertScores> pca;
};

// The initialisations by name: "random" (N(0, 0.02)), "most" (a copy of the most activated
// expert), "top<m>" (the mean of the m most activated), "pca" (PCA-guided: the mean of the
// experts the scores select). Every layer gets the same choice: one router routes them all, so
// their activity is the same. The experts averaged are the checkpoint's fp32 ones.
[[nodiscard]] inline bool valid_init(const std::string& name, index_t experts) {
  if (name == "random" || name == "most" || name == "pca") return true;
  if (name.rfind("top", 0) != 0 || name.size() == 3) return false;
  for (std::size_t i = 3; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  if (name.size() > 3 + 9) return false;  // more experts than any model has (and std::stol's range)
  const long m = std::stol(name.substr(3));
  return m >= 1 && m <= experts;
}

template <class Model>
InitResult init_shared(Model& model, const LayerExperts& experts, const std::string& name,
                       const nexa::ExpertActivity& activity, std::uint64_t seed, index_t pca_components,
                       index_t pca_select) {
  nexa::require(valid_init(name, activity.num_experts), "init_shared", "unknown initialisation '", name,
                "' (expected random, most, pca or top<m> with 1 <= m <= ", activity.num_experts, ")");
  InitResult r{name, {}, std::nullopt};
  if (name == "pca") {
    r.pca = nexa::pca_expert_scores(activity, pca_components, pca_select);
    r.experts = r.pca->selected;
  } else if (name != "random") {
    r.experts = activity.ranked();
    r.experts.resize(name == "most" ? 1 : static_cast<std::size_t>(std::stol(name.substr(3))));
  }
  nexa::Rng rng(seed);
  for (std::size_t l = 0; l < model.stack.blocks.size(); ++l) {
    auto& shared = model.stack.blocks[l].ffn.shared;
    if (r.experts.empty()) {
      nexa::init_shared_random(shared, rng);
    } else {
      auto layer = experts[l];  // init_shared_from_experts reads through non-const modules
      nexa::init_shared_from_experts(shared, layer, r.experts);
    }
  }
  return r;
}

// --- what trains and what it costs -----------------------------------------------------------

struct Footprint {
  nexa::TrainableReport lm;          // over the LM's parameters (the NF4 experts have none)
  index_t routed_expert_params = 0;  // the routed experts' dense parameter count
  std::size_t routed_nf4_bytes = 0;  // their NF4 storage
  index_t router_params = 0;         // the BERT classifier (frozen, runs once per definition)
  [[nodiscard]] index_t all_lm_params() const { return lm.total + routed_expert_params; }
  // Gradients plus AdamW's two moments in fp32 for every LM parameter (full fine-tuning).
  [[nodiscard]] std::size_t full_finetune_bytes() const { return 12 * static_cast<std::size_t>(all_lm_params()); }
};

template <class Bert>
[[nodiscard]] Footprint footprint(FrozenMoeLM<NF4Expert>& model, Bert& bert) {
  Footprint f;
  f.lm = nexa::trainable_report(model);
  for (auto& block : model.stack.blocks)
    for (auto& e : block.ffn.experts) {
      f.routed_expert_params += e.num_parameters();
      f.routed_nf4_bytes += e.bytes();
    }
  bert.visit_params([&](const std::string&, auto& p) { f.router_params += p.numel(); });
  return f;
}

}  // namespace nexus_shared
