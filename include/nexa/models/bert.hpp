#pragma once
// BERT (Devlin et al. 2019) as Hugging Face's BertModel / BertForSequenceClassification:
//   BertModel<T, D> = BertEmbeddings -> BertEncoder (post-LN layers) -> BertPooler (tanh(W h[CLS]))
//   plus, when config.num_labels > 0, the sequence-classification head Dropout -> classifier
//   (Linear(hidden, num_labels)) on the pooled output.
//
//   nexa::Rng rng(0);
//   nexa::BertModel<> bert(nexa::BertConfig::from_json(dir), rng);
//   nexa::load_bert(bert, dir);            // dir/model.safetensors, or a .safetensors file
//   bert.set_training(false);              // eval mode: no dropout (modules start in training mode)
//   auto out = bert.apply(ids, {}, mask);  // ids, mask: [B, S] int32 -> out.last_hidden_state [B, S, H]
//   auto emb = nexa::bert_sentence_embedding(out.last_hidden_state, mask);  // all-MiniLM-L6-v2 style
//
// Training: forward(ids, token_types, mask, cache) then backward({.last_hidden_state = ..,
// .pooler_output = .., .logits = ..}, cache) (empty views contribute nothing), which accumulates
// every trainable parameter's gradient and returns d(input embeddings) [B, S, H].
//
// Parameter names are the state-dict names of HF's BertModel (embeddings.word_embeddings.weight,
// encoder.layer.0.attention.self.query.weight, ..., pooler.dense.weight) and, for the head,
// BertForSequenceClassification's classifier.weight / classifier.bias.
//
// load_bert policy for checkpoint names: a leading "bert." (task-model checkpoints) is dropped;
// the old LayerNorm.gamma / LayerNorm.beta names read as LayerNorm.weight / .bias; the buffers
// embeddings.position_ids and embeddings.token_type_ids are skipped (nexa uses positions 0..S-1
// and, without token types, type 0, which is what those buffers hold). Everything else must match
// exactly: one nexa::Error lists every missing tensor, every shape or dtype mismatch and (when
// strict) every tensor the model does not use (e.g. the cls.* pretraining heads: pass
// strict = false to skip them). A base checkpoint has no classifier: allowed by default
// (allow_missing_classifier), the head then keeps its random initialisation and the report says so.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "nexa/core/parallel.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/io/safetensors.hpp"
#include "nexa/models/bert_config.hpp"
#include "nexa/models/bert_embeddings.hpp"
#include "nexa/models/bert_layer.hpp"
#include "nexa/models/sentence_embedding.hpp"
#include "nexa/nn/activation.hpp"
#include "nexa/nn/dropout.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/ops/layout.hpp"

namespace nexa {

// pooled = tanh(dense(hidden[:, 0])): the [CLS] token's last hidden state. On a device the
// [CLS] rows move with LayoutKernel::gather and tanh runs through ActivationKernel<Tanh>.
template <class T = float, class D = cpu>
class BertPooler {
 public:
  using Config = BertConfig;
  struct Cache {
    typename Linear<T, D>::Cache dense;
    Tensor<T, D> output;  // [B, H], tanh's output (a device keeps its input: tanh' is taken there)
    index_t seq = 0;
  };
  template <class T2, class D2>
  using rebind = BertPooler<T2, D2>;

  Linear<T, D> dense;

  BertPooler() = default;
  BertPooler(const Config& config, Rng& rng)
      : dense(models_detail::bert_linear<T, D>(config.hidden, config.hidden, config.init_std, rng)) {}

  // hidden: [B, S, H] -> [B, H].
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> hidden, Cache& cache) const {
    const index_t H = dense.config().in_features;
    require(hidden.rank() == 3 && hidden.dim(1) > 0 && hidden.dim(2) == H, "BertPooler",
            "hidden shape expected [batch, seq, ", H, "], got ", hidden.shape());
    const index_t B = hidden.dim(0), S = hidden.dim(1);
    auto cls = Tensor<T, D>::uninitialized({B, H});
    if constexpr (std::same_as<D, cpu>) {
      for (index_t b = 0; b < B; ++b) std::copy_n(hidden.data() + b * S * H, H, cls.data() + b * H);
      Tensor<T, D> y = dense.forward(std::move(cls), cache.dense);
      for (index_t i = 0; i < y.numel(); ++i) y.data()[i] = std::tanh(y.data()[i]);
      cache.output = clone(y.cview());
      cache.seq = S;
      return y;
    } else {
      const Tensor<std::int32_t, D> rows = batch_rows(B);
      LayoutKernel<D>::gather(B, H, rows.data(), hidden.data(), Strides{S * H, 1}, cls.data(), Strides{H, 1});
      Tensor<T, D> y = dense.forward(std::move(cls), cache.dense);
      cache.output = clone(y.cview());  // tanh's input
      ActivationKernel<D>::template forward<Tanh>(y.numel(), y.data(), y.data());
      cache.seq = S;
      return y;
    }
  }

