#include <doctest/doctest.h>

#include "nexa/moe.hpp"
#include "support/threads.hpp"

namespace determinism_test {
namespace {
using nexa::testing::set_threads;

struct Run {
  std::vector<float> y, dx, grads;
};

Run run_layer(int threads) {
  using namespace nexa;
  set_threads(threads);
  Rng rng(60);
  MoELayer<TopKRouter<2>, T5FFN<GatedGelu>, SharedExpert<T5FFN<GatedGelu>>> layer(
      {.d_model = 64, .d_ff = 128, .num_experts = 8}, rng);
  auto x = Tensor<float>::randn({512, 64}, rng);
  auto dy = Tensor<float>::randn({512, 64}, rng);
  decltype(layer)::Cache cache;
  Run run;
  run.y = layer.forward(x, cache).to_host();
  run.dx = layer.backward(dy, cache).to_host();
  layer.visit_params([&](const std::string&, auto& p) {
    if (!p.trainable) return;
    for (auto v : p.grad.to_host()) run.grads.push_back(static_cast<float>(v));
  });
  return run;
}
}  // namespace

TEST_CASE("MoE forward and backward are bitwise identical across runs and thread counts") {
  const Run one = run_layer(1);
  const Run two = run_layer(2);
  const Run again = run_layer(2);
  set_threads(2);
  CHECK(one.y == two.y);
  CHECK(one.dx == two.dx);
  CHECK(one.grads == two.grads);
  CHECK(two.y == again.y);
  CHECK(two.grads == again.grads);
}

}  // namespace determinism_test
