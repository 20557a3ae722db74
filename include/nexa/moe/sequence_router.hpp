#pragma once
// SequenceClassifierRouter<Classifier, K> (NEXA-MOE's semantic router): a sequence classifier
// (e.g. BertModel with num_labels = E) assigns each whole sequence to its top-k of E domain
// experts, and every token of the sequence goes there with the classifier's probabilities as
// weights. It trains jointly with the experts: the gradient reaches the classifier through the
// routing weights, plus an optional supervised cross-entropy on domain labels
// (RouterConfig::supervised_coef; DomainTags turns NEXA-MOE's [PHYS]/[BIO]/[MAT] text prefixes
// into those labels, and into overrides at inference). At inference a domain override sends a sequence to a given
// expert and bypasses the classifier's choice. The classifier can be trained fully, only in its head, or not at all
// (set_training_scope).
//
// Use per batch: classify(batch) once, then the MoE layer's forward/backward. The layer's input
// holds the B sequences' tokens in row-major order, B * S' rows: S' may differ from the
// classifier's S (NEXA-MOE's experts and its BERT classifier tokenise the text their own ways).
// One batch is in flight per router: classify() replaces the previous batch's state.
//
// On CUDA (D = cuda) the batch stays on the host (SequenceBatch) and is copied to the device for
// the classifier; the per-sequence work ([B, K] overrides, [B, E] supervised loss, [B * S', K]
// weight gradients summed per sequence) runs on small host copies in the CPU's order, and route()
// hands tokens their sequence's rows by a device gather.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nexa/core/param.hpp"
#include "nexa/moe/config.hpp"
#include "nexa/moe/routing_head.hpp"
#include "nexa/ops/layout.hpp"

namespace nexa {

// One batch of token sequences for the classifier. domain_labels / domain_override: one per
// sequence, -1 for none.
struct SequenceBatch {
  Tensor<std::int32_t> ids;                   // [B, S]
  Tensor<std::int32_t> token_types;           // [B, S] or empty (all 0)
  Tensor<std::int32_t> mask;                  // [B, S] of 0/1, or empty (all 1)
  std::vector<std::int32_t> domain_labels;    // supervised routing targets (training)
  std::vector<std::int32_t> domain_override;  // forced expert (inference tag override)
};

enum class RouterTraining {
  Full,      // every classifier parameter trains
  HeadOnly,  // only the classification head ("classifier.*") trains
  Frozen,    // nothing trains; the classifier only routes
};

template <class Classifier, int K, class T = float, class D = cpu>
class SequenceClassifierRouter {
  static_assert(K >= 1, "SequenceClassifierRouter: K must be at least 1");

 public:
  using A = acc_t<T>;
  using Config = RouterConfig;
  using ClassifierT = typename Classifier::template rebind<T, D>;
  static constexpr int k = K;
  struct Cache : LogitRouting<A, D> {};
  template <class T2, class D2>
  using rebind = SequenceClassifierRouter<Classifier, K, T2, D2>;

  ClassifierT classifier;

  SequenceClassifierRouter() = default;
  // The classifier is set afterwards (set_classifier): its own config (vocabulary, sizes) is not
  // part of RouterConfig.
  SequenceClassifierRouter(const Config& config, Rng&) : config_(config) {
    require(config.num_experts >= K, "SequenceClassifierRouter", "num_experts must be at least K = ", K, ", got ",
            config.num_experts);
    set_supervised_coef(config.supervised_coef);
  }
  SequenceClassifierRouter(const Config& config, ClassifierT c) : config_(config) {
    require(config.num_experts >= K, "SequenceClassifierRouter", "num_experts must be at least K = ", K, ", got ",
            config.num_experts);
    set_classifier(std::move(c));
    set_supervised_coef(config.supervised_coef);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] index_t num_experts() const { return config_.num_experts; }
  void set_supervised_coef(double c) {
    require(c >= 0, "SequenceClassifierRouter", "supervised_coef must be non-negative, got ", c);
    supervised_coef_ = c;
  }

  void set_classifier(ClassifierT c) {
    require(c.config().num_labels == config_.num_experts, "SequenceClassifierRouter",
            "the classifier must have one label per expert: expected num_labels ", config_.num_experts, ", got ",
            c.config().num_labels);
    classifier = std::move(c);
    has_classifier_ = true;
  }

