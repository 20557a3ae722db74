// The whole MoE layer with D = cuda against the same layer on the CPU: same seed, same
// parameters; forward output, auxiliary losses, dx and every parameter gradient, for top-1 and
// top-2, plain and gated experts, TopKRouter and NexusRouter (whose domain projection also runs on
// the device, add_expert included), with the load-balancing and z-losses on. Outputs start
// poisoned where the layer writes into caller memory, and the GPU gradients start at random
// values so that accumulation is checked too.
#include <cmath>
#include <cstdint>

#include "module_support.hpp"
#include "nexa/moe/moe_layer.hpp"
#include "nexa/moe/nexus_router.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/moe/topk_router.hpp"

using namespace nexa_test;
using nexa::Tensor;

namespace {

template <class Router, class Expert, class T>
void compare_layer(index_t tokens, index_t experts, std::uint64_t seed) {
  CAPTURE(tokens);
  CAPTURE(experts);
  using CpuLayer = nexa::MoELayer<Router, Expert, nexa::NoShared, nexa::cpu, T>;
  using GpuLayer = nexa::MoELayer<Router, Expert, nexa::NoShared, nexa::cuda, T>;
  const nexa::MoEConfig config{.d_model = 40,
                               .d_ff = 72,
                               .num_experts = experts,
                               .load_balance_coef = 0.01,
                               .z_loss_coef = 0.001,
                               .domain_dim = 6};  // read by NexusRouter only
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  CpuLayer cpu(config, cpu_rng);
  GpuLayer gpu(config, gpu_rng);
  seed_grads<T>(cpu, gpu, rng);
  const auto x = Tensor<T>::randn({tokens, 40}, rng);
  const auto dy = Tensor<T>::randn({tokens, 40}, rng);
  typename CpuLayer::Cache cpu_cache;
  typename GpuLayer::Cache gpu_cache;

  const auto y = cpu.forward(x.cview(), cpu_cache);
  const auto y_gpu = gpu.forward(on_device(x).cview(), gpu_cache);
  REQUIRE(y_gpu.shape() == y.shape());
  CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
  CHECK(gpu_cache.tokens_per_expert() == cpu_cache.tokens_per_expert());
  CHECK(std::abs(gpu_cache.aux_loss() - cpu_cache.aux_loss()) <= tolerance<T>() * std::abs(cpu_cache.aux_loss()));

  const auto dx = cpu.backward(dy.cview(), cpu_cache);
  const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
  CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
  check_grads<T>(cpu, gpu, tolerance<T>());
}

// NexusRouter alone: routing, backward through the top-k weights and through the logits (with the
// domain embeddings unfrozen, so every projection gradient is compared), then add_expert.
template <int K>
void compare_nexus_router(index_t tokens, std::uint64_t seed) {
  CAPTURE(K);
  CAPTURE(tokens);
  using T = double;
  const nexa::RouterConfig config{
      .d_model = 24, .num_experts = 4, .load_balance_coef = 0.01, .z_loss_coef = 0.001, .domain_dim = 10};
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  nexa::NexusRouter<K, T, nexa::cpu> cpu(config, cpu_rng);
  nexa::NexusRouter<K, T, nexa::cuda> gpu(config, gpu_rng);
  cpu.domain_embeddings.set_trainable(true);
  gpu.domain_embeddings.set_trainable(true);
  seed_grads<T>(cpu, gpu, rng);
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    const auto x = Tensor<T>::randn({tokens, 24}, rng);
    typename decltype(cpu)::Cache cpu_cache;
    typename decltype(gpu)::Cache gpu_cache;
    const auto& r = cpu.route(x.cview(), cpu_cache);
    const auto& r_gpu = gpu.route(on_device(x).cview(), gpu_cache);
    CHECK(r_gpu.experts.to_host() == r.experts.to_host());
    CHECK(rel_error(r_gpu.weights.to_host(), r.weights.to_host()) < tolerance<T>());
    CHECK(rel_error(r_gpu.probs.to_host(), r.probs.to_host()) < tolerance<T>());
    const auto d_weights = Tensor<T>::randn({tokens, K}, rng);
    const auto dx = cpu.backward(d_weights.cview(), cpu_cache);
    const auto dx_gpu = gpu.backward(on_device(d_weights).cview(), gpu_cache);
    CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
    const auto d_logits = Tensor<T>::randn({tokens, cpu.num_experts()}, rng);
    const auto dx_logits = cpu.backward_logits(d_logits.cview(), cpu_cache);
    const auto dx_logits_gpu = gpu.backward_logits(on_device(d_logits).cview(), gpu_cache);
    CHECK(rel_error(dx_logits_gpu.to_host(), dx_logits.to_host()) < tolerance<T>());
    check_grads<T>(cpu, gpu, tolerance<T>());
    // A fifth expert from its domain embedding alone: the next round routes over five.
    const auto d_new = Tensor<T>::randn({10}, rng);
    cpu.add_expert(d_new.cview());
    gpu.add_expert(on_device(d_new).cview());
    CHECK(gpu.domain_embeddings.value.to_host() == cpu.domain_embeddings.value.to_host());
    seed_grads<T>(cpu, gpu, rng);
  }
  CHECK(gpu.num_experts() == 6);
}

}  // namespace

