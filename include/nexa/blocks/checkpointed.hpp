#pragma once
// Checkpointed<Block>: gradient checkpointing. The forward runs the block and keeps only its
// input (plus the O(S) masks and position bias and each dropout's call index); the backward
// runs the forward again with a cache, replaying every dropout mask, then the block's backward.
// Gradients are identical to the plain block's; activation memory per block drops from the
// block's whole cache to one [B, S, d_model] tensor, for about one extra forward of compute.
// A drop-in replacement wherever a block goes (Stack<Checkpointed<PreLNBlock<...>>>); parameter
// names are the block's own.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nexa/blocks/sequence_context.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/nn/dropout.hpp"

namespace nexa {

template <class Block, class T = float, class D = cpu>
class Checkpointed {
 public:
  using BlockT = typename Block::template rebind<T, D>;
  using Config = typename BlockT::Config;
  using Norm = typename BlockT::Norm;

  struct Cache {
    Tensor<T, D> input;            // the block's input, the only activation kept
    Tensor<std::int32_t, D> mask;  // copies of the context: the caller's views may be gone
    Tensor<T, D> position_bias;
    Tensor<std::int32_t, D> global;
    std::vector<std::uint64_t> dropout_calls;  // each dropout's call index at the forward
    double aux = 0;                            // the block's auxiliary loss at the forward
    [[nodiscard]] double aux_loss() const { return aux; }
  };
  template <class T2, class D2>
  using rebind = Checkpointed<Block, T2, D2>;

  BlockT block;

  Checkpointed() = default;
  Checkpointed(const Config& config, Rng& rng) : block(config, rng) {}

  [[nodiscard]] const Config& config() const { return block.config(); }
  void set_training(bool on) { block.set_training(on); }
  template <class F>
  void visit_dropouts(F&& f) {
    block.visit_dropouts(f);
  }

  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, const SequenceContext<T, D>& context, Cache& cache) {
    return forward(clone(x), context, cache);
  }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, const SequenceContext<T, D>& context, Cache& cache) {
    cache.dropout_calls.clear();
    block.visit_dropouts([&](Dropout<T, D>& d) { cache.dropout_calls.push_back(d.next_call()); });
    typename BlockT::Cache full;
    Tensor<T, D> y = block.forward(x.cview(), context, full);
    cache.aux = full.aux_loss();
    cache.input = std::move(x);
    cache.mask = context.mask.empty() ? Tensor<std::int32_t, D>() : clone(context.mask);
    cache.position_bias = context.position_bias.empty() ? Tensor<T, D>() : clone(context.position_bias);
    cache.global = context.global.empty() ? Tensor<std::int32_t, D>() : clone(context.global);
    return y;
  }

  // Recomputes the forward (same dropout masks), then runs the block's backward. Dropout counters
  // are restored afterwards, so forwards issued between this block's forward and backward (other
  // micro-batches) keep their own masks.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache, TensorView<T, D> d_position_bias = {}) {
    require(!cache.input.empty(), "Checkpointed", "backward needs a forward's cache (each is used once)");
    std::vector<std::uint64_t> now;
    block.visit_dropouts([&](Dropout<T, D>& d) { now.push_back(d.next_call()); });
    std::size_t i = 0;
    block.visit_dropouts([&](Dropout<T, D>& d) { d.rewind(cache.dropout_calls[i++]); });
    const SequenceContext<T, D> context{cache.mask.cview(), cache.position_bias.cview(), cache.global.cview()};
    typename BlockT::Cache full;
    (void)block.forward(std::move(cache.input), context, full);
    i = 0;
    block.visit_dropouts([&](Dropout<T, D>& d) { d.rewind(now[i++]); });
    cache.input = Tensor<T, D>();
    return block.backward(dy, full, d_position_bias);
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    block.visit_params(f, prefix);
  }
};

}  // namespace nexa
