#pragma once
// Helpers for running one module on both devices: the same seed builds the same parameters on
// the CPU and on the GPU, and parameters/gradients are compared by normalised error.
#include <initializer_list>
#include <string>
#include <vector>

#include "support.hpp"

namespace nexa_test {

template <class T>
DeviceTensor<T> on_device(const nexa::Tensor<T>& t) {
  return t.template to<nexa::cuda>();
}

// Every gradient of `gpu` against the same-named one of `cpu` (visit order is the same).
template <class T, class CpuModule, class GpuModule>
void check_grads(CpuModule& cpu, GpuModule& gpu, double tol) {
  std::vector<std::pair<std::string, std::vector<T>>> want;
  cpu.visit_params([&](const std::string& name, auto& p) {
    if (p.trainable) want.emplace_back(name, p.grad.to_host());
  });
  std::size_t i = 0;
  gpu.visit_params([&](const std::string& name, auto& p) {
    if (!p.trainable) return;
    REQUIRE(i < want.size());
    CAPTURE(name);
    CHECK(name == want[i].first);
    CHECK(rel_error(p.grad.to_host(), want[i].second) < tol);
    ++i;
  });
  CHECK(i == want.size());
}

// Starts every gradient at the same random values on both devices, so accumulation is tested.
template <class T, class CpuModule, class GpuModule>
void seed_grads(CpuModule& cpu, GpuModule& gpu, nexa::Rng& rng) {
  std::vector<nexa::Tensor<T>> start;
  cpu.visit_params([&](const std::string&, auto& p) {
    if (!p.trainable) return;
    start.push_back(nexa::Tensor<T>::randn(p.grad.shape(), rng));
    p.grad = start.back();
  });
  std::size_t i = 0;
  gpu.visit_params([&](const std::string&, auto& p) {
    if (p.trainable) p.grad = on_device(start[i++]);
  });
}

// Allocates and frees poisoned blocks of these shapes: the caching allocator hands them out next,
// so outputs a module allocates itself start poisoned too.
template <class T>
void poison_pool(std::initializer_list<nexa::Shape> shapes) {
  std::vector<DeviceTensor<T>> blocks;
  for (const nexa::Shape& s : shapes) blocks.push_back(poisoned<T>(s));
}

// Moves every CPU parameter away from its structured init (LayerNorm 1/0, zero biases, zero pad
// rows) and gives the GPU module the same values.
template <class T, class CpuModule, class GpuModule>
void perturb(CpuModule& cpu, GpuModule& gpu, nexa::Rng& rng) {
  std::vector<nexa::Tensor<T>> values;
  cpu.visit_params([&](const std::string&, auto& p) {
    const auto noise = nexa::Tensor<T>::randn(p.value.shape(), rng, 0.3);
    for (index_t i = 0; i < p.numel(); ++i) p.value.data()[i] += noise.data()[i];
    values.push_back(p.value);
  });
  std::size_t i = 0;
  gpu.visit_params([&](const std::string&, auto& p) { p.value = on_device(values[i++]); });
  REQUIRE(i == values.size());
}

}  // namespace nexa_test
