// QuantizedExpert<T5FFN<Act>, Format> with D = cuda against the same expert on the CPU: same
// seed, so the same dense weights and the same codes (quantised on the host on both devices);
// forward_into and backward_into on fresh random inputs with outputs poisoned, plain (Relu, Gelu)
// and gated (GatedGelu), with and without dropout, one and several weight tiles. Then an MoE
// layer of quantised experts (NF4 top-2 Relu, NF4 top-1 gated, Int8, MXFP4) on both devices:
// forward output, auxiliary loss, dx and the router's gradients; with_quantized_experts on a cuda
// layer. Int8 and MXFP4 (backend/cuda/int8_mxfp4.hpp): dequantisation bit for bit, QuantizedLinear.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "module_support.hpp"
#include "nexa/moe/moe_layer.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/moe/topk_router.hpp"
#include "nexa/quant/quantized_expert.hpp"
#include "nexa/quant/quantized_linear.hpp"

using namespace nexa_test;
using nexa::Tensor;

namespace {

// The dense weights of a quantised tensor, bit for bit.
template <class Format>
std::vector<float> dequantized(const typename Format::tensor_type& q) {
  return nexa::quant::dequantize<Format>(q).to_host();
}

// Bitwise equal, any NaN matching any NaN (the GPU's canonical NaN has other bits).
bool same_values(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
  }
  return true;
}

// d_ff is not a multiple of the tiles; MXFP4 needs both d and d_ff multiples of 32.
template <class Act, class Format = nexa::NF4>
void compare_expert(double dropout, index_t tile, std::uint64_t seed, index_t d = 48, index_t d_ff = 200) {
  CAPTURE(dropout);
  CAPTURE(tile);
  CAPTURE(Format::name);
  using CpuExpert = nexa::QuantizedExpert<nexa::T5FFN<Act>, Format>;
  using GpuExpert = nexa::QuantizedExpert<nexa::T5FFN<Act>, Format, float, nexa::cuda>;
  const nexa::ExpertConfig config{.d_model = d, .d_ff = d_ff, .dropout = dropout};
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  CpuExpert cpu(nexa::T5FFN<Act>(config, cpu_rng), tile);
  GpuExpert gpu(nexa::T5FFN<Act, float, nexa::cuda>(config, gpu_rng), tile);
  // Quantised on the host on both devices: the same codes and statistics.
  CHECK(gpu.bytes() == cpu.bytes());
  CHECK(bitwise_equal(dequantized<Format>(gpu.wi()), dequantized<Format>(cpu.wi())));
  if constexpr (nexa::t5_pass::ExpertAct<Act>::gated)
    CHECK(bitwise_equal(dequantized<Format>(gpu.wi_1()), dequantized<Format>(cpu.wi_1())));
  CHECK(bitwise_equal(dequantized<Format>(gpu.wo()), dequantized<Format>(cpu.wo())));
  cpu.set_training(dropout > 0.0);
  gpu.set_training(dropout > 0.0);
  for (const index_t n : {index_t{1}, index_t{37}, index_t{0}}) {
    CAPTURE(n);
    const auto x = Tensor<float>::randn({n, d}, rng);
    const auto dy = Tensor<float>::randn({n, d}, rng);
    typename CpuExpert::Cache cpu_cache;
    typename GpuExpert::Cache gpu_cache;
    auto y = Tensor<float>::uninitialized({n, d});
    cpu.forward_into(Tensor<float>(x), cpu_cache, y.view());
    auto y_gpu = poisoned<float>({n, d});
    gpu.forward_into(on_device(x), gpu_cache, y_gpu.view());
    CHECK(gpu_cache.dropout.applied == cpu_cache.dropout.applied);
    CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<float>());
    auto dx = Tensor<float>::uninitialized({n, d});
    cpu.backward_into(dy.cview(), cpu_cache, dx.view());
    auto dx_gpu = poisoned<float>({n, d});
    gpu.backward_into(on_device(dy).cview(), gpu_cache, dx_gpu.view());
    CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<float>());
  }
  // forward / backward (allocating) agree too.
  const auto x = Tensor<float>::randn({19, d}, rng);
  const auto dy = Tensor<float>::randn({19, d}, rng);
  typename CpuExpert::Cache cpu_cache;
  typename GpuExpert::Cache gpu_cache;
  const auto y = cpu.forward(x.cview(), cpu_cache);
  const auto y_gpu = gpu.forward(on_device(x).cview(), gpu_cache);
  CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<float>());
  const auto dx = cpu.backward(dy.cview(), cpu_cache);
  const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
  CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<float>());
}

