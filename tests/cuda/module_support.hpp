#pragma once
// Helpers for running one module on both devices: the same seed builds the same parameters on
// the CPU and on the GPU, and parameters/gradients are compared by normalised error.
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

}  // namespace nexa_test