  // dy: [B, H] -> d(hidden) [B, S, H], nonzero at token 0 only.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    require(!cache.output.empty(), "BertPooler", "backward needs a forward's cache");
    require_shape(dy, cache.output.shape(), "BertPooler", "dy");
    const index_t B = dy.dim(0), H = dy.dim(1), S = cache.seq;
    auto g = Tensor<T, D>::uninitialized({B, H});
    if constexpr (std::same_as<D, cpu>) {
      for (index_t i = 0; i < g.numel(); ++i) {
        const T y = cache.output.data()[i];
        g.data()[i] = dy.data()[i] * (T(1) - y * y);
      }
    } else {
      ActivationKernel<D>::template backward<Tanh>(g.numel(), cache.output.data(), dy.data(), g.data());
    }
    const Tensor<T, D> dcls = dense.backward(g.cview(), cache.dense);
    auto dh = Tensor<T, D>::zeros({B, S, H});
    if constexpr (std::same_as<D, cpu>) {
      for (index_t b = 0; b < B; ++b) std::copy_n(dcls.data() + b * H, H, dh.data() + b * S * H);
    } else {
      const Tensor<std::int32_t, D> rows = batch_rows(B);
      LayoutKernel<D>::gather(B, H, rows.data(), dcls.data(), Strides{H, 1}, dh.data(), Strides{S * H, 1});
    }
    return dh;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    dense.visit_params(f, join_name(prefix, "dense"));
  }

 private:
  // 0, 1, .., B - 1 on D: the gather index that picks (or places) one row per batch entry.
  [[nodiscard]] static Tensor<std::int32_t, D> batch_rows(index_t B) {
    std::vector<std::int32_t> rows(static_cast<std::size_t>(B));
    for (index_t b = 0; b < B; ++b) rows[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(b);
    return Tensor<std::int32_t, D>::from_host({B}, rows);
  }
};

template <class T = float, class D = cpu>
class BertModel {
 public:
  using Config = BertConfig;
  struct Output {
    Tensor<T, D> last_hidden_state;  // [B, S, H]
    Tensor<T, D> pooler_output;      // [B, H]
    Tensor<T, D> logits;             // [B, num_labels]; empty without the head
  };
  // Upstream gradients for backward; an empty view contributes nothing.
  struct Grads {
    TensorView<const T, D> last_hidden_state = {};
    TensorView<const T, D> pooler_output = {};
    TensorView<const T, D> logits = {};
    // false: the caller needs no d(input embeddings), so backward stops below the lowest trainable
    // parameter (a head-only fine-tune costs one small GEMM, not a pass through the encoder) and
    // returns an empty tensor.
    bool input = true;
  };
  struct Cache {
    typename BertEmbeddings<T, D>::Cache embeddings;
    typename BertEncoder<T, D>::Cache encoder;
    typename BertPooler<T, D>::Cache pooler;
    typename Dropout<T, D>::Cache classifier_dropout;
    typename Linear<T, D>::Cache classifier;
    index_t batch = 0, seq = 0;
  };
  template <class T2, class D2>
  using rebind = BertModel<T2, D2>;

  BertEmbeddings<T, D> embeddings;
  BertEncoder<T, D> encoder;
  BertPooler<T, D> pooler;
  Dropout<T, D> classifier_dropout;
  Linear<T, D> classifier;  // only when config.num_labels > 0