template <class Router, class Act, class Format = nexa::NF4>
void compare_layer(index_t tokens, index_t experts, double dropout, std::uint64_t seed, index_t d = 40,
                   index_t d_ff = 72) {
  CAPTURE(tokens);
  CAPTURE(experts);
  CAPTURE(dropout);
  CAPTURE(Format::name);
  using Expert = nexa::QuantizedExpert<nexa::T5FFN<Act>, Format>;
  using CpuLayer = nexa::MoELayer<Router, Expert, nexa::NoShared, nexa::cpu, float>;
  using GpuLayer = nexa::MoELayer<Router, Expert, nexa::NoShared, nexa::cuda, float>;
  const nexa::MoEConfig config{.d_model = d,
                               .d_ff = d_ff,
                               .num_experts = experts,
                               .dropout = dropout,
                               .load_balance_coef = 0.01,
                               .z_loss_coef = 0.001};
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  CpuLayer cpu(config, cpu_rng);
  GpuLayer gpu(config, gpu_rng);
  cpu.set_training(dropout > 0.0);
  gpu.set_training(dropout > 0.0);
  for (std::size_t e = 0; e < cpu.experts.size(); ++e)
    CHECK(bitwise_equal(dequantized<Format>(gpu.experts[e].wo()), dequantized<Format>(cpu.experts[e].wo())));
  seed_grads<float>(cpu, gpu, rng);
  const auto x = Tensor<float>::randn({tokens, d}, rng);
  const auto dy = Tensor<float>::randn({tokens, d}, rng);
  typename CpuLayer::Cache cpu_cache;
  typename GpuLayer::Cache gpu_cache;

  const auto y = cpu.forward(x.cview(), cpu_cache);
  const auto y_gpu = gpu.forward(on_device(x).cview(), gpu_cache);
  REQUIRE(y_gpu.shape() == y.shape());
  CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<float>());
  CHECK(gpu_cache.tokens_per_expert() == cpu_cache.tokens_per_expert());
  CHECK(std::abs(gpu_cache.aux_loss() - cpu_cache.aux_loss()) <= tolerance<float>() * std::abs(cpu_cache.aux_loss()));

  const auto dx = cpu.backward(dy.cview(), cpu_cache);
  const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
  CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<float>());
  // The router's weight is the only parameter (the experts are frozen storage).
  int trainable = 0;
  gpu.visit_params([&](const std::string&, auto& p) { trainable += p.trainable ? 1 : 0; });
  CHECK(trainable == 1);
  check_grads<float>(cpu, gpu, tolerance<float>());
}

}  // namespace

TEST_CASE("cuda QuantizedExpert<T5FFN<Relu>, NF4> matches the CPU: forward_into, backward_into, dropout, tiles") {
  compare_expert<nexa::Relu>(0.0, 128, 501);
  compare_expert<nexa::Relu>(0.0, 16, 502);
  compare_expert<nexa::Relu>(0.25, 64, 503);
}

TEST_CASE("cuda QuantizedExpert with Gelu and GatedGelu (gated: wi_0, wi_1, wo) matches the CPU") {
  compare_expert<nexa::Gelu>(0.1, 48, 504);
  compare_expert<nexa::GatedGelu>(0.0, 128, 505);
  compare_expert<nexa::GatedGelu>(0.0, 32, 506);
  compare_expert<nexa::GatedGelu>(0.25, 100, 507);
}

TEST_CASE("cuda QuantizedExpert with Int8 and MXFP4 weights matches the CPU") {
  compare_expert<nexa::SwiGLU, nexa::Int8>(0.0, 128, 521, 64, 160);
  compare_expert<nexa::Relu, nexa::Int8>(0.2, 48, 522, 48, 200);
  compare_expert<nexa::Relu, nexa::MXFP4>(0.0, 128, 523, 64, 160);
  compare_expert<nexa::GatedGelu, nexa::MXFP4>(0.1, 32, 524, 64, 160);
}

