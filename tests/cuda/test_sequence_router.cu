// SequenceClassifierRouter (a BERT classifier routing whole sequences), SharedSequenceRouter (one
// classifier hub routing two MoE layers) and Conditional<Stack> (the CoT processor engaged per
// sequence) with D = cuda against the same modules on the CPU. Same seed, same parameters,
// gradients started at the same random values; padding in the classifier's and processor's masks,
// the supervised loss on, one sequence overridden; forward (routing, outputs, auxiliary losses),
// backward and every parameter gradient compared. Before each pass the caching allocator is
// handed poisoned blocks of the outputs' sizes, so an element a kernel leaves unwritten shows up.
// Float only: BERT's attention and the local-global flash core run in float on the device.
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "module_support.hpp"
#include "nexa/attention/local_global_attention.hpp"
#include "nexa/blocks/conditional.hpp"
#include "nexa/blocks/pre_ln_block.hpp"
#include "nexa/blocks/stack.hpp"
#include "nexa/models/bert.hpp"
#include "nexa/moe/moe_layer.hpp"
#include "nexa/moe/sequence_router.hpp"
#include "nexa/moe/shared_sequence_router.hpp"
#include "nexa/moe/t5_ffn.hpp"

using namespace nexa_test;
using nexa::Tensor;

namespace {

nexa::BertConfig tiny_bert() {
  nexa::BertConfig c;
  c.vocab_size = 12;
  c.hidden = 16;
  c.layers = 1;
  c.heads = 2;
  c.intermediate = 24;
  c.max_position = 8;
  c.num_labels = 3;
  c.dropout = 0.0;
  c.attention_dropout = 0.0;
  c.pad_token_id = -1;
  c.init_std = 0.5;
  return c;
}

nexa::MoEConfig layer_config() {
  return {.d_model = 24,
          .d_ff = 40,
          .num_experts = 3,
          .load_balance_coef = 0.1,
          .z_loss_coef = 0.05,
          .supervised_coef = 0.5};
}

// 4 sequences of 6 tokens, padding at the ends of sequences 1 and 3; labels on three of them,
// the third sequence overridden to expert 2.
nexa::SequenceBatch batch() {
  nexa::SequenceBatch b;
  b.ids = Tensor<std::int32_t>::from_host({4, 6},
                                          {1, 5, 7, 2, 3, 8, 1, 9, 3, 2, 0, 0, 1, 4, 11, 6, 10, 2, 1, 3, 3, 0, 0, 0});
  b.token_types =
      Tensor<std::int32_t>::from_host({4, 6}, {0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0});
  b.mask =
      Tensor<std::int32_t>::from_host({4, 6}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0});
  b.domain_labels = {0, 2, 1, -1};
  b.domain_override = {-1, -1, 2, -1};
  return b;
}

template <class T, class A>
void check_routing(const nexa::Routing<A, nexa::cuda>& gpu, const nexa::Routing<A, nexa::cpu>& cpu) {
  CHECK(gpu.experts.to_host() == cpu.experts.to_host());
  CHECK(rel_error(gpu.probs.to_host(), cpu.probs.to_host()) < tolerance<T>());
  CHECK(rel_error(gpu.weights.to_host(), cpu.weights.to_host()) < tolerance<T>());
}

void check_aux(const nexa::AuxLosses& gpu, const nexa::AuxLosses& cpu, double tol) {
  CHECK(cpu.supervised > 0);
  CHECK(std::abs(gpu.supervised - cpu.supervised) <= tol * std::abs(cpu.supervised));
  CHECK(std::abs(gpu.load_balance - cpu.load_balance) <= tol * std::abs(cpu.load_balance));
  CHECK(std::abs(gpu.z_loss - cpu.z_loss) <= tol * std::abs(cpu.z_loss));
}

