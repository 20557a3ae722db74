// The shortest complete use of nexa: compose an MoE layer with a shared expert, run forward and
// backward, and take an optimizer step.
#include <cstdio>

#include "nexa/moe.hpp"
#include "nexa/train/train.hpp"

int main() {
  using Layer = nexa::MoELayer<nexa::TopKRouter<2>,                               // router policy
                               nexa::T5FFN<nexa::GatedGelu>,                      // expert policy
                               nexa::SharedExpert<nexa::T5FFN<nexa::GatedGelu>>,  // always-on, scale 0.2
                               nexa::cpu>;                                        // device
  try {
    nexa::Rng rng(42);
    Layer layer({.d_model = 256, .d_ff = 512, .num_experts = 8}, rng);
    nexa::train::AdamW optimizer(layer, {.lr = 3e-4, .weight_decay = 0.1});

    auto x = nexa::Tensor<float>::randn({1024, 256}, rng);
    auto target = nexa::Tensor<float>::randn({1024, 256}, rng);

    Layer::Cache cache;
    auto y = layer.forward(x, cache);
    auto [loss, dy] = nexa::train::mse(y, target);
    auto dx = layer.backward(dy, cache);  // accumulates every trainable parameter's gradient
    optimizer.step();
    optimizer.zero_grad();

    std::printf("loss %.4f (+ aux %.5f), dx shape [%lld, %lld], tokens per expert:", loss, cache.aux_loss(),
                static_cast<long long>(dx.dim(0)), static_cast<long long>(dx.dim(1)));
    for (auto n : cache.tokens_per_expert()) std::printf(" %lld", static_cast<long long>(n));
    std::printf("\n");
  } catch (const nexa::Error& e) {
    std::fprintf(stderr, "quickstart: %s\n", e.what());
    return 1;
  }
  return 0;
}