  void set_training_scope(RouterTraining scope) {
    classifier.visit_params([&](const std::string& name, auto& p) {
      const bool head = name.rfind("classifier", 0) == 0;
      p.set_trainable(scope == RouterTraining::Full || (scope == RouterTraining::HeadOnly && head));
    });
  }

  // Runs the classifier on a batch and fixes the sequences' routing for the following
  // forward/backward. Returns the sequence-level routing ([B, E] probabilities, [B, K] choices).
  const Routing<A, D>& classify(const SequenceBatch& batch) {
    require(has_classifier_, "SequenceClassifierRouter", "no classifier: call set_classifier first");
    require(batch.ids.rank() == 2, "SequenceClassifierRouter", "ids must be [B, S], got ", batch.ids.shape());
    const index_t B = batch.ids.dim(0);
    check_per_sequence(batch.domain_labels, B, "domain_labels");
    check_per_sequence(batch.domain_override, B, "domain_override");
    state_ = {};
    state_.batch = B;
    state_.labels = batch.domain_labels;
    state_.overrides = batch.domain_override;
    auto out = run_classifier(batch);
    state_.seq.logits = convert<A>(std::move(out.logits));
    route_logits(state_.seq, config_, K);
    apply_overrides();
    // The load-balancing loss counts first choices: after an override, the forced ones.
    compute_aux_losses(state_.seq, config_);
    state_.seq.aux.supervised = supervised_loss(nullptr);
    return state_.seq.routing;
  }

  // x: [B * S', d]: every token takes its sequence's routing (S' tokens per sequence).
  const Routing<A, D>& route(TensorView<const T, D> x, Cache& cache) {
    require(state_.batch > 0, "SequenceClassifierRouter", "route() before classify(): classify the batch first");
    const index_t tokens = x.rows(), B = state_.batch, E = config_.num_experts;
    require(tokens > 0 && tokens % B == 0, "SequenceClassifierRouter",
            "the layer's input must have B * S' rows, a multiple of the classified batch's B = ", B, " sequences, got ",
            tokens);
    const index_t S = tokens / B;
    const Routing<A, D>& seq = state_.seq.routing;
    cache.logits = Tensor<A, D>::uninitialized({tokens, E});
    cache.routing = {Tensor<A, D>::uninitialized({tokens, E}), Tensor<std::int32_t, D>::uninitialized({tokens, K}),
                     Tensor<A, D>::uninitialized({tokens, K})};
    if constexpr (std::same_as<D, cpu>) {
      for (index_t t = 0; t < tokens; ++t) {
        const index_t b = t / S;
        std::copy_n(state_.seq.logits.data() + b * E, E, cache.logits.data() + t * E);
        std::copy_n(seq.probs.data() + b * E, E, cache.routing.probs.data() + t * E);
        std::copy_n(seq.experts.data() + b * K, K, cache.routing.experts.data() + t * K);
        std::copy_n(seq.weights.data() + b * K, K, cache.routing.weights.data() + t * K);
      }
    } else {
      // Token t takes row t / S of each sequence-level tensor.
      std::vector<std::int32_t> host(static_cast<std::size_t>(tokens));
      for (index_t t = 0; t < tokens; ++t) host[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(t / S);
      const auto idx = Tensor<std::int32_t, D>::from_host({tokens}, host);
      LayoutKernel<D>::gather(tokens, E, idx.data(), state_.seq.logits.data(), Strides{E, 1}, cache.logits.data(),
                              Strides{E, 1});
      LayoutKernel<D>::gather(tokens, E, idx.data(), seq.probs.data(), Strides{E, 1}, cache.routing.probs.data(),
                              Strides{E, 1});
      LayoutKernel<D>::gather(tokens, index_t{K}, idx.data(), seq.experts.data(), Strides{K, 1},
                              cache.routing.experts.data(), Strides{K, 1});
      LayoutKernel<D>::gather(tokens, index_t{K}, idx.data(), seq.weights.data(), Strides{K, 1},
                              cache.routing.weights.data(), Strides{K, 1});
    }
    cache.aux = state_.seq.aux;  // sequence-level losses, counted once per layer
    return cache.routing;
  }

  // Sums dL/dweights over each sequence's tokens, adds the auxiliary and supervised losses'
  // gradients, and runs the classifier's backward. The routing does not depend on x: returns zeros.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const A, D> d_weights, Cache&) {
    accumulate_weight_grads(d_weights);
    backward_classifier();
    return Tensor<T, D>({d_weights.dim(0), config_.d_model});
  }