// One MoELayer routed by SequenceClassifierRouter<BertModel, K>; tokens_per_sequence tokens per
// sequence in the layer's input (the classifier's 6 or another tokenisation).
template <class T, int K>
void compare_router_layer(index_t tokens_per_sequence, std::uint64_t seed) {
  CAPTURE(K);
  CAPTURE(tokens_per_sequence);
  using Router = nexa::SequenceClassifierRouter<nexa::BertModel<>, K>;
  using CpuLayer = nexa::MoELayer<Router, nexa::T5FFN<nexa::Relu>, nexa::NoShared, nexa::cpu, T>;
  using GpuLayer = nexa::MoELayer<Router, nexa::T5FFN<nexa::Relu>, nexa::NoShared, nexa::cuda, T>;
  const nexa::MoEConfig config = layer_config();
  const index_t tokens = 4 * tokens_per_sequence, d = config.d_model;
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  CpuLayer cpu(config, cpu_rng);
  cpu.router.set_classifier(nexa::BertModel<T>(tiny_bert(), cpu_rng));
  GpuLayer gpu(config, gpu_rng);
  gpu.router.set_classifier(nexa::BertModel<T, nexa::cuda>(tiny_bert(), gpu_rng));
  seed_grads<T>(cpu, gpu, rng);
  const auto x = Tensor<T>::randn({tokens, d}, rng);
  const auto dy = Tensor<T>::randn({tokens, d}, rng);
  const nexa::SequenceBatch b = batch();

  poison_pool<T>({{4, 3}, {4, K}, {tokens, 3}, {tokens, K}});
  const auto& seq = cpu.router.classify(b);
  const auto& seq_gpu = gpu.router.classify(b);
  check_routing<T>(seq_gpu, seq);
  CHECK(seq_gpu.experts.to_host()[2 * K] == 2);  // the override
  check_aux(gpu.router.aux(), cpu.router.aux(), tolerance<T>());

  typename CpuLayer::Cache cpu_cache;
  typename GpuLayer::Cache gpu_cache;
  poison_pool<T>({{tokens, d}, {tokens, 3}});
  const auto y = cpu.forward(x.cview(), cpu_cache);
  const auto y_gpu = gpu.forward(on_device(x).cview(), gpu_cache);
  check_routing<T>(gpu_cache.router.routing, cpu_cache.router.routing);
  CHECK(rel_error(gpu_cache.router.logits.to_host(), cpu_cache.router.logits.to_host()) < tolerance<T>());
  CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
  CHECK(std::abs(gpu_cache.aux_loss() - cpu_cache.aux_loss()) <= tolerance<T>() * std::abs(cpu_cache.aux_loss()));

  poison_pool<T>({{tokens, d}, {4, 3}});
  const auto dx = cpu.backward(dy.cview(), cpu_cache);
  const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
  CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
  check_grads<T>(cpu, gpu, tolerance<T>());
}

// Two MoE layers sharing one classifier hub: x -> first -> second, one classify(), one
// backward_classifier() after both layers' backward.
template <class T, class D>
struct TwoSharedLayers {
  using Shared = nexa::SharedSequenceRouter<nexa::BertModel<>, 2>;
  using Layer = nexa::MoELayer<Shared, nexa::T5FFN<nexa::Relu>, nexa::NoShared, D, T>;
  using Hub = typename Shared::template rebind<T, D>::Hub;
  std::shared_ptr<Hub> hub;
  Layer first, second;

  explicit TwoSharedLayers(std::uint64_t seed) {
    nexa::Rng rng(seed);
    const nexa::MoEConfig config = layer_config();
    hub = std::make_shared<Hub>(config.router(), nexa::BertModel<T, D>(tiny_bert(), rng));
    first = Layer(config, rng);
    second = Layer(config, rng);
    first.router.attach(hub);
    second.router.attach(hub);
  }
  template <class F>
  void visit_params(F&& f) {
    hub->visit_params(f, "hub");
    first.visit_params(f, "first");
    second.visit_params(f, "second");
  }
};

template <class T>
void compare_shared(std::uint64_t seed) {
  TwoSharedLayers<T, nexa::cpu> cpu(seed);
  TwoSharedLayers<T, nexa::cuda> gpu(seed);
  nexa::Rng rng(seed + 100);
  seed_grads<T>(cpu, gpu, rng);
  const index_t tokens = 4 * 5, d = layer_config().d_model;
  const auto x = Tensor<T>::randn({tokens, d}, rng);
  const auto dy = Tensor<T>::randn({tokens, d}, rng);
  const nexa::SequenceBatch b = batch();

  check_routing<T>(gpu.hub->classify(b), cpu.hub->classify(b));
  typename TwoSharedLayers<T, nexa::cpu>::Layer::Cache c0, c1;
  typename TwoSharedLayers<T, nexa::cuda>::Layer::Cache g0, g1;
  poison_pool<T>({{tokens, d}, {tokens, d}});
  const auto h = cpu.first.forward(x.cview(), c0);
  const auto y = cpu.second.forward(h.cview(), c1);
  const auto h_gpu = gpu.first.forward(on_device(x).cview(), g0);
  const auto y_gpu = gpu.second.forward(h_gpu.cview(), g1);
  CHECK(g0.aux_loss() == 0.0);  // counted once, by the hub
  CHECK(rel_error(h_gpu.to_host(), h.to_host()) < tolerance<T>());
  CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());

  poison_pool<T>({{tokens, d}, {tokens, d}, {4, 3}});
  const auto dh = cpu.second.backward(dy.cview(), c1);
  const auto dx = cpu.first.backward(dh.cview(), c0);
  cpu.hub->backward_classifier();
  const auto dh_gpu = gpu.second.backward(on_device(dy).cview(), g1);
  const auto dx_gpu = gpu.first.backward(dh_gpu.cview(), g0);
  gpu.hub->backward_classifier();
  CHECK(rel_error(dh_gpu.to_host(), dh.to_host()) < tolerance<T>());
  CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
  check_aux(gpu.hub->aux(), cpu.hub->aux(), tolerance<T>());
  check_grads<T>(cpu, gpu, tolerance<T>());
}

