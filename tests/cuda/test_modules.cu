// Linear, Dropout and T5FFN (plain and gated) with D = cuda against the same modules on the CPU:
// same seed, same parameters, forward and backward on fresh random inputs; dropout draws the
// CPU's mask exactly.
#include <cstdint>
#include <vector>

#include "module_support.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/nn/dropout.hpp"
#include "nexa/nn/linear.hpp"

using namespace nexa_test;
using nexa::Tensor;

namespace {

template <class T>
void compare_linear(bool bias, std::uint64_t seed) {
  CAPTURE(bias);
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  nexa::Linear<T> cpu({.in_features = 67, .out_features = 45, .bias = bias}, cpu_rng);
  nexa::Linear<T, nexa::cuda> gpu({.in_features = 67, .out_features = 45, .bias = bias}, gpu_rng);
  seed_grads<T>(cpu, gpu, rng);
  const auto x = Tensor<T>::randn({3, 29, 67}, rng);
  const auto dy = Tensor<T>::randn({3, 29, 45}, rng);
  typename nexa::Linear<T>::Cache cpu_cache;
  typename nexa::Linear<T, nexa::cuda>::Cache gpu_cache;
  const auto y = cpu.forward(x.cview(), cpu_cache);
  const auto y_gpu = gpu.forward(on_device(x).cview(), gpu_cache);
  CHECK(y_gpu.shape() == y.shape());
  CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
  const auto dx = cpu.backward(dy.cview(), cpu_cache);
  const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
  CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
  check_grads<T>(cpu, gpu, tolerance<T>());
}

template <class T>
void compare_dropout(double p, std::uint64_t seed) {
  CAPTURE(p);
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  nexa::Dropout<T> cpu({.p = p}, cpu_rng);
  nexa::Dropout<T, nexa::cuda> gpu({.p = p}, gpu_rng);
  for (const index_t n : {index_t{1}, index_t{6}, index_t{4097}, index_t{100003}}) {
    CAPTURE(n);
    const auto x = Tensor<T>::randn({n}, rng);
    const auto dy = Tensor<T>::randn({n}, rng);
    typename nexa::Dropout<T>::Cache cpu_cache;
    typename nexa::Dropout<T, nexa::cuda>::Cache gpu_cache;
    const auto y = cpu.forward(x.cview(), cpu_cache);
    const auto y_gpu = gpu.forward(on_device(x).cview(), gpu_cache);
    CHECK(gpu_cache.call == cpu_cache.call);
    CHECK(bitwise_equal(y_gpu.to_host(), y.to_host()));
    CHECK(bitwise_equal(gpu.backward(on_device(dy).cview(), gpu_cache).to_host(),
                        cpu.backward(dy.cview(), cpu_cache).to_host()));
    // A window of the mask starting at an unaligned element (tiled attention's use).
    const std::uint64_t first = 4097 * 3 + 1;
    auto part_cpu = x;
    auto part_gpu = on_device(x);
    const auto cpu_call = cpu.reserve_call();
    const auto gpu_call = gpu.reserve_call();
    cpu.apply_range(part_cpu.data(), n, first, cpu_call);
    gpu.apply_range(part_gpu.data(), n, first, gpu_call);
    CHECK(bitwise_equal(part_gpu.to_host(), part_cpu.to_host()));
  }
}

template <class Act, class T>
void compare_t5_ffn(double dropout, std::uint64_t seed) {
  CAPTURE(dropout);
  const nexa::ExpertConfig config{.d_model = 48, .d_ff = 80, .dropout = dropout};
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  nexa::T5FFN<Act, T> cpu(config, cpu_rng);
  nexa::T5FFN<Act, T, nexa::cuda> gpu(config, gpu_rng);
  seed_grads<T>(cpu, gpu, rng);
  for (const index_t n : {index_t{1}, index_t{37}}) {
    CAPTURE(n);
    const auto x = Tensor<T>::randn({n, 48}, rng);
    const auto dy = Tensor<T>::randn({n, 48}, rng);
    typename nexa::T5FFN<Act, T>::Cache cpu_cache;
    typename nexa::T5FFN<Act, T, nexa::cuda>::Cache gpu_cache;
    auto y = Tensor<T>::uninitialized({n, 48});
    cpu.forward_into(Tensor<T>(x), cpu_cache, y.view());
    auto y_gpu = poisoned<T>({n, 48});
    gpu.forward_into(on_device(x), gpu_cache, y_gpu.view());
    CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
    auto dx = Tensor<T>::uninitialized({n, 48});
    cpu.backward_into(dy.cview(), cpu_cache, dx.view());
    auto dx_gpu = poisoned<T>({n, 48});
    gpu.backward_into(on_device(dy).cview(), gpu_cache, dx_gpu.view());
    CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
  }
  check_grads<T>(cpu, gpu, tolerance<T>());
}

}  // namespace

TEST_CASE("cuda Linear forward and backward match the CPU, with and without bias") {
  compare_linear<float>(false, 71);
  compare_linear<float>(true, 72);
  compare_linear<double>(true, 73);
}

TEST_CASE("cuda Dropout draws the CPU's mask for the same seed") {
  compare_dropout<float>(0.1, 74);
  compare_dropout<float>(0.5, 75);
  compare_dropout<double>(0.3, 76);
}

TEST_CASE("cuda T5FFN plain and gated match the CPU, forward and backward") {
  compare_t5_ffn<nexa::Relu, float>(0.0, 77);
  compare_t5_ffn<nexa::Relu, float>(0.25, 78);
  compare_t5_ffn<nexa::GatedGelu, float>(0.0, 79);
  compare_t5_ffn<nexa::GatedGelu, float>(0.25, 80);
  compare_t5_ffn<nexa::GatedGelu, double>(0.1, 81);
  compare_t5_ffn<nexa::SwiGLU, double>(0.0, 82);
}