  BertModel() = default;
  BertModel(const Config& config, Rng& rng)
      : embeddings(config, rng), encoder(config, rng), pooler(config, rng), config_(config) {
    if (config.num_labels > 0) {
      classifier_dropout = Dropout<T, D>({config.dropout}, rng);
      classifier = models_detail::bert_linear<T, D>(config.hidden, config.num_labels, config.init_std, rng);
    }
  }

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] bool has_classifier() const { return config_.num_labels > 0; }

  // Training mode (the default) applies every dropout; eval mode (false) none, as model.eval().
  void set_training(bool on) {
    embeddings.set_training(on);
    encoder.set_training(on);
    classifier_dropout.set_training(on);
  }
  // The next forward draws the dropout masks of call `next` in every dropout (replays a forward).
  void rewind(std::uint64_t next = 0) {
    embeddings.rewind(next);
    encoder.rewind(next);
    classifier_dropout.rewind(next);
  }

  // ids: [B, S] int32; token_types: [B, S] or empty (all 0); mask: [B, S] of 0/1 or empty (all 1).
  [[nodiscard]] Output forward(TensorView<const std::int32_t, D> ids, TensorView<const std::int32_t, D> token_types,
                               TensorView<const std::int32_t, D> mask, Cache& cache) {
    Tensor<T, D> x = embeddings.forward(ids, token_types, cache.embeddings);
    return finish(std::move(x), mask, cache);
  }
  // inputs_embeds: [B, S, H] in place of the word-embedding lookup.
  [[nodiscard]] Output forward_embeds(TensorView<const T, D> inputs_embeds,
                                      TensorView<const std::int32_t, D> token_types,
                                      TensorView<const std::int32_t, D> mask, Cache& cache) {
    Tensor<T, D> x = embeddings.forward_embeds(inputs_embeds, token_types, cache.embeddings);
    return finish(std::move(x), mask, cache);
  }
  // Inference: keeps no per-layer caches.
  [[nodiscard]] Output apply(TensorView<const std::int32_t, D> ids, TensorView<const std::int32_t, D> token_types = {},
                             TensorView<const std::int32_t, D> mask = {}) {
    typename BertEmbeddings<T, D>::Cache ec;
    Tensor<T, D> x = embeddings.forward(ids, token_types, ec);
    ec = {};
    check_mask(mask, x.dim(0), x.dim(1));
    Output out;
    out.last_hidden_state = encoder.apply(std::move(x), mask);
    typename BertPooler<T, D>::Cache pc;
    out.pooler_output = pooler.forward(out.last_hidden_state.cview(), pc);
    if (has_classifier()) {
      typename Dropout<T, D>::Cache dc;
      Tensor<T, D> p = clone(out.pooler_output.cview());
      classifier_dropout.forward_inplace(p.data(), p.numel(), dc);
      out.logits = classifier.apply(p.cview());
    }
    return out;
  }

  // Accumulates every trainable parameter's gradient; returns d(input embeddings) [B, S, H].
  [[nodiscard]] Tensor<T, D> backward(const Grads& grads, Cache& cache) {
    require(cache.seq > 0, "BertModel", "backward needs a forward's cache");
    const index_t B = cache.batch, S = cache.seq, H = config_.hidden;
    Tensor<T, D> dh = Tensor<T, D>::zeros({B, S, H});
    if (!grads.last_hidden_state.empty()) {
      require_shape(grads.last_hidden_state, dh.shape(), "BertModel", "d(last_hidden_state)");
      ops::axpy(T(1), grads.last_hidden_state, dh.view());
    }
    Tensor<T, D> dpool = Tensor<T, D>::zeros({B, H});
    if (!grads.pooler_output.empty()) {
      require_shape(grads.pooler_output, dpool.shape(), "BertModel", "d(pooler_output)");
      ops::axpy(T(1), grads.pooler_output, dpool.view());
    }
    if (!grads.logits.empty()) {
      require(has_classifier(), "BertModel", "d(logits) given but the model has no classifier (num_labels = 0)");
      require_shape(grads.logits, Shape{B, config_.num_labels}, "BertModel", "d(logits)");
      Tensor<T, D> dp = classifier.backward(grads.logits, cache.classifier);
      classifier_dropout.backward_inplace(dp.data(), dp.numel(), cache.classifier_dropout);
      ops::axpy(T(1), dp.cview(), dpool.view());
    }
    ops::axpy(T(1), pooler.backward(dpool.cview(), cache.pooler).cview(), dh.view());
    if (grads.input || has_trainable(embeddings)) {
      Tensor<T, D> dx = encoder.backward(dh.cview(), cache.encoder);
      Tensor<T, D> d_embeds = embeddings.backward(dx.cview(), cache.embeddings);
      return grads.input ? std::move(d_embeds) : Tensor<T, D>();
    }
    std::size_t lowest = 0;  // the lowest layer with a trainable parameter: nothing below needs a gradient
    while (lowest < encoder.layers.size() && !has_trainable(encoder.layers[lowest])) ++lowest;
    if (lowest < encoder.layers.size()) (void)encoder.backward(dh.cview(), cache.encoder, lowest);
    return Tensor<T, D>();
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    embeddings.visit_params(f, join_name(prefix, "embeddings"));
    encoder.visit_params(f, join_name(prefix, "encoder"));
    pooler.visit_params(f, join_name(prefix, "pooler"));
    if (has_classifier()) classifier.visit_params(f, join_name(prefix, "classifier"));
  }

 private:
  template <class Module>
  [[nodiscard]] static bool has_trainable(Module& m) {
    bool any = false;
    m.visit_params([&](const std::string&, auto& p) { any = any || p.trainable; });
    return any;
  }

  void check_mask(TensorView<const std::int32_t, D> mask, index_t B, index_t S) const {
    if (mask.empty()) return;
    require_shape(mask, Shape{B, S}, "BertModel", "attention mask");
    std::vector<std::int32_t> host;  // a device mask is checked on a host copy
    if constexpr (!std::same_as<D, cpu>) {
      host.resize(static_cast<std::size_t>(mask.numel()));
      detail::Transfer<D>::to_host(host.data(), mask.data(), host.size());
    }
    const std::int32_t* values = std::same_as<D, cpu> ? mask.data() : host.data();
    for (index_t i = 0; i < mask.numel(); ++i)
      require(values[i] == 0 || values[i] == 1, "BertModel", "attention mask values must be 0 or 1, got ", values[i],
              " at flat index ", i);
  }

  Output finish(Tensor<T, D>&& x, TensorView<const std::int32_t, D> mask, Cache& cache) {
    cache.batch = x.dim(0);
    cache.seq = x.dim(1);
    check_mask(mask, cache.batch, cache.seq);
    Output out;
    out.last_hidden_state = encoder.forward(std::move(x), mask, cache.encoder);
    out.pooler_output = pooler.forward(out.last_hidden_state.cview(), cache.pooler);
    if (has_classifier()) {
      Tensor<T, D> p = clone(out.pooler_output.cview());
      classifier_dropout.forward_inplace(p.data(), p.numel(), cache.classifier_dropout);
      out.logits = classifier.forward(std::move(p), cache.classifier);
    }
    return out;
  }

  Config config_;
};

