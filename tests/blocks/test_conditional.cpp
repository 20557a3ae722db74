// Conditional<Stack>: the CoT processor engaged per sequence by reasoning_required. A mixed
// batch gives, sequence by sequence, the processor's output for flagged sequences and the input
// unchanged for the others; unflagged sequences cost nothing (nothing run, nothing kept);
// gradients check in double for a mixed batch; bad flags are reported.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "blocks/block_check.hpp"
#include "nexa/attention/local_global_attention.hpp"
#include "nexa/blocks/conditional.hpp"
#include "nexa/blocks/pre_ln_block.hpp"
#include "nexa/blocks/stack.hpp"
#include "nexa/moe.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {

// The CoT processor: sparse (local-window) attention blocks, as NEXA-CoT specifies.
using Processor = nexa::Stack<nexa::PreLNBlock<nexa::LocalGlobalAttention<4>, nexa::T5FFN<nexa::Relu>>>;
const Processor::Config config{.layers = 2,
                               .block = {.d_model = 8, .heads = 2, .dropout = 0.1, .ffn = {.d_model = 8, .d_ff = 16}},
                               .relative_buckets = 8,
                               .final_norm = true};

Tensor<float> sequence(const Tensor<float>& x, index_t b) { return nexa::clone(x.cview().slice_rows(b, b + 1)); }

}  // namespace

TEST_CASE("Conditional: flagged sequences go through the processor, the others pass unchanged") {
  nexa::Rng rng(20);
  nexa::Conditional<Processor> cot(config, rng);
  cot.set_training(false);
  const auto x = Tensor<float>::randn({4, 5, 8}, rng);
  const auto mask =
      Tensor<std::int32_t>::from_host({4, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0});
  const auto flags = Tensor<std::int32_t>::from_host({4}, {0, 1, 0, 1});
  nexa::Conditional<Processor>::Cache cache;
  const auto y = cot.forward(x.cview(), flags.cview(), mask.cview(), cache);
  CHECK(cache.engaged == std::vector<index_t>{1, 3});
  for (index_t b = 0; b < 4; ++b) {
    const auto mask_b = nexa::clone(mask.cview().slice_rows(b, b + 1));
    const auto expected = flags.data()[b] ? cot.inner.apply(sequence(x, b).cview(), mask_b.cview()) : sequence(x, b);
    CHECK(sequence(y, b).to_host() == expected.to_host());
  }
  // Backward: dy passes unchanged for the skipped sequences.
  const auto dy = Tensor<float>::randn(x.shape(), rng);
  const auto dx = cot.backward(dy.cview(), cache);
  CHECK(sequence(dx, 0).to_host() == sequence(dy, 0).to_host());
  CHECK(sequence(dx, 2).to_host() == sequence(dy, 2).to_host());
  CHECK(sequence(dx, 1).to_host() != sequence(dy, 1).to_host());
}

TEST_CASE("Conditional: a batch without the flag runs nothing and keeps nothing") {
  nexa::Rng rng(21);
  nexa::Conditional<Processor> cot(config, rng);
  const auto x = Tensor<float>::randn({3, 4, 8}, rng);
  nexa::Conditional<Processor>::Cache cache;
  const auto y = cot.forward(x.cview(), Tensor<std::int32_t>({3}).cview(), {}, cache);
  CHECK(y.to_host() == x.to_host());
  CHECK(cache.engaged.empty());
  CHECK(cache.inner.blocks.empty());
  CHECK(cache.aux_loss() == 0.0);
  cot.visit_params([](const std::string&, nexa::Param<float>& p) { p.zero_grad(); });
  const auto dy = Tensor<float>::randn(x.shape(), rng);
  CHECK(cot.backward(dy.cview(), cache).to_host() == dy.to_host());
  cot.visit_params([](const std::string&, nexa::Param<float>& p) {
    for (float g : p.grad.to_host()) REQUIRE(g == 0.0f);
  });
}

TEST_CASE("Conditional: gradients check in double for a mixed batch") {
  nexa::Rng rng(22);
  nexa::Conditional<Processor, double> cot(
      {.layers = 2,
       .block = {.d_model = 6, .heads = 2, .dropout = 0.2, .ffn = {.d_model = 6, .d_ff = 8}},
       .relative_buckets = 8},
      rng);
  auto x = Tensor<double>::randn({3, 4, 6}, rng);
  const auto flags = Tensor<std::int32_t>::from_host({3}, {1, 0, 1});
  const auto mask = Tensor<std::int32_t>::from_host({3, 4}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  const auto r = Tensor<double>::randn(x.shape(), rng);
  nexa::testing::rewind_dropouts(cot);
  decltype(cot)::Cache cache;
  (void)cot.forward(x.cview(), flags.cview(), mask.cview(), cache);
  const auto dx = cot.backward(r.cview(), cache);
  auto loss = [&] {
    nexa::testing::rewind_dropouts(cot);
    decltype(cot)::Cache c;
    return nexa::testing::weighted_sum(cot.forward(x.cview(), flags.cview(), mask.cview(), c), r);
  };
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  for (auto& [name, p] : nexa::testing::trainable_params(cot))
    nexa::testing::check_param_gradient(loss, name, p->value.data(), p->grad.data(), p->numel());
}

TEST_CASE("Conditional reports bad flags") {
  nexa::Rng rng(23);
  nexa::Conditional<Processor> cot(config, rng);
  nexa::Conditional<Processor>::Cache cache;
  const auto x = Tensor<float>::randn({2, 3, 8}, rng);
  CHECK_THROWS_WITH_AS((void)cot.forward(x.cview(), Tensor<std::int32_t>({3}).cview(), {}, cache),
                       doctest::Contains("Conditional: reasoning_required shape expected [2], got [3]"), nexa::Error);
  CHECK_THROWS_WITH_AS((void)cot.forward(x.cview(), Tensor<std::int32_t>::from_host({2}, {0, 2}).cview(), {}, cache),
                       doctest::Contains("reasoning_required values must be 0 or 1, got 2 at sequence 1"), nexa::Error);
}
