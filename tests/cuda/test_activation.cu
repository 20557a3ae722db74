// ActivationKernel<cuda> against the CPU: the Activation module forward and backward for every
// activation, and the gated product and its backward, on fresh random inputs with outputs poisoned.
#include <cstdint>

#include "module_support.hpp"
#include "nexa/nn/activation.hpp"

using namespace nexa_test;
using nexa::Tensor;

namespace {

template <class Act, class T>
void compare_activation_module(std::uint64_t seed) {
  CAPTURE(Act::name);
  nexa::Rng rng(seed);
  for (const index_t n : {index_t{1}, index_t{33}, index_t{4099}}) {
    CAPTURE(n);
    const auto x = Tensor<T>::randn({n, 3}, rng, 2.0);
    const auto dy = Tensor<T>::randn({n, 3}, rng);
    nexa::Activation<Act, T> cpu;
    nexa::Activation<Act, T, nexa::cuda> gpu;
    typename nexa::Activation<Act, T>::Cache cpu_cache;
    typename nexa::Activation<Act, T, nexa::cuda>::Cache gpu_cache;
    const auto y = cpu.forward(x.cview(), cpu_cache);
    const auto dx = cpu.backward(dy.cview(), cpu_cache);
    const auto y_gpu = gpu.forward(on_device(x).cview(), gpu_cache);
    const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
    CHECK(y_gpu.shape() == y.shape());
    CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
    CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
  }
}

template <class T>
void activation_suite(std::uint64_t seed) {
  compare_activation_module<nexa::Relu, T>(seed);
  compare_activation_module<nexa::Gelu, T>(seed + 1);
  compare_activation_module<nexa::GeluNew, T>(seed + 2);
  compare_activation_module<nexa::Silu, T>(seed + 3);
}

template <class Act, class T>
void compare_gated(std::uint64_t seed) {
  CAPTURE(Act::name);
  nexa::Rng rng(seed);
  const index_t n = 5003;
  const auto a = Tensor<T>::randn({n}, rng, 2.0), b = Tensor<T>::randn({n}, rng), dh = Tensor<T>::randn({n}, rng);
  auto h_cpu = Tensor<T>::uninitialized({n});
  nexa::ActivationKernel<nexa::cpu>::gated_forward<Act>(n, a.data(), b.data(), h_cpu.data());
  auto h_gpu = poisoned<T>({n});
  const auto a_gpu = on_device(a), b_gpu = on_device(b);
  nexa::ActivationKernel<nexa::cuda>::gated_forward<Act>(n, a_gpu.data(), b_gpu.data(), h_gpu.data());
  CHECK(rel_error(h_gpu.to_host(), h_cpu.to_host()) < tolerance<T>());

  auto dg_cpu = dh;
  auto dl_cpu = Tensor<T>::uninitialized({n});
  nexa::ActivationKernel<nexa::cpu>::gated_backward<Act>(n, a.data(), b.data(), dg_cpu.data(), dl_cpu.data());
  auto dg_gpu = on_device(dh);
  auto dl_gpu = poisoned<T>({n});
  nexa::ActivationKernel<nexa::cuda>::gated_backward<Act>(n, a_gpu.data(), b_gpu.data(), dg_gpu.data(), dl_gpu.data());
  CHECK(rel_error(dg_gpu.to_host(), dg_cpu.to_host()) < tolerance<T>());
  CHECK(rel_error(dl_gpu.to_host(), dl_cpu.to_host()) < tolerance<T>());

  // ReLU's derivative read off its output (T5FFN<Relu>).
  auto g_cpu = dh;
  nexa::ActivationKernel<nexa::cpu>::relu_backward_from_output(n, a.data(), g_cpu.data());
  auto g_gpu = on_device(dh);
  nexa::ActivationKernel<nexa::cuda>::relu_backward_from_output(n, a_gpu.data(), g_gpu.data());
  CHECK(bitwise_equal(g_gpu.to_host(), g_cpu.to_host()));
}

}  // namespace

TEST_CASE("cuda Activation forward and backward match the CPU in float") { activation_suite<float>(41); }

TEST_CASE("cuda Activation forward and backward match the CPU in double") { activation_suite<double>(45); }

TEST_CASE("cuda gated products and ReLU-from-output match the CPU") {
  compare_gated<nexa::GeluNew, float>(49);
  compare_gated<nexa::Silu, float>(50);
  compare_gated<nexa::GeluNew, double>(51);
}
