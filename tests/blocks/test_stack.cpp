// Stack: whole-stack gradient checks in double (T5 blocks with an MoE FFN, shared relative
// position bias, final norm; BERT-style blocks); Checkpointed blocks give bitwise the plain
// stack's outputs and gradients (dropout on, other forwards in between); an encoder with T5
// blocks and an MoE FFN learns a toy task that needs attention and positions.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "blocks/block_check.hpp"
#include "nexa/attention/full_attention.hpp"
#include "nexa/blocks/checkpointed.hpp"
#include "nexa/blocks/post_ln_block.hpp"
#include "nexa/blocks/pre_ln_block.hpp"
#include "nexa/blocks/stack.hpp"
#include "nexa/moe.hpp"
#include "nexa/nn/embedding.hpp"
#include "nexa/train/train.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {

using Dense = nexa::T5FFN<nexa::Relu>;
using MoE = nexa::MoELayer<nexa::TopKRouter<2>, Dense>;
using T5Block = nexa::PreLNBlock<nexa::FullAttention<>, MoE>;

template <class StackT>
void check_stack_gradients(StackT& stack, Tensor<double> x, const Tensor<std::int32_t>& mask, nexa::Rng& rng) {
  const auto r = Tensor<double>::randn(x.shape(), rng);
  nexa::testing::zero_grads(stack);
  nexa::testing::rewind_dropouts(stack);
  typename StackT::Cache cache;
  (void)stack.forward(x.cview(), mask.cview(), cache);
  const auto dx = stack.backward(r.cview(), cache);
  auto loss = [&] {
    nexa::testing::rewind_dropouts(stack);
    typename StackT::Cache c;
    const double value = nexa::testing::weighted_sum(stack.forward(x.cview(), mask.cview(), c), r);
    return value + c.aux_loss();
  };
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  for (auto& [name, p] : nexa::testing::trainable_params(stack))
    nexa::testing::check_param_gradient(loss, name, p->value.data(), p->grad.data(), p->numel());
}

const auto padding = Tensor<std::int32_t>::from_host({2, 6}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0});

}  // namespace

TEST_CASE("Stack of T5 blocks with an MoE FFN, shared relative bias and final norm: gradients check") {
  nexa::Rng rng(10);
  nexa::Stack<T5Block, double> stack({.layers = 2,
                                      .block = {.d_model = 6,
                                                .heads = 2,
                                                .dropout = 0.1,
                                                .attention_dropout = 0.1,
                                                .ffn = {.d_model = 6, .d_ff = 8, .num_experts = 3}},
                                      .relative_buckets = 8,
                                      .relative_max_distance = 16,
                                      .final_norm = true},
                                     rng);
  // One relative bias table for the whole stack, named where transformers keeps it.
  index_t bias_tables = 0;
  stack.visit_params(
      [&](const std::string& name, auto&) {
        if (name.find("relative_attention_bias") != std::string::npos) {
          CHECK(name == "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
          ++bias_tables;
        }
      },
      "encoder");
  CHECK(bias_tables == 1);
  check_stack_gradients(stack, Tensor<double>::randn({2, 6, 6}, rng), padding, rng);
}

TEST_CASE("Stack of BERT-style blocks: gradients check") {
  nexa::Rng rng(11);
  nexa::Stack<nexa::PostLNBlock<nexa::FullAttention<>, Dense>, double> stack(
      {.layers = 2, .block = {.d_model = 6, .heads = 3, .init_std = 0.5, .ffn = {.d_model = 6, .d_ff = 8}}}, rng);
  check_stack_gradients(stack, Tensor<double>::randn({2, 6, 6}, rng), padding, rng);
}

TEST_CASE("Checkpointed blocks: bitwise the plain stack's outputs and gradients, with dropout") {
  const nexa::Stack<T5Block>::Config config{
      .layers = 3,
      .block = {.d_model = 16,
                .heads = 4,
                .dropout = 0.2,
                .attention_dropout = 0.1,
                .ffn = {.d_model = 16, .d_ff = 32, .num_experts = 4, .dropout = 0.1}},
      .relative_buckets = 8,
      .final_norm = true};
  nexa::Rng rng_plain(12), rng_checkpointed(12);
  nexa::Stack<T5Block> plain(config, rng_plain);
  nexa::Stack<nexa::Checkpointed<T5Block>> checkpointed(config, rng_checkpointed);
  nexa::Rng rng(13);
  const auto x = Tensor<float>::randn({2, 7, 16}, rng);
  const auto other = Tensor<float>::randn({1, 5, 16}, rng);
  const auto dy = Tensor<float>::randn({2, 7, 16}, rng);
  const auto mask = Tensor<std::int32_t>::from_host({2, 7}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0});

  for (int step = 0; step < 2; ++step) {  // the second step draws new dropout masks in both
    nexa::Stack<T5Block>::Cache plain_cache;
    nexa::Stack<nexa::Checkpointed<T5Block>>::Cache checkpointed_cache;
    const auto y_plain = plain.forward(x.cview(), mask.cview(), plain_cache);
    const auto y_checkpointed = checkpointed.forward(x.cview(), mask.cview(), checkpointed_cache);
    CHECK(y_plain.to_host() == y_checkpointed.to_host());
    CHECK(plain_cache.aux_loss() == checkpointed_cache.aux_loss());
    // Another micro-batch's forward between this forward and its backward, in both.
    (void)plain.apply(other.cview());
    (void)checkpointed.apply(other.cview());
    const auto dx_plain = plain.backward(dy.cview(), plain_cache);
    const auto dx_checkpointed = checkpointed.backward(dy.cview(), checkpointed_cache);
    CHECK(dx_plain.to_host() == dx_checkpointed.to_host());
  }
  std::vector<std::vector<float>> grads_plain, grads_checkpointed;
  plain.visit_params([&](const std::string&, nexa::Param<float>& p) { grads_plain.push_back(p.grad.to_host()); });
  checkpointed.visit_params(
      [&](const std::string&, nexa::Param<float>& p) { grads_checkpointed.push_back(p.grad.to_host()); });
  REQUIRE(grads_plain.size() == grads_checkpointed.size());
  for (std::size_t i = 0; i < grads_plain.size(); ++i) CHECK(grads_plain[i] == grads_checkpointed[i]);
  // The checkpointed cache keeps one activation per block, the plain one the whole block cache.
  nexa::Stack<nexa::Checkpointed<T5Block>>::Cache kept;
  (void)checkpointed.forward(x.cview(), mask.cview(), kept);
  for (const auto& block : kept.blocks) CHECK(block.input.shape() == nexa::Shape{2, 7, 16});
}

