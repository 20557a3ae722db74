// NormKernel<cuda> against the CPU: RMSNorm and LayerNorm forward (output and statistics) and
// backward (dx and accumulated parameter gradients), odd widths and enough rows to use several
// chunks of the deterministic column reduction.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "module_support.hpp"
#include "nexa/nn/layer_norm.hpp"
#include "nexa/nn/rms_norm.hpp"

using namespace nexa_test;
using nexa::Tensor;

namespace {

const std::vector<std::pair<index_t, index_t>> shapes{{1, 1}, {3, 7}, {37, 96}, {300, 33}, {5000, 5}, {2, 1031}};

// A norm with random affine parameters, built identically on both devices.
template <template <class, class> class Norm, class T, class D>
Norm<T, D> make_norm(index_t dim, std::uint64_t seed) {
  nexa::Rng rng(seed);
  Norm<T, D> norm({.dim = dim}, rng);
  norm.visit_params([&](const std::string&, nexa::Param<T, D>& p) {
    p.value = Tensor<T>::randn(p.value.shape(), rng).template to<D>();
  });
  return norm;
}

template <template <class, class> class Norm, class T>
void compare_norm(std::uint64_t seed) {
  for (const auto& [rows, dim] : shapes) {
    CAPTURE(rows);
    CAPTURE(dim);
    nexa::Rng rng(seed++);
    auto cpu = make_norm<Norm, T, nexa::cpu>(dim, seed);
    auto gpu = make_norm<Norm, T, nexa::cuda>(dim, seed);
    seed_grads<T>(cpu, gpu, rng);
    const auto x = Tensor<T>::randn({rows, dim}, rng, 3.0, 0.5);
    const auto dy = Tensor<T>::randn({rows, dim}, rng);
    typename Norm<T, nexa::cpu>::Cache cpu_cache;
    typename Norm<T, nexa::cuda>::Cache gpu_cache;
    const auto y = cpu.forward(x.cview(), cpu_cache);
    const auto y_gpu = gpu.forward(on_device(x).cview(), gpu_cache);
    CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
    CHECK(rel_error(gpu_cache.rstd.to_host(), cpu_cache.rstd.to_host()) < tolerance<T>());
    CHECK(rel_error(gpu.apply(on_device(x).cview()).to_host(), y.to_host()) < tolerance<T>());
    const auto dx = cpu.backward(dy.cview(), cpu_cache);
    const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
    CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
    check_grads<T>(cpu, gpu, tolerance<T>());
  }
}

}  // namespace

TEST_CASE("cuda RMSNorm forward and backward match the CPU") {
  compare_norm<nexa::RMSNorm, float>(61);
  compare_norm<nexa::RMSNorm, double>(62);
}

TEST_CASE("cuda LayerNorm forward and backward match the CPU") {
  compare_norm<nexa::LayerNorm, float>(63);
  compare_norm<nexa::LayerNorm, double>(64);
}

TEST_CASE("cuda norm parameter gradients are bitwise reproducible from run to run") {
  nexa::Rng rng(65);
  const auto x = Tensor<float>::randn({4000, 64}, rng).to<nexa::cuda>();
  const auto dy = Tensor<float>::randn({4000, 64}, rng).to<nexa::cuda>();
  std::vector<std::vector<float>> grads;
  for (int run = 0; run < 2; ++run) {
    auto norm = make_norm<nexa::LayerNorm, float, nexa::cuda>(64, 66);
    nexa::LayerNorm<float, nexa::cuda>::Cache cache;
    (void)norm.forward(x.cview(), cache);
    (void)norm.backward(dy.cview(), cache);
    grads.push_back(norm.weight.grad.to_host());
    grads.push_back(norm.bias.grad.to_host());
  }
  CHECK(bitwise_equal(grads[0], grads[2]));
  CHECK(bitwise_equal(grads[1], grads[3]));
}