TEST_CASE("cuda Int8 and MXFP4 dequantisation equals the CPU's bit for bit") {
  nexa::Rng rng(525);
  {
    const auto w = Tensor<float>::randn({37, 53}, rng);
    const auto q = nexa::Int8::quantize(w.cview());
    const auto d = nexa::quant::device_dequantize(nexa::quant::int8_to_device(q));
    CHECK(bitwise_equal(d.to_host(), dequantized<nexa::Int8>(q)));
  }
  {
    const auto w = Tensor<float>::randn({20, 96}, rng, 3.0);
    const auto q = nexa::MXFP4::quantize(w.cview());
    const auto d = nexa::quant::device_dequantize(nexa::quant::mxfp4_to_device(q));
    CHECK(bitwise_equal(d.to_host(), dequantized<nexa::MXFP4>(q)));
  }
  {
    // Every code and every scale, 0 (2^-127, subnormal results) and 255 (NaN) included.
    constexpr index_t groups = 256;
    std::vector<std::uint8_t> blocks(groups * 16), scales(groups);
    for (std::size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<std::uint8_t>((i * 37 + 11) % 256);
    for (std::size_t g = 0; g < scales.size(); ++g) scales[g] = static_cast<std::uint8_t>(g);
    const auto q = nexa::quant::mxfp4_from_blocks(nexa::TensorView<const std::uint8_t>(blocks.data(), {8, 32, 16}),
                                                  nexa::TensorView<const std::uint8_t>(scales.data(), {8, 32}));
    const auto d = nexa::quant::device_dequantize(nexa::quant::mxfp4_to_device(q));
    CHECK(same_values(d.to_host(), dequantized<nexa::MXFP4>(q)));
  }
}

template <class Format>
void compare_quantized_linear() {
  CAPTURE(Format::name);
  for (const bool bias : {false, true}) {
    CAPTURE(bias);
    nexa::Rng rng_cpu(526), rng_gpu(526), rng(527);
    const nexa::Linear<float> dense_cpu({.in_features = 96, .out_features = 50, .bias = bias}, rng_cpu);
    const nexa::Linear<float, nexa::cuda> dense_gpu({.in_features = 96, .out_features = 50, .bias = bias}, rng_gpu);
    for (const index_t tile : {index_t{16}, index_t{128}}) {
      CAPTURE(tile);
      const nexa::QuantizedLinear<Format> cpu(dense_cpu, tile);
      const nexa::QuantizedLinear<Format, float, nexa::cuda> gpu(dense_gpu, tile);
      CHECK(gpu.bytes() == cpu.bytes());
      const auto x = Tensor<float>::randn({33, 96}, rng);
      const auto dy = Tensor<float>::randn({33, 50}, rng);
      CHECK(rel_error(gpu.apply(on_device(x).cview()).to_host(), cpu.apply(x.cview()).to_host()) < 1e-5);
      CHECK(rel_error(gpu.backward_input(on_device(dy).cview()).to_host(), cpu.backward_input(dy.cview()).to_host()) <
            1e-5);
    }
  }
}

TEST_CASE("cuda QuantizedLinear<Int8> and <MXFP4> match the CPU layers: forward with and without bias, dx, tiles") {
  compare_quantized_linear<nexa::Int8>();
  compare_quantized_linear<nexa::MXFP4>();
}

TEST_CASE("cuda QuantizedExpert: dequantized() holds the CPU's weights bit for bit") {
  const nexa::ExpertConfig config{.d_model = 24, .d_ff = 56};
  nexa::Rng cpu_rng(508), gpu_rng(508), rd_cpu(1), rd_gpu(1);
  const nexa::QuantizedExpert<nexa::T5FFN<nexa::GatedGelu>, nexa::NF4> cpu(config, cpu_rng);
  const nexa::QuantizedExpert<nexa::T5FFN<nexa::GatedGelu>, nexa::NF4, float, nexa::cuda> gpu(config, gpu_rng);
  const auto dense_cpu = cpu.dequantized(rd_cpu);
  const auto dense_gpu = gpu.dequantized(rd_gpu);
  CHECK(bitwise_equal(dense_gpu.wi_0.value.to_host(), dense_cpu.wi_0.value.to_host()));
  CHECK(bitwise_equal(dense_gpu.wi_1.value.to_host(), dense_cpu.wi_1.value.to_host()));
  CHECK(bitwise_equal(dense_gpu.wo.value.to_host(), dense_cpu.wo.value.to_host()));
}

TEST_CASE("cuda MoELayer of NF4 experts matches the CPU: output, aux loss, dx, router gradients") {
  compare_layer<nexa::TopKRouter<2>, nexa::Relu>(97, 4, 0.0, 511);
  compare_layer<nexa::TopKRouter<2>, nexa::Relu>(1, 8, 0.0, 512);  // most experts get no token
  compare_layer<nexa::TopKRouter<2>, nexa::Relu>(64, 4, 0.2, 513);
  compare_layer<nexa::TopKRouter<1>, nexa::GatedGelu>(64, 3, 0.0, 514);
  compare_layer<nexa::TopKRouter<2>, nexa::SwiGLU, nexa::Int8>(80, 4, 0.0, 516);
  compare_layer<nexa::TopKRouter<2>, nexa::Relu, nexa::MXFP4>(80, 4, 0.1, 517, 64, 96);
}

TEST_CASE("cuda with_quantized_experts on a cuda layer matches the same conversion on the CPU") {
  using Dense = nexa::MoELayer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::Relu>, nexa::NoShared, nexa::cpu, float>;
  using DenseGpu = nexa::MoELayer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::Relu>, nexa::NoShared, nexa::cuda, float>;
  const nexa::MoEConfig config{.d_model = 32, .d_ff = 64, .num_experts = 4};
  nexa::Rng cpu_rng(515), gpu_rng(515), rng(615);
  auto cpu = nexa::with_quantized_experts<nexa::NF4>(Dense(config, cpu_rng));
  auto gpu = nexa::with_quantized_experts<nexa::NF4>(DenseGpu(config, gpu_rng));
  for (std::size_t e = 0; e < cpu.experts.size(); ++e) {
    CHECK(gpu.experts[e].wi().codes == cpu.experts[e].wi().codes);
    CHECK(gpu.experts[e].wo().codes == cpu.experts[e].wo().codes);
  }
  const auto x = Tensor<float>::randn({50, 32}, rng);
  const auto dy = Tensor<float>::randn({50, 32}, rng);
  typename decltype(cpu)::Cache cpu_cache;
  typename decltype(gpu)::Cache gpu_cache;
  const auto y = cpu.forward(x.cview(), cpu_cache);
  const auto y_gpu = gpu.forward(on_device(x).cview(), gpu_cache);
  CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<float>());
  const auto dx = cpu.backward(dy.cview(), cpu_cache);
  const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
  CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<float>());
}
