#include <doctest/doctest.h>

#include "nexa/nn/activation.hpp"
#include "support/gradcheck.hpp"

using nexa::Tensor;

namespace {
template <class Act>
void check_activation_gradient() {
  nexa::Rng rng(11);
  auto x = Tensor<double>::randn({3, 7}, rng, 2.0);
  auto r = Tensor<double>::randn({3, 7}, rng);
  nexa::Activation<Act, double> act;
  typename nexa::Activation<Act, double>::Cache cache;
  (void)act.forward(x, cache);
  auto dx = act.backward(r, cache);
  auto loss = [&] {
    typename nexa::Activation<Act, double>::Cache c;
    return nexa::testing::weighted_sum(act.forward(x, c), r);
  };
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
}
}  // namespace

TEST_CASE("Activations: values at known points") {
  CHECK(nexa::Relu::value(-1.0) == 0.0);
  CHECK(nexa::Relu::value(2.0) == 2.0);
  // torch.nn.functional.gelu(torch.tensor(1.0, dtype=torch.float64)) = 0.8413447460685429
  CHECK(nexa::Gelu::value(1.0) == doctest::Approx(0.8413447460685429).epsilon(1e-14));
  // transformers NewGELUActivation at 1.0 = 0.8411919906082768
  CHECK(nexa::GeluNew::value(1.0) == doctest::Approx(0.8411919906082768).epsilon(1e-14));
  // torch.nn.functional.silu(1.0) = 0.7310585786300049
  CHECK(nexa::Silu::value(1.0) == doctest::Approx(0.7310585786300049).epsilon(1e-14));
}

TEST_CASE("Activation gradients match central differences") {
  check_activation_gradient<nexa::Relu>();
  check_activation_gradient<nexa::Gelu>();
  check_activation_gradient<nexa::GeluNew>();
  check_activation_gradient<nexa::Silu>();
}
