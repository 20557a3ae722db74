// The whole MoE layer with D = cuda against the same layer on the CPU: same seed, same
// parameters; forward output, auxiliary losses, dx and every parameter gradient, for top-1 and
// top-2, plain and gated experts, with the load-balancing and z-losses on. Outputs start
// poisoned where the layer writes into caller memory, and the GPU gradients start at random
// values so that accumulation is checked too.
#include <cmath>
#include <cstdint>

#include "module_support.hpp"
#include "nexa/moe/moe_layer.hpp"
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
  const nexa::MoEConfig config{
      .d_model = 40, .d_ff = 72, .num_experts = experts, .load_balance_coef = 0.01, .z_loss_coef = 0.001};
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

}  // namespace

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
