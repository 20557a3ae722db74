#include <doctest/doctest.h>

#include <cmath>

#include "nexa/moe/topk_router.hpp"
#include "support/gradcheck.hpp"

using nexa::Tensor;

namespace router_test {
namespace {
// Router with W = I, so logits equal the inputs.
template <class Mode>
nexa::TopKRouter<1, Mode, double> identity_router(double lb, double z) {
  nexa::Rng rng(30);
  nexa::TopKRouter<1, Mode, double> router({.d_model = 2, .num_experts = 2, .load_balance_coef = lb, .z_loss_coef = z},
                                           rng);
  router.weight.value = Tensor<double>::from_host({2, 2}, {1, 0, 0, 1});
  return router;
}
const double ln3 = std::log(3.0);
}  // namespace

TEST_CASE("Switch load-balancing and z-loss equal hand-computed values") {
  auto router = identity_router<nexa::Trainable>(0.01, 0.001);
  // probs: (.5,.5) (.75,.25) (.25,.75) (.75,.25); first choices 0,0,1,0.
  auto x = Tensor<double>::from_host({4, 2}, {0, 0, ln3, 0, 0, ln3, ln3, 0});
  nexa::TopKRouter<1, nexa::Trainable, double>::Cache cache;
  const auto& r = router.route(x, cache);
  CHECK(r.experts.to_host() == std::vector<std::int32_t>{0, 0, 1, 0});
  CHECK(r.probs(1, 0) == doctest::Approx(0.75));
  // f = (3/4, 1/4), P = (0.5625, 0.4375): 0.01 * 2 * (0.75 * 0.5625 + 0.25 * 0.4375) = 0.010625.
  CHECK(cache.aux.load_balance == doctest::Approx(0.010625).epsilon(1e-12));
  // logsumexp rows: ln 2, ln 4, ln 4, ln 4: 0.001 * (ln2^2 + 3 * (2 ln2)^2) / 4 = 0.001 * 3.25 * ln2^2.
  CHECK(cache.aux.z_loss == doctest::Approx(0.001 * 3.25 * std::log(2.0) * std::log(2.0)).epsilon(1e-12));
}

TEST_CASE("Router gradients (routing weights and both aux losses) match central differences") {
  for (bool renormalize : {true, false}) {
    nexa::Rng rng(31);
    nexa::TopKRouter<2, nexa::Trainable, double> router(
        {.d_model = 5, .num_experts = 4, .renormalize = renormalize, .load_balance_coef = 0.3, .z_loss_coef = 0.2},
        rng);
    router.weight.value = Tensor<double>::randn({4, 5}, rng);
    auto x = Tensor<double>::randn({6, 5}, rng);
    auto r = Tensor<double>::randn({6, 2}, rng);
    nexa::TopKRouter<2, nexa::Trainable, double>::Cache cache;
    (void)router.route(x, cache);
    auto dx = router.backward(r.cview(), cache);
    auto loss = [&] {
      nexa::TopKRouter<2, nexa::Trainable, double>::Cache c;
      const auto& routing = router.route(x, c);
      return nexa::testing::weighted_sum(routing.weights, r) + c.aux.total();
    };
    INFO("renormalize = " << renormalize);
    CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
    CHECK(nexa::testing::gradient_error(loss, router.weight.value.data(), router.weight.numel(),
                                        router.weight.grad.data()) < 1e-6);
  }
}

TEST_CASE("A frozen router has no gradient storage but passes the gradient to its input") {
  auto router = identity_router<nexa::Frozen>(0.01, 0.001);
  CHECK_FALSE(router.weight.trainable);
  CHECK(router.weight.grad.empty());
  auto x = Tensor<double>::from_host({2, 2}, {0.3, -0.2, 0.1, 0.4});
  nexa::TopKRouter<1, nexa::Frozen, double>::Cache cache;
  (void)router.route(x, cache);
  CHECK(cache.input.empty());  // nothing kept for a gradient that is never computed
  auto dx = router.backward(Tensor<double>::full({2, 1}, 1.0).cview(), cache);
  bool nonzero = false;
  for (double v : dx.to_host()) nonzero = nonzero || v != 0.0;
  CHECK(nonzero);
}

TEST_CASE("Router rejects impossible configurations") {
  nexa::Rng rng(32);
  CHECK_THROWS_WITH_AS((nexa::TopKRouter<3>({.d_model = 4, .num_experts = 2}, rng)),
                       doctest::Contains("num_experts must be at least K = 3, got 2"), nexa::Error);
}

}  // namespace router_test
