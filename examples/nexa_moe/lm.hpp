#pragma once
// lm.hpp: the demo's language models. One decoder-only T5-style LM, DecoderLM<FFN>: a token
// embedding, pre-LN blocks (causal attention with T5's relative position bias, RMSNorm) whose FFN
// slot is FFN, a final norm and an untied LM head. The demo instantiates it three times:
//   DenseLM    FFN = T5FFN<Relu>                                        (the dense baseline)
//   TokenMoELM FFN = MoELayer<TopKRouter<1>, T5FFN<Relu>>               (token-level top-1 MoE)
//   NexaMoeLM  FFN = MoELayer<SharedSequenceRouter<BertModel<>, 1>, ...> (NEXA-MOE: the BERT
//              domain classifier routes each definition to one domain expert in every layer)
// Every expert has the dense FFN's d_ff, so the three have the same active parameters per token.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "nexa/models/bert.hpp"
#include "nexa/moe.hpp"
#include "nexa/train/loss.hpp"

namespace nexa_moe {

using nexa::index_t;

struct LMConfig {
  index_t vocab = 0;
  index_t d_model = 256;
  index_t heads = 4;
  index_t layers = 3;
  index_t d_ff = 768;
  index_t experts = 3;
  index_t relative_buckets = 32;
  index_t relative_max_distance = 64;
  double dropout = 0.0;
  double load_balance_coef = 1e-2;  // the token router's Switch loss
  double z_loss_coef = 1e-3;
};

// One batch for a model: ids [B, S], next-token targets [B, S] (-100 ignored), mask [B, S].
struct TokenBatch {
  nexa::TensorView<const std::int32_t> ids, targets, mask;
};

// What a training step or an evaluation pass reports.
struct StepLoss {
  double lm = 0;        // mean next-token cross-entropy over the batch's targets
  double aux = 0;       // routing losses (load balance, z-loss, supervised routing), already weighted
  index_t targets = 0;  // the targets the mean is over
};

template <class FFN>
class DecoderLM {
 public:
  using Block = nexa::PreLNBlock<nexa::FullAttention<>, FFN>;
  using StackT = nexa::Stack<Block>;
  using FFNT = typename StackT::BlockT::FFNT;
  static constexpr bool is_moe = StackT::BlockT::is_moe;

  struct Cache {
    nexa::Embedding<>::Cache embed;
    typename StackT::Cache stack;
    nexa::Linear<>::Cache head;
  };

  nexa::Embedding<> embed;
  StackT stack;
  nexa::Linear<> head;

  DecoderLM() = default;
  DecoderLM(const LMConfig& config, const typename FFNT::Config& ffn, nexa::Rng& rng) : config_(config) {
    embed = nexa::Embedding<>({.num_embeddings = config.vocab, .embedding_dim = config.d_model, .init_std = 1.0}, rng);
    typename StackT::Config sc;
    sc.layers = config.layers;
    sc.relative_buckets = config.relative_buckets;
    sc.relative_max_distance = config.relative_max_distance;
    sc.final_norm = true;
    sc.block.d_model = config.d_model;
    sc.block.heads = config.heads;
    sc.block.dropout = config.dropout;
    sc.block.attention_dropout = config.dropout;
    sc.block.causal = true;
    sc.block.ffn = ffn;
    stack = StackT(sc, rng);
    head = nexa::Linear<>({.in_features = config.d_model,
                           .out_features = config.vocab,
                           .init_std = 1 / std::sqrt(static_cast<double>(config.d_model))},
                          rng);
  }

  [[nodiscard]] const LMConfig& config() const { return config_; }

  // Forward, loss and, when `train`, backward, which accumulates every trainable gradient (the
  // routers' losses included). For MoE models, on_layer(layer, ffn_cache) sees each layer's
  // routing before the caches go. A model routed by sequence classifies the batch first.
  template <class OnLayer>
  StepLoss step(const TokenBatch& batch, bool train, OnLayer&& on_layer) {
    Cache cache;
    const nexa::Tensor<float> logits = forward(batch, cache);
    StepLoss out;
    for (index_t i = 0; i < batch.targets.numel(); ++i) out.targets += batch.targets.data()[i] >= 0 ? 1 : 0;
    auto [loss, d_logits] = nexa::train::cross_entropy(logits, flat(batch.targets));
    out.lm = loss;
    out.aux = cache.stack.aux_loss();
    if constexpr (is_moe)
      for (std::size_t l = 0; l < cache.stack.blocks.size(); ++l) on_layer(l, cache.stack.blocks[l].ffn);
    if (!train) return out;
    const nexa::Tensor<float> dh = head.backward(d_logits.cview(), cache.head);
    const index_t B = batch.ids.dim(0), S = batch.ids.dim(1);
    const nexa::Tensor<float> dx = stack.backward(dh.cview().reshaped({B, S, config_.d_model}), cache.stack);
    embed.backward(dx.cview(), cache.embed);
    return out;
  }