TEST_CASE("cuda NexusRouter matches the CPU: routing, both backwards, every gradient, add_expert") {
  compare_nexus_router<1>(37, 307);
  compare_nexus_router<2>(64, 308);
}

TEST_CASE("cuda MoELayer with a NexusRouter (top-2) matches the CPU") {
  compare_layer<nexa::NexusRouter<2>, nexa::T5FFN<nexa::Relu>, float>(80, 4, 309);
  compare_layer<nexa::NexusRouter<1>, nexa::T5FFN<nexa::SwiGLU>, double>(33, 3, 310);
}

TEST_CASE("cuda MoELayer (top-2, relu experts) matches the CPU: output, aux losses, dx, every gradient") {
  compare_layer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::Relu>, float>(97, 4, 301);
  compare_layer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::Relu>, float>(1, 8, 302);
  compare_layer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::Relu>, double>(53, 5, 303);
}

TEST_CASE("cuda MoELayer (top-1, gated-gelu experts) matches the CPU") {
  compare_layer<nexa::TopKRouter<1>, nexa::T5FFN<nexa::GatedGelu>, float>(64, 3, 304);
  compare_layer<nexa::TopKRouter<1>, nexa::T5FFN<nexa::GatedGelu>, double>(17, 6, 305);
}

TEST_CASE("cuda MoELayer under bf16 GEMMs (fp32 parameters and router) stays within 1e-2 of the CPU in fp32") {
  using Router = nexa::TopKRouter<2>;
  using Expert = nexa::T5FFN<nexa::GatedGelu>;
  using CpuLayer = nexa::MoELayer<Router, Expert, nexa::NoShared, nexa::cpu, float>;
  using GpuLayer = nexa::MoELayer<Router, Expert, nexa::NoShared, nexa::cuda, float>;
  const nexa::MoEConfig config{
      .d_model = 64, .d_ff = 128, .num_experts = 4, .load_balance_coef = 0.01, .z_loss_coef = 0.001};
  nexa::Rng cpu_rng(306), gpu_rng(306), rng(406);
  CpuLayer cpu(config, cpu_rng);
  GpuLayer gpu(config, gpu_rng);
  const auto x = Tensor<float>::randn({200, 64}, rng);
  const auto dy = Tensor<float>::randn({200, 64}, rng);
  typename CpuLayer::Cache cpu_cache;
  typename GpuLayer::Cache gpu_cache;
  nexa::CudaContext context;
  const nexa::CudaContextScope scope(context);
  context.set_gemm_compute(nexa::GemmCompute::bf16);

  const auto y = cpu.forward(x.cview(), cpu_cache);
  const auto y_gpu = gpu.forward(on_device(x).cview(), gpu_cache);
  // The router computes in fp32 on both devices: the same experts for every token.
  CHECK(gpu_cache.tokens_per_expert() == cpu_cache.tokens_per_expert());
  const double y_error = rel_error(y_gpu.to_host(), y.to_host());
  CHECK(y_error > 1e-6);  // the experts' GEMMs did run in bf16
  CHECK(y_error < 1e-2);
  const auto dx = cpu.backward(dy.cview(), cpu_cache);
  const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
  CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < 1e-2);
  check_grads<float>(cpu, gpu, 1e-2);
  CHECK(context.gemm_compute() == nexa::GemmCompute::bf16);
}
