#pragma once
// Stack<Block>: N blocks in sequence, with what they share: T5's relative position bias (one
// table, computed once per forward and passed to every block, its gradient summed over blocks)
// and an optional final norm (T5's final_layer_norm after pre-LN blocks).
//   Stack<PreLNBlock<FlashAttention<>, MoELayer<TopKRouter<2>, T5FFN<Relu>>>> encoder(config, rng);
// Block may be any block type, Checkpointed<...> included. Parameter names under the prefix:
// block.<i>.* (T5's; the relative bias as block.0.layer.0.SelfAttention.relative_attention_bias,
// where transformers keeps it) and final_layer_norm.*.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nexa/attention/kv_cache.hpp"
#include "nexa/attention/relative_position_bias.hpp"
#include "nexa/blocks/sequence_context.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa {

template <class BlockConfig>
struct StackConfig {
  index_t layers = 1;
  BlockConfig block = {};
  index_t relative_buckets = 0;         // T5's relative_attention_num_buckets; 0 = no position bias
  index_t relative_max_distance = 128;  // T5's relative_attention_max_distance
  bool final_norm = false;              // a norm after the last block (T5: final_layer_norm)
};

template <class Block, class T = float, class D = cpu>
class Stack {
 public:
  using BlockT = typename Block::template rebind<T, D>;
  using Norm = typename BlockT::Norm;

  // Shared by every stack of the same block config, so Stack<B> and Stack<Checkpointed<B>> take
  // the same one.
  using Config = StackConfig<typename BlockT::Config>;
  struct Cache {
    std::vector<typename BlockT::Cache> blocks;
    Tensor<T, D> position_bias;  // [heads, 2S - 1] or empty
    typename Norm::Cache final_norm;
    [[nodiscard]] double aux_loss() const {
      double total = 0;
      for (const auto& b : blocks) total += b.aux_loss();
      return total;
    }
  };
  template <class T2, class D2>
  using rebind = Stack<Block, T2, D2>;

  std::vector<BlockT> blocks;
  RelativePositionBias<T, D> position_bias;  // used when config.relative_buckets > 0
  Norm final_norm;                           // used when config.final_norm

  Stack() = default;
  Stack(const Config& config, Rng& rng) : config_(config) {
    require(config.layers > 0, "Stack", "layers must be positive, got ", config.layers);
    require(config.relative_buckets >= 0, "Stack", "relative_buckets must be 0 (none) or positive, got ",
            config.relative_buckets);
    blocks.reserve(static_cast<std::size_t>(config.layers));
    for (index_t i = 0; i < config.layers; ++i) blocks.emplace_back(config.block, rng);
    if (has_position_bias())
      position_bias = RelativePositionBias<T, D>({.heads = config.block.heads,
                                                  .num_buckets = config.relative_buckets,
                                                  .max_distance = config.relative_max_distance,
                                                  .bidirectional = !config.block.causal,
                                                  .d_model = config.block.d_model},
                                                 rng);
    if (config.final_norm) final_norm = Norm({config.block.d_model, config.block.norm_eps}, rng);
  }

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] bool has_position_bias() const { return config_.relative_buckets > 0; }

  void set_training(bool on) {
    for (auto& b : blocks) b.set_training(on);
  }
  template <class F>
  void visit_dropouts(F&& f) {
    for (auto& b : blocks) b.visit_dropouts(f);
  }

  // x: [B, S, d_model]; mask, global: [B, S] of 0/1 or empty. Returns [B, S, d_model].
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, TensorView<const std::int32_t, D> mask, Cache& cache,
                                     TensorView<const std::int32_t, D> global = {}) {
    return forward(clone(x), mask, cache, global);
  }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, TensorView<const std::int32_t, D> mask, Cache& cache,
                                     TensorView<const std::int32_t, D> global = {}) {
    require(!blocks.empty(), "Stack", "module is not constructed");
    require(x.rank() == 3 && x.dim(1) > 0, "Stack", "input shape expected [batch, seq, d_model], got ", x.shape());
    cache.blocks.resize(blocks.size());
    cache.position_bias = has_position_bias() ? position_bias.forward(x.dim(1)) : Tensor<T, D>();
    const SequenceContext<T, D> context{mask, cache.position_bias.cview(), global};
    for (std::size_t i = 0; i < blocks.size(); ++i) x = blocks[i].forward(std::move(x), context, cache.blocks[i]);
    if (config_.final_norm) x = final_norm.forward(std::move(x), cache.final_norm);
    return std::move(x);
  }

  // Forward without keeping anything (inference).
  [[nodiscard]] Tensor<T, D> apply(TensorView<const T, D> x, TensorView<const std::int32_t, D> mask = {},
                                   TensorView<const std::int32_t, D> global = {}) {
    Cache cache;
    return forward(x, mask, cache, global);
  }

  // Incremental causal decoding (generation with a KV cache): x [B, n, d_model] holds the next n
  // positions; `kv` holds one KVCache per block (resized on the first call); key_mask [B, L]
  // covers all L = kv[0].length + n positions (0: padding; prompts of different lengths are
  // padded on the left), or is empty. Returns the last n rows of forward() over all L positions
  // (after the final norm), without dropout. Blocks must provide decode (PreLNBlock does).
  [[nodiscard]] Tensor<T, D> decode(TensorView<const T, D> x, std::vector<KVCache<T, D>>& kv,
                                    TensorView<const std::int32_t, D> key_mask = {}) {
    require(!blocks.empty(), "Stack", "module is not constructed");
    require(x.rank() == 3 && x.dim(1) > 0, "Stack", "input shape expected [batch, n, d_model], got ", x.shape());
    kv.resize(blocks.size());
    for (const KVCache<T, D>& c : kv)
      require(c.length == kv.front().length, "Stack", "every block's KV cache must hold the same positions, got ",
              c.length, " and ", kv.front().length, " (one cache vector per sequence batch)");
    const index_t L = kv.front().length + x.dim(1);
    const Tensor<T, D> bias = has_position_bias() ? position_bias.forward(L) : Tensor<T, D>();
    Tensor<T, D> h = clone(x);
    for (std::size_t i = 0; i < blocks.size(); ++i) h = blocks[i].decode(h.cview(), kv[i], key_mask, bias.cview());
    return config_.final_norm ? final_norm.apply(h.cview()) : std::move(h);
  }

  // Accumulates every parameter's gradient (the blocks' auxiliary losses included); returns dx.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    require(cache.blocks.size() == blocks.size(), "Stack", "backward needs a forward's cache");
    Tensor<T, D> d = config_.final_norm ? final_norm.backward(dy, cache.final_norm) : clone(dy);
    Tensor<T, D> d_bias;
    if (has_position_bias()) d_bias = Tensor<T, D>(cache.position_bias.shape());
    for (std::size_t i = blocks.size(); i-- > 0;) d = blocks[i].backward(d.cview(), cache.blocks[i], d_bias.view());
    if (has_position_bias()) position_bias.backward(d_bias.cview());
    return d;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const std::string block_prefix = join_name(prefix, "block." + std::to_string(i));
      blocks[i].visit_params(f, block_prefix);
      if (i == 0 && has_position_bias())
        position_bias.visit_params(f, join_name(block_prefix, "layer.0.SelfAttention"));
    }
    if (config_.final_norm) final_norm.visit_params(f, join_name(prefix, "final_layer_norm"));
  }

 private:
  Config config_;
};

}  // namespace nexa
