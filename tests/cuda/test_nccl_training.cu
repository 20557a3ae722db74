// Data and expert parallelism over NcclComm with GPU parameters, on one GPU: a communicator of one
// rank runs every collective through NCCL, so
//   - GradientSync leaves the gradients unchanged (the sum over one rank divided by 1), through
//     buckets smaller than a tensor, so the bucket packing and unpacking is checked element for
//     element, and broadcast_parameters leaves the parameters unchanged;
//   - ExpertParallelMoE equals the single-process MoELayer on the same GPU: outputs, auxiliary
//     losses, dx and every gradient.
// Several ranks need one GPU each (as torch's NCCL tests do); the MPI tests (tests/dist) check
// the multi-rank algorithms on the CPU.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "module_support.hpp"
#include "nexa/dist/data_parallel.hpp"
#include "nexa/dist/expert_parallel.hpp"
#include "nexa/dist/nccl_comm.hpp"
#include "nexa/moe/moe_layer.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/moe/topk_router.hpp"

using namespace nexa_test;
using nexa::Tensor;
using nexa::dist::NcclComm;

namespace {

NcclComm one_rank() { return NcclComm(NcclComm::make_unique_id(), 0, 1); }

template <class Module>
std::vector<std::vector<float>> host_copies(Module& m, bool grads) {
  std::vector<std::vector<float>> out;
  m.visit_params([&](const std::string&, auto& p) {
    if (grads && !p.trainable) return;
    out.push_back(grads ? p.grad.to_host() : p.value.to_host());
  });
  return out;
}

// The same random starting gradients for two modules on the GPU (visit order is the same).
template <class A, class B>
void seed_same_grads(A& a, B& b, nexa::Rng& rng) {
  std::vector<Tensor<float>> start;
  a.visit_params([&](const std::string&, auto& p) {
    if (!p.trainable) return;
    start.push_back(Tensor<float>::randn(p.grad.shape(), rng));
    p.grad = on_device(start.back());
  });
  std::size_t i = 0;
  b.visit_params([&](const std::string&, auto& p) {
    if (p.trainable) p.grad = on_device(start[i++]);
  });
}

}  // namespace

TEST_CASE("GradientSync over NcclComm of one rank: gradients unchanged through small buckets") {
  NcclComm comm = one_rank();
  nexa::Rng rng(501), grad_rng(502);
  nexa::T5FFN<nexa::GatedGelu, float, nexa::cuda> ffn({.d_model = 24, .d_ff = 40}, rng);
  ffn.visit_params([&](const std::string&, auto& p) {
    p.grad = Tensor<float>::randn(p.grad.shape(), grad_rng).template to<nexa::cuda>();
  });
  const auto before = host_copies(ffn, true);
  for (const std::size_t bucket_bytes : {std::size_t{256}, std::size_t{1000}, nexa::dist::default_bucket_bytes}) {
    CAPTURE(bucket_bytes);
    nexa::dist::GradientSync sync(ffn, comm, bucket_bytes);
    CHECK(sync.num_elements() == 3 * 24 * 40);
    sync.average_gradients();
    const auto after = host_copies(ffn, true);
    REQUIRE(after.size() == before.size());
    for (std::size_t i = 0; i < after.size(); ++i) CHECK(bitwise_equal(after[i], before[i]));
  }
  const auto values = host_copies(ffn, false);
  nexa::dist::broadcast_parameters(ffn, comm);
  const auto broadcast = host_copies(ffn, false);
  for (std::size_t i = 0; i < values.size(); ++i) CHECK(bitwise_equal(broadcast[i], values[i]));
}

TEST_CASE("ExpertParallelMoE over NcclComm of one rank equals MoELayer on the GPU") {
  using Router = nexa::TopKRouter<2>;
  using Expert = nexa::T5FFN<nexa::Relu>;
  using Single = nexa::MoELayer<Router, Expert, nexa::NoShared, nexa::cuda, float>;
  using Parallel = nexa::dist::ExpertParallelMoE<Router, Expert, NcclComm, float>;
  NcclComm comm = one_rank();
  const nexa::MoEConfig config{
      .d_model = 32, .d_ff = 48, .num_experts = 5, .load_balance_coef = 0.01, .z_loss_coef = 0.001};
  nexa::Rng single_rng(503), parallel_rng(503), rng(504);
  Single single(config, single_rng);
  Parallel parallel(config, comm, parallel_rng);
  seed_same_grads(single, parallel, rng);
  const auto x = Tensor<float>::randn({57, 32}, rng);
  const auto dy = Tensor<float>::randn({57, 32}, rng);
  typename Single::Cache single_cache;
  typename Parallel::Cache parallel_cache;
  const auto y = single.forward(on_device(x).cview(), single_cache);
  const auto y_parallel = parallel.forward(on_device(x).cview(), parallel_cache);
  CHECK(rel_error(y_parallel.to_host(), y.to_host()) < tolerance<float>());
  CHECK(parallel_cache.tokens_per_expert() == single_cache.tokens_per_expert());
  CHECK(std::abs(parallel_cache.aux_loss() - single_cache.aux_loss()) <= 1e-6 * std::abs(single_cache.aux_loss()));
  const auto dx = single.backward(on_device(dy).cview(), single_cache);
  const auto dx_parallel = parallel.backward(on_device(dy).cview(), parallel_cache);
  CHECK(rel_error(dx_parallel.to_host(), dx.to_host()) < tolerance<float>());
  check_grads<float>(single, parallel, tolerance<float>());
}
