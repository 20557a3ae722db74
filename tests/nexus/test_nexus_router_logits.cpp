// NexusRouter::backward_logits: gradients from dL/dlogits (a loss on the scores themselves, e.g.
// the supervised routing cross-entropy of examples/nexus_extend), checked in double by central
// differences; backward(d_weights) is backward_logits of the routing head's dL/dlogits.
#include <doctest/doctest.h>

#include "nexa/moe.hpp"
#include "support/gradcheck.hpp"

using nexa::Tensor;

namespace {
using Router = nexa::NexusRouter<1, double>;
const nexa::RouterConfig config{.d_model = 6,
                                .num_experts = 4,
                                .load_balance_coef = 0.0,
                                .z_loss_coef = 0.0,
                                .domain_dim = 5,
                                .projection_hidden = 3,
                                .score_scale = 1.3};
}  // namespace

TEST_CASE("NexusRouter::backward_logits: gradients of a loss on the logits check") {
  nexa::Rng rng(710);
  Router router(config, rng);
  router.domain_embeddings.set_trainable(true);
  auto x = Tensor<double>::randn({9, 6}, rng, 2.0);
  const auto g = Tensor<double>::randn({9, 4}, rng);  // L = sum(g * logits) + 0.5 * sum(logits^2)
  const auto loss = [&] {
    Router::Cache c;
    (void)router.route(x, c);
    double l = 0;
    for (nexa::index_t i = 0; i < c.logits.numel(); ++i)
      l += g.data()[i] * c.logits.data()[i] + 0.5 * c.logits.data()[i] * c.logits.data()[i];
    return l;
  };
  Router::Cache cache;
  (void)router.route(x, cache);
  auto d_logits = Tensor<double>::uninitialized(cache.logits.shape());
  for (nexa::index_t i = 0; i < d_logits.numel(); ++i) d_logits.data()[i] = g.data()[i] + cache.logits.data()[i];
  const auto dx = router.backward_logits(d_logits.cview(), cache);
  CHECK(nexa::testing::gradient_error(loss, const_cast<double*>(x.data()), x.numel(), dx.data()) < 1e-6);
  int checked = 0;
  for (auto& [name, p] : nexa::testing::trainable_params(router)) {
    const std::string param_name = name;
    INFO(param_name);
    CHECK(nexa::testing::gradient_error(loss, p->value.data(), p->numel(), p->grad.data()) < 1e-6);
    ++checked;
  }
  CHECK(checked == 4);  // domain embeddings and the three projection matrices
  CHECK_THROWS_AS((void)router.backward_logits(Tensor<double>::zeros({9, 3}).cview(), cache), nexa::Error);
}

TEST_CASE("NexusRouter::backward equals backward_logits of the routing head's dL/dlogits") {
  nexa::Rng rng(711);
  nexa::RouterConfig with_aux = config;  // the auxiliary losses' gradients ride on dL/dlogits too
  with_aux.load_balance_coef = 0.01;
  with_aux.z_loss_coef = 0.001;
  Router a(with_aux, rng);
  Router b = a;
  auto x = Tensor<double>::randn({8, 6}, rng);
  const auto dw = Tensor<double>::randn({8, 1}, rng);
  Router::Cache ca, cb;
  (void)a.route(x, ca);
  (void)b.route(x, cb);
  const auto dxa = a.backward(dw.cview(), ca);
  const auto d_logits = nexa::logits_backward(cb, b.config(), 1, dw.cview());
  const auto dxb = b.backward_logits(d_logits.cview(), cb);
  CHECK(dxa.to_host() == dxb.to_host());
  CHECK(a.down_proj.grad.to_host() == b.down_proj.grad.to_host());
  CHECK(a.gate_proj.grad.to_host() == b.gate_proj.grad.to_host());
  CHECK(a.up_proj.grad.to_host() == b.up_proj.grad.to_host());
}
