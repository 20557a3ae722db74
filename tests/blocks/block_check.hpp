#pragma once
// Gradient checks shared by the block tests: a module in double, a fixed random upstream
// gradient r, loss = sum(y * r) + the module's auxiliary loss, central differences against the
// analytic gradients of the input, every trainable parameter and (when used) the position bias.
#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <string>

#include "models/grad_util.hpp"
#include "nexa/blocks/sequence_context.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/nn/dropout.hpp"

namespace nexa::testing {

// Rewinds every dropout of a module to call 0, so each forward replays the same masks.
template <class Module>
void rewind_dropouts(Module& m) {
  m.visit_dropouts([](auto& d) { d.rewind(0); });
}

// A block (PreLNBlock, PostLNBlock, Checkpointed<...>) against central differences, with a random
// relative position bias [heads, 2S - 1] when `with_bias`.
template <class Block>
void check_block_gradients(Block& block, Tensor<double> x, const Tensor<std::int32_t>& mask, bool with_bias, Rng& rng) {
  const index_t S = x.dim(1), H = block.config().heads;
  Tensor<double> bias;
  if (with_bias) bias = Tensor<double>::randn({H, 2 * S - 1}, rng);
  const SequenceContext<double> context{mask.cview(), bias.cview(), {}};
  const auto r = Tensor<double>::randn(x.shape(), rng);
  zero_grads(block);
  rewind_dropouts(block);
  typename Block::Cache cache;
  const auto y = block.forward(x.cview(), context, cache);
  Tensor<double> d_bias;
  if (with_bias) d_bias = Tensor<double>(bias.shape());
  const auto dx = block.backward(r.cview(), cache, d_bias.view());
  auto loss = [&] {
    rewind_dropouts(block);
    typename Block::Cache c;
    const double value = weighted_sum(block.forward(x.cview(), context, c), r);
    return value + c.aux_loss();
  };
  CHECK(gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  if (with_bias) CHECK(gradient_error(loss, bias.data(), bias.numel(), d_bias.data()) < 1e-6);
  for (auto& [name, p] : trainable_params(block))
    check_param_gradient(loss, name, p->value.data(), p->grad.data(), p->numel());
}

}  // namespace nexa::testing