  // The two halves of backward(), for layers that share this router (SharedSequenceRouter): each
  // layer adds its dL/dweights, then the classifier runs backward once for all of them.
  void accumulate_weight_grads(TensorView<const A, D> d_weights) {
    const index_t B = state_.batch;
    require(B > 0, "SequenceClassifierRouter", "backward before classify(): classify the batch first");
    require(d_weights.rank() == 2 && d_weights.dim(0) > 0 && d_weights.dim(0) % B == 0 && d_weights.dim(1) == K,
            "SequenceClassifierRouter", "d_weights expected [B * S', ", K, "] with B = ", B, ", got ",
            d_weights.shape());
    const index_t S = d_weights.dim(0) / B;
    if (state_.d_seq.empty()) state_.d_seq = Tensor<A, D>({B, K});
    if constexpr (std::same_as<D, cpu>) {
      sum_weight_grads(d_weights.data(), state_.d_seq.data(), S);
    } else {
      // [B * S', K] and [B, K]: summed on host copies, in the CPU's order.
      std::vector<A> dw(static_cast<std::size_t>(d_weights.numel()));
      detail::Transfer<D>::to_host(dw.data(), d_weights.data(), dw.size());
      std::vector<A> d_seq = state_.d_seq.to_host();
      sum_weight_grads(dw.data(), d_seq.data(), S);
      state_.d_seq = Tensor<A, D>::from_host({B, K}, d_seq);
    }
  }
  void backward_classifier() {
    require(state_.batch > 0, "SequenceClassifierRouter", "backward before classify(): classify the batch first");
    if (state_.d_seq.empty()) state_.d_seq = Tensor<A, D>({state_.batch, K});
    Tensor<A, D> d_logits = logits_backward(state_.seq, config_, K, state_.d_seq.cview());
    state_.d_seq = Tensor<A, D>();
    (void)supervised_loss(&d_logits);
    const Tensor<T, D> d_logits_t = convert<T>(std::move(d_logits));
    typename ClassifierT::Grads grads;
    grads.logits = d_logits_t.cview();
    if constexpr (requires { grads.input = false; }) grads.input = false;  // only parameters need gradients
    (void)classifier.backward(grads, state_.classifier);
  }

  // The last classify()'s sequence-level routing and losses ([B, E] probabilities, [B, K] choices).
  [[nodiscard]] const Routing<A, D>& sequence_routing() const { return state_.seq.routing; }
  [[nodiscard]] const AuxLosses& aux() const { return state_.seq.aux; }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    classifier.visit_params(f, join_name(prefix, "classifier_model"));
  }

 private:
  struct BatchState {
    index_t batch = 0;
    LogitRouting<A, D> seq;  // sequence-level logits [B, E], routing, aux losses
    typename ClassifierT::Cache classifier;
    std::vector<std::int32_t> labels, overrides;
    Tensor<A, D> d_seq;  // [B, K]: dL/d(sequence weights) summed over tokens (and sharing layers)
  };

  // The classifier's forward; on the device, the batch's [B, S] ids, types and mask are copied there.
  auto run_classifier(const SequenceBatch& batch) {
    if constexpr (std::same_as<D, cpu>) {
      return classifier.forward(batch.ids, batch.token_types, batch.mask, state_.classifier);
    } else {
      const auto ids = batch.ids.template to<D>();
      const auto types = batch.token_types.empty() ? Tensor<std::int32_t, D>() : batch.token_types.template to<D>();
      const auto mask = batch.mask.empty() ? Tensor<std::int32_t, D>() : batch.mask.template to<D>();
      return classifier.forward(ids.cview(), types.cview(), mask.cview(), state_.classifier);
    }
  }

  // d_seq[b] += d_weights[t] over the tokens t of each sequence b (S per sequence), in token order.
  // An overridden sequence's weights are constants: nothing flows back through them (its
  // logits still carry the auxiliary losses' gradients).
  void sum_weight_grads(const A* d_weights, A* d_seq, index_t S) const {
    for (index_t t = 0; t < state_.batch * S; ++t) {
      if (overridden(t / S)) continue;
      for (index_t j = 0; j < K; ++j) d_seq[(t / S) * K + j] += d_weights[t * K + j];
    }
  }