  void set_training(bool on) { stack.set_training(on); }

  // T5's names: shared.weight, decoder.block.<i>.*, decoder.final_layer_norm.weight, lm_head.weight.
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    embed.visit_params(f, nexa::join_name(prefix, "shared"));
    stack.visit_params(f, nexa::join_name(prefix, "decoder"));
    head.visit_params(f, nexa::join_name(prefix, "lm_head"));
  }

 private:
  static nexa::TensorView<const std::int32_t> flat(nexa::TensorView<const std::int32_t> t) {
    return t.reshaped({t.numel()});
  }

  nexa::Tensor<float> forward(const TokenBatch& batch, Cache& cache) {
    const index_t B = batch.ids.dim(0), S = batch.ids.dim(1);
    nexa::Tensor<float> x = embed.forward(batch.ids, cache.embed);
    nexa::Tensor<float> h = stack.forward(std::move(x), batch.mask, cache.stack);
    h.reshape({B * S, config_.d_model});
    return head.forward(std::move(h), cache.head);
  }

  LMConfig config_;
};

// The three models' FFN slots.
using DenseFFN = nexa::T5FFN<nexa::Relu>;
using TokenMoEFFN = nexa::MoELayer<nexa::TopKRouter<1>, nexa::T5FFN<nexa::Relu>>;
using Classifier = nexa::BertModel<>;
using NexaMoeFFN = nexa::MoELayer<nexa::SharedSequenceRouter<Classifier, 1>, nexa::T5FFN<nexa::Relu>>;
using DomainRouter = nexa::SequenceClassifierRouter<Classifier, 1>;

inline nexa::ExpertConfig dense_ffn(const LMConfig& c) {
  return {.d_model = c.d_model, .d_ff = c.d_ff, .dropout = c.dropout};
}

inline nexa::MoEConfig moe_ffn(const LMConfig& c) {
  return {.d_model = c.d_model,
          .d_ff = c.d_ff,
          .num_experts = c.experts,
          .dropout = c.dropout,
          .load_balance_coef = c.load_balance_coef,
          .z_loss_coef = c.z_loss_coef};
}

using DenseLM = DecoderLM<DenseFFN>;
using TokenMoELM = DecoderLM<TokenMoEFFN>;

// NEXA-MOE: the LM plus the domain classifier that routes it (one for every layer).
class NexaMoeLM : public DecoderLM<NexaMoeFFN> {
 public:
  std::shared_ptr<DomainRouter> router;

  NexaMoeLM() = default;
  // The classifier's num_labels must equal config.experts. supervised_coef weights the routing
  // cross-entropy on the domain labels.
  NexaMoeLM(const LMConfig& config, Classifier classifier, double supervised_coef, nexa::Rng& rng)
      : DecoderLM<NexaMoeFFN>(config, moe_ffn(config), rng) {
    nexa::MoEConfig mc = moe_ffn(config);
    // The domains are imbalanced on purpose (BIO is three quarters of the corpus): balancing
    // the classifier's choices would fight its labels, so only the z-loss stays.
    mc.load_balance_coef = 0;
    mc.supervised_coef = supervised_coef;
    router = std::make_shared<DomainRouter>(mc.router(), std::move(classifier));
    for (auto& block : stack.blocks) block.ffn.router.attach(router);
  }

  // Classifies the batch's texts (route: [CLS] text [SEP] in the classifier's WordPiece ids,
  // with domain labels when training), then runs the LM; training ends with the classifier's one
  // backward for every layer.
  template <class OnLayer>
  StepLoss step(const nexa::SequenceBatch& route, const TokenBatch& batch, bool train, OnLayer&& on_layer) {
    (void)router->classify(route);
    StepLoss out = DecoderLM<NexaMoeFFN>::step(batch, train, on_layer);
    if (train) router->backward_classifier();
    out.aux += router->aux().total();
    return out;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    DecoderLM<NexaMoeFFN>::visit_params(f, prefix);
    router->visit_params(f, nexa::join_name(prefix, "router"));
  }
};

}  // namespace nexa_moe