namespace {

// Embedding -> T5 encoder stack with MoE FFNs -> vocabulary head.
struct ToyEncoder {
  nexa::Embedding<float> embed;
  nexa::Stack<T5Block> encoder;
  nexa::Linear<float> head;

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    embed.visit_params(f, nexa::join_name(prefix, "shared"));
    encoder.visit_params(f, nexa::join_name(prefix, "encoder"));
    head.visit_params(f, nexa::join_name(prefix, "lm_head"));
  }
};

}  // namespace

TEST_CASE("An encoder of T5 blocks with MoE FFNs learns to copy the previous token: the loss falls") {
  constexpr index_t vocab = 8, d = 32, B = 16, S = 12;
  nexa::Rng rng(14);
  ToyEncoder model{
      nexa::Embedding<float>({.num_embeddings = vocab, .embedding_dim = d}, rng),
      nexa::Stack<T5Block>({.layers = 2,
                            .block = {.d_model = d, .heads = 4, .ffn = {.d_model = d, .d_ff = 64, .num_experts = 4}},
                            .relative_buckets = 16,
                            .final_norm = true},
                           rng),
      nexa::Linear<float>({.in_features = d, .out_features = vocab}, rng)};
  nexa::train::AdamW optimizer(model, {.lr = 3e-3, .weight_decay = 0.0});
  const nexa::RandomStream data = rng.stream();
  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    auto ids = Tensor<std::int32_t>({B, S});
    auto targets = Tensor<std::int32_t>({B * S});
    for (index_t i = 0; i < B * S; ++i)
      ids.data()[i] = static_cast<std::int32_t>(data.uniform(static_cast<std::uint64_t>(step * B * S + i)) * vocab);
    for (index_t b = 0; b < B; ++b)
      for (index_t s = 0; s < S; ++s) targets.data()[b * S + s] = ids(b, s == 0 ? 0 : s - 1);
    nexa::Embedding<float>::Cache embed_cache;
    nexa::Stack<T5Block>::Cache encoder_cache;
    nexa::Linear<float>::Cache head_cache;
    auto h = model.encoder.forward(model.embed.forward(ids.cview(), embed_cache), {}, encoder_cache);
    auto logits = model.head.forward(std::move(h), head_cache);
    auto [loss, dlogits] = nexa::train::cross_entropy(logits.cview().reshaped({B * S, vocab}), targets);
    model.embed.backward(
        model.encoder
            .backward(model.head.backward(dlogits.cview().reshaped({B, S, vocab}), head_cache).cview(), encoder_cache)
            .cview(),
        embed_cache);
    optimizer.step();
    optimizer.zero_grad();
    if (step < 10) first += loss / 10;
    if (step >= 190) last += loss / 10;
  }
  MESSAGE("toy task cross-entropy: first 10 steps ", first, ", last 10 steps ", last);
  CHECK(last < 0.3 * first);
}