  void check_per_sequence(const std::vector<std::int32_t>& v, index_t B, const char* what) const {
    require(v.empty() || static_cast<index_t>(v.size()) == B, "SequenceClassifierRouter", what, " expected ", B,
            " entries (one per sequence) or none, got ", v.size());
    for (std::int32_t e : v)
      require(e >= -1 && e < config_.num_experts, "SequenceClassifierRouter", what, " entry ", e, " is outside [-1, ",
              config_.num_experts, ")");
  }
  [[nodiscard]] bool overridden(index_t b) const {
    return !state_.overrides.empty() && state_.overrides[static_cast<std::size_t>(b)] >= 0;
  }

  // An overridden sequence goes to its forced expert with weight 1; its other K - 1 choices keep
  // their experts with weight 0.
  // On the device, on host copies of the [B, K] choices (only when a sequence is overridden).
  void apply_overrides() {
    Routing<A, D>& r = state_.seq.routing;
    if constexpr (std::same_as<D, cpu>) {
      apply_overrides(r.experts.data(), r.weights.data());
    } else {
      bool any = false;
      for (index_t b = 0; b < state_.batch; ++b) any = any || overridden(b);
      if (!any) return;
      std::vector<std::int32_t> experts = r.experts.to_host();
      std::vector<A> weights = r.weights.to_host();
      apply_overrides(experts.data(), weights.data());
      r.experts = Tensor<std::int32_t, D>::from_host(r.experts.shape(), experts);
      r.weights = Tensor<A, D>::from_host(r.weights.shape(), weights);
    }
  }
  void apply_overrides(std::int32_t* all_experts, A* all_weights) const {
    for (index_t b = 0; b < state_.batch; ++b) {
      if (!overridden(b)) continue;
      const std::int32_t forced = state_.overrides[static_cast<std::size_t>(b)];
      std::int32_t* experts = all_experts + b * K;
      A* weights = all_weights + b * K;
      std::int32_t* at = std::find(experts, experts + K, forced);
      if (at == experts + K) *(at = experts + K - 1) = forced;  // replaces the weakest choice
      std::rotate(experts, at, at + 1);                         // forced first, the rest in order
      weights[0] = A(1);
      std::fill(weights + 1, weights + K, A(0));
    }
  }

  // supervised_coef * mean over labelled, non-overridden sequences of CE(logits_b, label_b);
  // adds its gradient to d_logits when given. On the device, on host copies of the [B, E]
  // probabilities and gradient.
  double supervised_loss(Tensor<A, D>* d_logits) const {
    if (supervised_coef_ == 0.0 || state_.labels.empty()) return 0.0;
    if constexpr (std::same_as<D, cpu>) {
      return supervised_loss(state_.seq.routing.probs.data(), d_logits ? d_logits->data() : nullptr);
    } else {
      const std::vector<A> probs = state_.seq.routing.probs.to_host();
      if (!d_logits) return supervised_loss(probs.data(), nullptr);
      std::vector<A> d = d_logits->to_host();
      const double loss = supervised_loss(probs.data(), d.data());
      *d_logits = Tensor<A, D>::from_host(d_logits->shape(), d);
      return loss;
    }
  }
  double supervised_loss(const A* probs, A* d_logits) const {
    const index_t E = config_.num_experts;
    index_t n = 0;
    for (index_t b = 0; b < state_.batch; ++b)
      n += state_.labels[static_cast<std::size_t>(b)] >= 0 && !overridden(b) ? 1 : 0;
    if (n == 0) return 0.0;
    double loss = 0;
    for (index_t b = 0; b < state_.batch; ++b) {
      const std::int32_t label = state_.labels[static_cast<std::size_t>(b)];
      if (label < 0 || overridden(b)) continue;
      const A* p = probs + b * E;
      loss -= std::log(std::max(static_cast<double>(p[label]), 1e-300));
      if (d_logits) {
        const A scale = static_cast<A>(supervised_coef_ / static_cast<double>(n));
        for (index_t e = 0; e < E; ++e) d_logits[b * E + e] += scale * (p[e] - (e == label ? A(1) : A(0)));
      }
    }
    return supervised_coef_ * loss / static_cast<double>(n);
  }

  Config config_;
  double supervised_coef_ = 0.0;
  bool has_classifier_ = false;
  BatchState state_;
};

}  // namespace nexa
