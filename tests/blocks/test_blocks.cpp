// PreLNBlock and PostLNBlock: gradient checks in double with a dense FFN and with an MoELayer in
// the FFN slot (its auxiliary losses included), padding, relative position bias and dropout;
// parameter names; bad input. (Init std 0.5 in the post-LN checks: at BERT's 0.02 the attention
// gradients are so small that central differences measure round-off.)
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "blocks/block_check.hpp"
#include "nexa/attention/full_attention.hpp"
#include "nexa/blocks/post_ln_block.hpp"
#include "nexa/blocks/pre_ln_block.hpp"
#include "nexa/moe.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {

using Dense = nexa::T5FFN<nexa::Relu>;
using Gated = nexa::T5FFN<nexa::GatedGelu>;
using MoE = nexa::MoELayer<nexa::TopKRouter<2>, Dense>;

const auto padding = Tensor<std::int32_t>::from_host({2, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0});

}  // namespace

TEST_CASE("PreLNBlock: gradients check with a dense FFN, relative bias, padding and dropout") {
  nexa::Rng rng(1);
  nexa::PreLNBlock<nexa::FullAttention<>, Gated, double> block({.d_model = 6,
                                                                .heads = 2,
                                                                .dropout = 0.2,
                                                                .attention_dropout = 0.1,
                                                                .ffn = {.d_model = 6, .d_ff = 10, .dropout = 0.1}},
                                                               rng);
  const auto x = Tensor<double>::randn({2, 5, 6}, rng);
  nexa::testing::check_block_gradients(block, x, padding, true, rng);
}

TEST_CASE("PreLNBlock: an MoELayer in the FFN slot, its auxiliary losses part of the gradient") {
  nexa::Rng rng(2);
  nexa::PreLNBlock<nexa::FullAttention<>, MoE, double> block(
      {.d_model = 6,
       .heads = 3,
       .causal = true,
       .ffn = {.d_model = 6, .d_ff = 8, .num_experts = 4, .load_balance_coef = 0.1}},
      rng);
  const auto x = Tensor<double>::randn({2, 5, 6}, rng);
  nexa::testing::check_block_gradients(block, x, {}, false, rng);
  typename decltype(block)::Cache cache;
  (void)block.forward(x.cview(), {}, cache);
  CHECK(cache.aux_loss() > 0);
}

TEST_CASE("PostLNBlock: gradients check with a dense FFN and with an MoELayer") {
  nexa::Rng rng(3);
  SUBCASE("dense, padding, bias, dropout") {
    nexa::PostLNBlock<nexa::FullAttention<>, Dense, double> block({.d_model = 6,
                                                                   .heads = 2,
                                                                   .dropout = 0.2,
                                                                   .attention_dropout = 0.1,
                                                                   .init_std = 0.5,
                                                                   .ffn = {.d_model = 6, .d_ff = 10}},
                                                                  rng);
    nexa::testing::check_block_gradients(block, Tensor<double>::randn({2, 5, 6}, rng), padding, true, rng);
  }
  SUBCASE("MoE") {
    nexa::PostLNBlock<nexa::FullAttention<>, MoE, double> block(
        {.d_model = 6, .heads = 2, .init_std = 0.5, .ffn = {.d_model = 6, .d_ff = 8, .num_experts = 3}}, rng);
    nexa::testing::check_block_gradients(block, Tensor<double>::randn({2, 5, 6}, rng), padding, false, rng);
  }
}

TEST_CASE("Blocks name their parameters as transformers' T5 (dense and Switch MoE) and BERT") {
  nexa::Rng rng(4);
  auto names_of = [](auto& module) {
    std::vector<std::string> names;
    module.visit_params([&](const std::string& n, auto&) { names.push_back(n); }, "encoder.block.0");
    return names;
  };
  nexa::PreLNBlock<nexa::FullAttention<>, Dense> t5({.d_model = 4, .heads = 2, .ffn = {.d_model = 4, .d_ff = 8}}, rng);
  CHECK(names_of(t5) ==
        std::vector<std::string>{
            "encoder.block.0.layer.0.layer_norm.weight", "encoder.block.0.layer.0.SelfAttention.q.weight",
            "encoder.block.0.layer.0.SelfAttention.k.weight", "encoder.block.0.layer.0.SelfAttention.v.weight",
            "encoder.block.0.layer.0.SelfAttention.o.weight", "encoder.block.0.layer.1.layer_norm.weight",
            "encoder.block.0.layer.1.DenseReluDense.wi.weight", "encoder.block.0.layer.1.DenseReluDense.wo.weight"});
  nexa::PreLNBlock<nexa::FullAttention<>, MoE> switch_block(
      {.d_model = 4, .heads = 2, .ffn = {.d_model = 4, .d_ff = 8, .num_experts = 2}}, rng);
  const auto names = names_of(switch_block);
  CHECK(std::find(names.begin(), names.end(), "encoder.block.0.layer.1.mlp.router.classifier.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "encoder.block.0.layer.1.mlp.experts.expert_1.wo.weight") != names.end());
  nexa::PostLNBlock<nexa::FullAttention<>, Dense> bert({.d_model = 4, .heads = 2, .ffn = {.d_model = 4, .d_ff = 8}},
                                                       rng);
  CHECK(names_of(bert).front() == "encoder.block.0.attention.self.query.weight");
  CHECK(names_of(bert).back() == "encoder.block.0.output.LayerNorm.bias");
}

TEST_CASE("Blocks report bad configs and shapes") {
  using nexa::Error;
  nexa::Rng rng(5);
  using Block = nexa::PreLNBlock<nexa::FullAttention<>, Dense>;
  CHECK_THROWS_WITH_AS(Block({.d_model = 4, .heads = 2, .ffn = {.d_model = 6, .d_ff = 8}}, rng),
                       doctest::Contains("PreLNBlock: ffn.d_model expected 4, got 6"), Error);
  Block block({.d_model = 4, .heads = 2, .ffn = {.d_model = 4, .d_ff = 8}}, rng);
  Block::Cache cache;
  CHECK_THROWS_WITH_AS((void)block.forward(Tensor<float>({2, 3, 5}).cview(), {}, cache),
                       doctest::Contains("input shape expected [batch, seq, 4], got [2, 3, 5]"), Error);
  CHECK_THROWS_WITH_AS((void)block.backward(Tensor<float>({2, 3, 4}).cview(), cache),
                       doctest::Contains("backward needs a forward's cache"), Error);
  (void)block.forward(Tensor<float>({2, 3, 4}).cview(), {}, cache);
  CHECK_THROWS_WITH_AS((void)block.backward(Tensor<float>({2, 4, 4}).cview(), cache),
                       doctest::Contains("dy shape expected [2, 3, 4], got [2, 4, 4]"), Error);
}