struct BertLoadOptions {
  bool strict = true;                    // tensors in the file that the model does not use are an error
  bool allow_missing_classifier = true;  // a base checkpoint has no classifier.*: keep the head's init
  bool allow_missing_pooler = false;     // checkpoints saved without the pooler
};

struct BertLoadReport {
  std::vector<std::string> loaded;   // model parameter names read from the file
  std::vector<std::string> missing;  // parameters the file lacks and the options allow (left as initialised)
  std::vector<std::string> skipped;  // file tensors not used: buffers, and unexpected ones when !strict
};

// The model-side name of a checkpoint tensor (see the policy at the top of this file).
[[nodiscard]] inline std::string bert_canonical_name(std::string name) {
  if (name.rfind("bert.", 0) == 0) name.erase(0, 5);
  const auto ends_with = [&](std::string_view s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with("LayerNorm.gamma")) name.replace(name.size() - 5, 5, "weight");
  if (ends_with("LayerNorm.beta")) name.replace(name.size() - 4, 4, "bias");
  return name;
}

// Loads Hugging Face BERT weights (a .safetensors file, or a directory holding model.safetensors)
// into `model` by name, converting F32/F16/BF16/F64 to the model's scalar type. Nothing is
// written unless every check passes.
template <class Model>
BertLoadReport load_bert(Model& model, const std::filesystem::path& dir_or_file, const BertLoadOptions& options = {}) {
  std::filesystem::path path = dir_or_file;
  if (std::filesystem::is_directory(path)) {
    path /= "model.safetensors";
    require(std::filesystem::exists(path), "load_bert", dir_or_file.string(),
            ": no model.safetensors in the directory (only safetensors checkpoints are read; convert "
            "pytorch_model.bin with safetensors.torch.save_file)");
  }
  SafetensorsReader reader(path);
  const std::string context = detail::concat("load_bert: ", path.string());
  BertLoadReport report;
  detail::LoadProblems problems;
  std::map<std::string, std::string> by_model_name;  // model name -> file name
  for (const std::string& file_name : reader.names()) {
    const std::string name = bert_canonical_name(file_name);
    if (name == "embeddings.position_ids" || name == "embeddings.token_type_ids") {
      report.skipped.push_back(file_name);
      continue;
    }
    const auto [it, inserted] = by_model_name.emplace(name, file_name);
    if (!inserted)
      problems.duplicates.push_back(detail::concat(json::quote(it->second), " and ", json::quote(file_name)));
  }

  std::set<std::string> used;
  model.visit_params([&](const std::string& name, auto& p) {
    const auto it = by_model_name.find(name);
    if (it == by_model_name.end()) {
      const bool allowed = (options.allow_missing_classifier && name.rfind("classifier.", 0) == 0) ||
                           (options.allow_missing_pooler && name.rfind("pooler.", 0) == 0);
      (allowed ? report.missing : problems.missing).push_back(name);
      return;
    }
    used.insert(name);
    problems.check_tensor(it->second, reader.info(it->second), p.value.shape());
  });
  for (const auto& [name, file_name] : by_model_name) {
    if (used.count(name)) continue;
    (options.strict ? problems.unexpected : report.skipped).push_back(file_name);
  }
  problems.throw_if_any(detail::concat(context, ": cannot load into the model"));
  model.visit_params([&](const std::string& name, auto& p) {
    const auto it = by_model_name.find(name);
    if (it == by_model_name.end()) return;
    reader.read_into(it->second, p.value.view());
    report.loaded.push_back(name);
  });
  return report;
}

}  // namespace nexa
