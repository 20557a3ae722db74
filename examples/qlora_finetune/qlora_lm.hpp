#pragma once
// qlora_lm.hpp: the trained NEXA-MOE LM (examples/nexa_moe) turned into a QLoRA model: its routed
// T5 experts quantised to NF4 and frozen, a LoRA adapter on each expert linear (wi, wo), and
// everything else (embedding, attention, norms, LM head, the BERT router) copied and frozen.
//   QLoraLM q = make_qlora(trained, {.r = 16, .alpha = 32}, rng);   // trained: a NexaMoeLM
//   routed_step(q, route_batch, token_batch, /*train=*/true);
// Both models are DecoderLM<FFN> whose MoE layers follow one shared BERT router; routed_step
// classifies the batch, then runs the LM. The router is never trained here.
#include <cstddef>
#include <map>
#include <string>
#include <utility>

#include "../nexa_moe/lm.hpp"
#include "nexa/lora/adapters_io.hpp"
#include "nexa/lora/qlora_expert.hpp"

namespace qlora_lm {

using nexa::index_t;
using QLoraExpert = nexa::LoRA<nexa::QuantizedExpert<nexa::T5FFN<nexa::Relu>, nexa::NF4>>;
using QLoraFFN = nexa::MoELayer<nexa::SharedSequenceRouter<nexa_moe::Classifier, 1>, QLoraExpert>;
using QLoraLM = nexa_moe::DecoderLM<QLoraFFN>;
using FullLM = nexa_moe::DecoderLM<nexa_moe::NexaMoeFFN>;  // NexaMoeLM's LM, without its router

// The QLoRA model of a trained NEXA-MOE LM (left unchanged; its router is shared, not copied).
[[nodiscard]] inline QLoraLM make_qlora(nexa_moe::NexaMoeLM& trained, const nexa::LoRAConfig& lora, nexa::Rng& rng) {
  FullLM& dense = trained;
  nexa::Rng scratch(0);  // the throwaway experts of the first construction
  QLoraLM q(dense.config(), nexa_moe::moe_ffn(dense.config()), scratch);
  for (std::size_t l = 0; l < q.stack.blocks.size(); ++l) {
    nexa_moe::NexaMoeFFN ffn = dense.stack.blocks[l].ffn;  // a copy: its router stays attached
    q.stack.blocks[l].ffn = nexa::with_lora(nexa::with_quantized_experts<nexa::NF4>(std::move(ffn)), lora, rng);
  }
  std::map<std::string, nexa::Param<float>*> source;
  dense.visit_params([&](const std::string& name, nexa::Param<float>& p) { source[name] = &p; });
  q.visit_params([&](const std::string& name, nexa::Param<float>& p) {
    if (nexa::is_lora_param(name)) return;
    const auto it = source.find(name);
    nexa::require(it != source.end(), "qlora-finetune", "the trained model has no parameter ", name);
    nexa::require(it->second->value.shape() == p.value.shape(), "qlora-finetune", name, " expected shape ",
                  p.value.shape(), ", got ", it->second->value.shape());
    p.value = it->second->value;
    p.set_trainable(false);
  });
  q.set_training(false);
  return q;
}

// The shared router every MoE layer of `lm` follows (a NexaMoeLM's, or the one make_qlora copied).
template <class LM>
[[nodiscard]] nexa_moe::DomainRouter& router_of(LM& lm) {
  const auto& hub = lm.stack.blocks.front().ffn.router.hub();
  nexa::require(hub != nullptr, "qlora-finetune", "the model's MoE layers have no router attached");
  return *hub;
}

// Classifies the batch with the model's shared router, then the LM's forward (and backward when
// train). The router only routes: it gets no backward.
template <class LM>
nexa_moe::StepLoss routed_step(LM& lm, const nexa::SequenceBatch& route, const nexa_moe::TokenBatch& batch,
                               bool train) {
  (void)router_of(lm).classify(route);
  return lm.step(batch, train, [](std::size_t, auto&) {});
}

// What a model holds in memory for fine-tuning, in bytes (the router, frozen and shared by both
// ways of fine-tuning, is left out).
struct Memory {
  index_t trainable = 0;          // parameters that get gradients and optimizer state
  index_t frozen = 0;             // dense frozen parameters (fp32)
  index_t expert_parameters = 0;  // of the routed experts (dense or quantised)
  std::size_t expert_bytes = 0;   // their storage: fp32 or NF4 codes with their block scales
  std::size_t dense_bytes = 0;    // every fp32 parameter (trainable or frozen), experts included if fp32
  std::size_t gradient_bytes = 0;
  std::size_t optimizer_bytes = 0;  // AdamW's m and v
  [[nodiscard]] std::size_t weight_bytes() const { return dense_bytes + expert_bytes; }
  [[nodiscard]] std::size_t total_bytes() const { return weight_bytes() + gradient_bytes + optimizer_bytes; }
};

// Memory of a model whose trainable fp32 parameters get a gradient and AdamW's two moments.
template <class LM>
[[nodiscard]] Memory memory_of(LM& lm) {
  Memory m;
  lm.visit_params([&](const std::string& name, nexa::Param<float>& p) {
    const auto n = p.value.numel();
    (p.trainable ? m.trainable : m.frozen) += n;
    m.dense_bytes += static_cast<std::size_t>(n) * sizeof(float);
    if (name.find(".experts.") != std::string::npos && !nexa::is_lora_param(name)) m.expert_parameters += n;
  });
  for (auto& block : lm.stack.blocks) {
    for (auto& e : block.ffn.experts) {
      if constexpr (requires { e.base.bytes(); }) {
        m.expert_parameters += e.base.num_parameters();
        m.expert_bytes += e.base.bytes();
      }
    }
  }
  m.gradient_bytes = static_cast<std::size_t>(m.trainable) * sizeof(float);
  m.optimizer_bytes = 2 * static_cast<std::size_t>(m.trainable) * sizeof(float);
  return m;
}

}  // namespace qlora_lm
