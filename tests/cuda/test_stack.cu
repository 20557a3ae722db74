// A small T5-style encoder with D = cuda against the same model on the CPU: Embedding in front of
// Stack<PreLNBlock<FlashAttention<>, FFN>> (2 blocks, T5's shared relative position bias, a final
// RMSNorm), once with a 4-expert top-2 MoE FFN (load-balancing and z-losses on) and once with a
// dense T5FFN; padding masks. Forward output, auxiliary loss, dx and every parameter gradient
// (embedding, norms, projections, router, experts, relative bias) after a backward from random
// gradients, which start at random values. Embedding alone is compared bit for bit in float and
// double (the device sums each row's tokens in the CPU's order).
#include <cmath>
#include <cstdint>
#include <vector>

// support.hpp first: it brings in nexa/backend/cuda.hpp, which keeps Eigen host-only.
#include "module_support.hpp"

#include "nexa/attention/flash_attention.hpp"
#include "nexa/blocks/pre_ln_block.hpp"
#include "nexa/blocks/stack.hpp"
#include "nexa/moe/moe_layer.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/moe/topk_router.hpp"
#include "nexa/nn/embedding.hpp"

using namespace nexa_test;
using nexa::Tensor;

namespace {

constexpr index_t vocab = 50, d_model = 32, heads = 4;

// Ids with repeats (so the embedding backward sums several tokens into one row).
std::vector<std::int32_t> random_ids(index_t n, nexa::Rng& rng) {
  std::vector<std::int32_t> ids;
  for (float v : random_normal<float>(n, rng))
    ids.push_back(static_cast<std::int32_t>(std::min<double>(vocab - 1, std::abs(v) * 12)));
  return ids;
}

// [B, S]: sequence 1 ends in padding, sequence 2 starts with it.
std::vector<std::int32_t> padding_flags(index_t B, index_t S) {
  std::vector<std::int32_t> flags(static_cast<std::size_t>(B * S), 1);
  for (index_t s = 0; s < S; ++s) {
    if (B > 1 && s >= S - S / 3) flags[static_cast<std::size_t>(S + s)] = 0;
    if (B > 2 && s < 2) flags[static_cast<std::size_t>(2 * S + s)] = 0;
  }
  return flags;
}

// Stack's Config is its own per (T, D): one builder for both devices.
template <class Model, class FFNConfig>
Model make_stack(const FFNConfig& ffn, nexa::Rng& rng) {
  return Model({.layers = 2,
                .block = {.d_model = d_model, .heads = heads, .ffn = ffn},
                .relative_buckets = 8,
                .relative_max_distance = 20,
                .final_norm = true},
               rng);
}
template <class Module>
Module make_embedding(nexa::Rng& rng) {
  return Module({.num_embeddings = vocab, .embedding_dim = d_model, .init_std = 1.0}, rng);
}

template <class FFN, class FFNConfig>
void compare_stack(const FFNConfig& ffn, index_t B, index_t S, std::uint64_t seed) {
  CAPTURE(B);
  CAPTURE(S);
  using T = float;
  using Block = nexa::PreLNBlock<nexa::FlashAttention<>, FFN>;
  using CpuStack = nexa::Stack<Block, T, nexa::cpu>;
  using GpuStack = nexa::Stack<Block, T, nexa::cuda>;
  using CpuEmbedding = nexa::Embedding<T, nexa::cpu>;
  using GpuEmbedding = nexa::Embedding<T, nexa::cuda>;
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  auto cpu_embedding = make_embedding<CpuEmbedding>(cpu_rng);
  auto gpu_embedding = make_embedding<GpuEmbedding>(gpu_rng);
  auto cpu = make_stack<CpuStack>(ffn, cpu_rng);
  auto gpu = make_stack<GpuStack>(ffn, gpu_rng);
  seed_grads<T>(cpu_embedding, gpu_embedding, rng);
  seed_grads<T>(cpu, gpu, rng);

  const auto ids = Tensor<std::int32_t>::from_host({B, S}, random_ids(B * S, rng));
  const auto mask = Tensor<std::int32_t>::from_host({B, S}, padding_flags(B, S));
  const auto dy = Tensor<T>::randn({B, S, d_model}, rng);
  const auto ids_gpu = on_device(ids), mask_gpu = on_device(mask);

  typename CpuEmbedding::Cache cpu_embedding_cache;
  typename GpuEmbedding::Cache gpu_embedding_cache;
  typename CpuStack::Cache cpu_cache;
  typename GpuStack::Cache gpu_cache;
  const auto y = cpu.forward(cpu_embedding.forward(ids.cview(), cpu_embedding_cache), mask.cview(), cpu_cache);
  const auto y_gpu =
      gpu.forward(gpu_embedding.forward(ids_gpu.cview(), gpu_embedding_cache), mask_gpu.cview(), gpu_cache);
  REQUIRE(y_gpu.shape() == y.shape());
  CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
  CHECK(std::abs(gpu_cache.aux_loss() - cpu_cache.aux_loss()) <= tolerance<T>() * std::abs(cpu_cache.aux_loss()));

  const auto dx = cpu.backward(dy.cview(), cpu_cache);
  const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
  REQUIRE(dx_gpu.shape() == dx.shape());
  CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
  cpu_embedding.backward(dx.cview(), cpu_embedding_cache);
  gpu_embedding.backward(dx_gpu.cview(), gpu_embedding_cache);
  check_grads<T>(cpu, gpu, tolerance<T>());
  check_grads<T>(cpu_embedding, gpu_embedding, tolerance<T>());
}

template <class T>
void compare_embedding(index_t n, std::uint64_t seed) {
  CAPTURE(n);
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  auto cpu = make_embedding<nexa::Embedding<T, nexa::cpu>>(cpu_rng);
  auto gpu = make_embedding<nexa::Embedding<T, nexa::cuda>>(gpu_rng);
  seed_grads<T>(cpu, gpu, rng);
  const auto ids = Tensor<std::int32_t>::from_host({n}, random_ids(n, rng));
  const auto dy = Tensor<T>::randn({n, d_model}, rng);
  typename nexa::Embedding<T, nexa::cpu>::Cache cpu_cache;
  typename nexa::Embedding<T, nexa::cuda>::Cache gpu_cache;
  const auto y = cpu.forward(ids.cview(), cpu_cache);
  const auto y_gpu = gpu.forward(on_device(ids).cview(), gpu_cache);
  REQUIRE(y_gpu.shape() == y.shape());
  CHECK(bitwise_equal(y_gpu.to_host(), y.to_host()));
  cpu.backward(dy.cview(), cpu_cache);
  gpu.backward(on_device(dy).cview(), gpu_cache);
  CHECK(bitwise_equal(gpu.weight.grad.to_host(), cpu.weight.grad.to_host()));
  check_grads<T>(cpu, gpu, tolerance<T>());
}

}  // namespace