// Conditional<Stack<PreLNBlock<LocalGlobalAttention<4>, T5FFN>>> on a padded batch: a mixed
// batch, every sequence flagged, none flagged; a bad flag rejected from the host copy.
template <class T>
void compare_conditional(std::uint64_t seed) {
  using Processor = nexa::Stack<nexa::PreLNBlock<nexa::LocalGlobalAttention<4>, nexa::T5FFN<nexa::Relu>>>;
  const auto config = []<class Config>(std::type_identity<Config>) {
    return Config{.layers = 2,
                  .block = {.d_model = 16, .heads = 2, .dropout = 0.0, .ffn = {.d_model = 16, .d_ff = 24}},
                  .relative_buckets = 8,
                  .final_norm = true};
  };
  using CpuConfig = typename nexa::Conditional<Processor, T>::Config;
  using GpuConfig = typename nexa::Conditional<Processor, T, nexa::cuda>::Config;
  const index_t B = 4, S = 7, H = 16;
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  nexa::Conditional<Processor, T> cpu(config(std::type_identity<CpuConfig>{}), cpu_rng);
  nexa::Conditional<Processor, T, nexa::cuda> gpu(config(std::type_identity<GpuConfig>{}), gpu_rng);
  seed_grads<T>(cpu, gpu, rng);
  const auto mask = Tensor<std::int32_t>::from_host(
      {B, S}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0});
  const auto mask_gpu = on_device(mask);
  const std::vector<std::vector<std::int32_t>> all_flags{{0, 1, 0, 1}, {1, 1, 1, 1}, {1, 0, 1, 0}, {0, 0, 0, 0}};
  for (std::size_t i = 0; i < all_flags.size(); ++i) {
    CAPTURE(i);
    const std::vector<std::int32_t>& flags = all_flags[i];
    const auto f = Tensor<std::int32_t>::from_host({B}, flags);
    const auto x = Tensor<T>::randn({B, S, H}, rng);
    const auto dy = Tensor<T>::randn({B, S, H}, rng);
    typename nexa::Conditional<Processor, T>::Cache cpu_cache;
    typename nexa::Conditional<Processor, T, nexa::cuda>::Cache gpu_cache;
    poison_pool<T>({{B, S, H}, {2, S, H}});
    const auto y = cpu.forward(x.cview(), f.cview(), mask.cview(), cpu_cache);
    const auto y_gpu = gpu.forward(on_device(x).cview(), on_device(f).cview(), mask_gpu.cview(), gpu_cache);
    CHECK(gpu_cache.engaged == cpu_cache.engaged);
    CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
    poison_pool<T>({{B, S, H}, {2, S, H}});
    const auto dx = cpu.backward(dy.cview(), cpu_cache);
    const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
    CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
  }
  check_grads<T>(cpu, gpu, tolerance<T>());

  typename nexa::Conditional<Processor, T, nexa::cuda>::Cache c;
  CHECK_THROWS_AS(
      (void)gpu.forward(on_device(Tensor<T>::randn({B, S, H}, rng)).cview(),
                        on_device(Tensor<std::int32_t>::from_host({B}, {0, 2, 0, 1})).cview(), mask_gpu.cview(), c),
      nexa::Error);
}

}  // namespace

TEST_CASE("cuda SequenceClassifierRouter in an MoELayer matches the CPU: routing, override, losses, gradients") {
  compare_router_layer<float, 2>(6, 401);
  compare_router_layer<float, 1>(3, 402);
  compare_router_layer<float, 2>(5, 403);
  compare_router_layer<float, 1>(6, 404);
}

TEST_CASE("cuda SharedSequenceRouter: one classifier hub routes two layers as on the CPU") {
  compare_shared<float>(411);
}

TEST_CASE("cuda Conditional<Stack> matches the CPU: mixed, full and empty batches, padding") {
  compare_conditional<float>(421);
}
