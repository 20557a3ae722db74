#include <doctest/doctest.h>

#include "nexa/moe/t5_ffn.hpp"
#include "support/gradcheck.hpp"

using nexa::Tensor;

namespace t5_ffn_test {
namespace {
template <class Act>
void check_ffn_gradients(double dropout) {
  nexa::Rng rng(21);
  nexa::T5FFN<Act, double> ffn({.d_model = 6, .d_ff = 10, .dropout = dropout}, rng);
  auto x = Tensor<double>::randn({5, 6}, rng);
  auto r = Tensor<double>::randn({5, 6}, rng);
  typename nexa::T5FFN<Act, double>::Cache cache;
  (void)ffn.forward(x, cache);
  auto dx = ffn.backward(r, cache);
  // With dropout the numeric loss must see the same mask: replay call 0.
  auto loss = [&] {
    typename nexa::T5FFN<Act, double>::Cache c;
    nexa::T5FFN<Act, double> replay = ffn;
    replay.dropout().rewind(0);
    return nexa::testing::weighted_sum(replay.forward(x, c), r);
  };
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-6);
  for (auto& [name, p] : nexa::testing::trainable_params(ffn)) {
    const std::string param_name = name;  // clang cannot capture a structured binding
    INFO(param_name);
    CHECK(nexa::testing::gradient_error(loss, p->value.data(), p->numel(), p->grad.data()) < 1e-6);
  }
}
}  // namespace

TEST_CASE("T5FFN<Relu> (DenseReluDense) forward equals wo relu(wi x)") {
  nexa::Rng rng(20);
  nexa::T5FFN<nexa::Relu, double> ffn({.d_model = 3, .d_ff = 4}, rng);
  auto x = Tensor<double>::randn({2, 3}, rng);
  nexa::T5FFN<nexa::Relu, double>::Cache cache;
  auto y = ffn.forward(x, cache);
  for (nexa::index_t t = 0; t < 2; ++t) {
    for (nexa::index_t o = 0; o < 3; ++o) {
      double ref = 0;
      for (nexa::index_t h = 0; h < 4; ++h) {
        double a = 0;
        for (nexa::index_t c = 0; c < 3; ++c) a += ffn.wi.value(h, c) * x(t, c);
        ref += ffn.wo.value(o, h) * std::max(a, 0.0);
      }
      CHECK(y(t, o) == doctest::Approx(ref));
    }
  }
}

TEST_CASE("T5FFN<GatedGelu> forward equals wo (gelu_new(wi_0 x) * wi_1 x)") {
  nexa::Rng rng(22);
  nexa::T5FFN<nexa::GatedGelu, double> ffn({.d_model = 3, .d_ff = 4}, rng);
  auto x = Tensor<double>::randn({2, 3}, rng);
  nexa::T5FFN<nexa::GatedGelu, double>::Cache cache;
  auto y = ffn.forward(x, cache);
  for (nexa::index_t t = 0; t < 2; ++t) {
    for (nexa::index_t o = 0; o < 3; ++o) {
      double ref = 0;
      for (nexa::index_t h = 0; h < 4; ++h) {
        double a = 0, b = 0;
        for (nexa::index_t c = 0; c < 3; ++c) {
          a += ffn.wi_0.value(h, c) * x(t, c);
          b += ffn.wi_1.value(h, c) * x(t, c);
        }
        ref += ffn.wo.value(o, h) * nexa::GeluNew::value(a) * b;
      }
      CHECK(y(t, o) == doctest::Approx(ref));
    }
  }
  std::vector<std::string> names;
  ffn.visit_params([&](const std::string& n, auto&) { names.push_back(n); }, "DenseReluDense");
  CHECK(names == std::vector<std::string>{"DenseReluDense.wi_0.weight", "DenseReluDense.wi_1.weight",
                                          "DenseReluDense.wo.weight"});
}

TEST_CASE("T5FFN gradients match central differences, with and without dropout") {
  check_ffn_gradients<nexa::Relu>(0.0);
  check_ffn_gradients<nexa::GatedGelu>(0.0);
  check_ffn_gradients<nexa::Gated<nexa::Silu>>(0.0);
  check_ffn_gradients<nexa::Relu>(0.3);
  check_ffn_gradients<nexa::GatedGelu>(0.3);
}

TEST_CASE("T5FFN rejects bad configs and inputs") {
  nexa::Rng rng(23);
  CHECK_THROWS_AS(nexa::T5FFN<nexa::Relu>({.d_model = 0, .d_ff = 4}, rng), nexa::Error);
  nexa::T5FFN<nexa::Relu> ffn({.d_model = 3, .d_ff = 4}, rng);
  nexa::T5FFN<nexa::Relu>::Cache cache;
  CHECK_THROWS_WITH_AS((void)ffn.forward(Tensor<float>({2, 5}), cache), doctest::Contains("expected 3"), nexa::Error);
}

}  // namespace t5_ffn_test