TEST_CASE("cuda Embedding matches the CPU bit for bit; out-of-range ids raise") {
  compare_embedding<float>(300, 501);
  compare_embedding<float>(1, 502);
  compare_embedding<double>(129, 503);
  nexa::Rng rng(504);
  auto gpu = make_embedding<nexa::Embedding<float, nexa::cuda>>(rng);
  const auto bad = DeviceTensor<std::int32_t>::from_host({3}, {1, vocab, 2});
  CHECK_THROWS_AS((void)gpu.apply(bad.cview()), nexa::Error);
}

TEST_CASE("cuda Stack<PreLNBlock<FlashAttention, MoELayer top-2>> with Embedding matches the CPU") {
  using MoE = nexa::MoELayer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::Relu>>;
  const nexa::MoEConfig moe{
      .d_model = d_model, .d_ff = 48, .num_experts = 4, .load_balance_coef = 0.01, .z_loss_coef = 0.001};
  compare_stack<MoE>(moe, 3, 21, 505);
  compare_stack<MoE>(moe, 2, 66, 506);
}

TEST_CASE("cuda Stack<PreLNBlock<FlashAttention, T5FFN>> with Embedding matches the CPU") {
  compare_stack<nexa::T5FFN<nexa::GatedGelu>>(nexa::ExpertConfig{.d_model = d_model, .d_ff = 40}, 3, 17, 507);
}
