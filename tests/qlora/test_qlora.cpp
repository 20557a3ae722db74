#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "nexa/lora/lora_linear.hpp"
#include "nexa/quant/quantized_linear.hpp"
#include "nexa/train/train.hpp"
#include "support/gradcheck.hpp"

using nexa::index_t;
using nexa::Linear;
using nexa::LoRA;
using nexa::QuantizedLinear;
using nexa::Tensor;
namespace quant = nexa::quant;

namespace qlora_test {
namespace {

template <class T>
Tensor<T> to(const Tensor<float>& t) {
  const auto h = t.to_host();
  return Tensor<T>::from_host(t.shape(), std::vector<T>(h.begin(), h.end()));
}

double max_abs_diff(const Tensor<float>& a, const Tensor<float>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (index_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
  return m;
}
double max_abs(const Tensor<float>& a) {
  double m = 0;
  for (index_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(double(a.data()[i])));
  return m;
}

}  // namespace

TEST_CASE("QLoRA: a fresh LoRA over a quantised base equals the base bit for bit") {
  nexa::Rng rng(21);
  Linear<float> dense({.in_features = 72, .out_features = 200, .bias = true}, rng);
  QuantizedLinear<nexa::NF4> base(dense);
  LoRA<nexa::Quantized<Linear<>, nexa::NF4>> qlora(base, {.r = 4, .alpha = 8}, rng);
  const auto x = Tensor<float>::randn({3, 5, 72}, rng);
  const auto y0 = base.apply(x);
  decltype(qlora)::Cache cache;
  const auto y = qlora.forward(x, cache);
  REQUIRE(y.shape() == y0.shape());
  CHECK(std::memcmp(y.data(), y0.data(), sizeof(float) * static_cast<std::size_t>(y.numel())) == 0);
  // Only the adapters are parameters.
  std::vector<std::string> names;
  qlora.visit_params([&](const std::string& name, nexa::Param<float>& p) {
    names.push_back(name);
    CHECK(p.trainable);
  });
  CHECK(names == std::vector<std::string>{"lora_A.weight", "lora_B.weight"});
}

TEST_CASE("QLoRA in double: gradients of A, B and x equal central differences") {
  nexa::Rng rng(22);
  Linear<double> dense({.in_features = 40, .out_features = 150, .bias = true}, rng);
  QuantizedLinear<nexa::NF4, double> base(dense, /*tile_rows=*/64);  // three tiles
  LoRA<QuantizedLinear<nexa::NF4>, double> m(base, {.r = 3, .alpha = 6}, rng);
  m.adapter.lora_B.value = Tensor<double>::randn(m.adapter.lora_B.value.shape(), rng, 0.1);
  auto x = Tensor<double>::randn({4, 40}, rng);
  const auto r = Tensor<double>::randn({4, 150}, rng);
  auto loss = [&] { return nexa::testing::weighted_sum(m.apply(x), r); };

  nexa::testing::zero_grads(m);
  decltype(m)::Cache cache;
  (void)m.forward(x, cache);
  auto dx = m.backward(r, cache);
  const auto params = nexa::testing::trainable_params(m);
  REQUIRE(params.size() == 2);
  for (auto& [name, p] : params) {
    const double err = nexa::testing::gradient_error(loss, p->value.data(), p->numel(), p->grad.data());
    CAPTURE(name);
    CHECK(err < 1e-7);
  }
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-7);
}

TEST_CASE("QLoRA: adapter gradients equal LoRA over a dense Linear holding the dequantised weight") {
  nexa::Rng rng(23);
  Linear<float> dense({.in_features = 96, .out_features = 260}, rng);
  QuantizedLinear<nexa::NF4> qbase(dense);
  Linear<float> deq = dense;
  deq.weight.value = qbase.dequantized_weight();
  nexa::Rng ra(5), rb(5);
  LoRA<QuantizedLinear<nexa::NF4>> q(qbase, {.r = 8, .alpha = 16}, ra);
  LoRA<Linear<>> d(deq, {.r = 8, .alpha = 16}, rb);
  nexa::Rng rbv(6);
  q.adapter.lora_B.value = Tensor<float>::randn({260, 8}, rbv, 0.05);
  d.adapter.lora_B.value = q.adapter.lora_B.value;
  CHECK(max_abs_diff(q.adapter.lora_A.value, d.adapter.lora_A.value) == 0);

  const auto x = Tensor<float>::randn({6, 96}, rng);
  const auto dy = Tensor<float>::randn({6, 260}, rng);
  decltype(q)::Cache cq;
  decltype(d)::Cache cd;
  const auto yq = q.forward(x, cq);
  const auto yd = d.forward(x, cd);
  CHECK(max_abs_diff(yq, yd) <= 1e-5 * max_abs(yd));
  const auto dxq = q.backward(dy, cq);
  const auto dxd = d.backward(dy, cd);
  CHECK(max_abs_diff(dxq, dxd) <= 1e-5 * max_abs(dxd));
  CHECK(max_abs_diff(q.adapter.lora_A.grad, d.adapter.lora_A.grad) <= 1e-5 * max_abs(d.adapter.lora_A.grad));
  CHECK(max_abs_diff(q.adapter.lora_B.grad, d.adapter.lora_B.grad) <= 1e-5 * max_abs(d.adapter.lora_B.grad));
}

TEST_CASE("QLoRA: an AdamW step changes only the adapters; the quantised base is untouched") {
  nexa::Rng rng(24);
  LoRA<QuantizedLinear<nexa::NF4>> m({.base = {.in_features = 64, .out_features = 128}, .lora = {.r = 4}}, rng);
  const auto codes = m.base.storage().codes;
  const auto absmax_codes = m.base.storage().absmax_q.codes;
  const auto A0 = m.adapter.lora_A.value.to_host();
  const auto B0 = m.adapter.lora_B.value.to_host();
  nexa::train::AdamW opt(m, {.lr = 1e-2, .weight_decay = 0.0});
  CHECK(opt.num_elements() == 4 * 64 + 128 * 4);

  const auto x = Tensor<float>::randn({16, 64}, rng);
  const auto target = Tensor<float>::randn({16, 128}, rng);
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    decltype(m)::Cache cache;
    auto [loss, dy] = nexa::train::mse(m.forward(x, cache), target);
    (void)m.backward(dy, cache);
    opt.step();
    opt.zero_grad();
    if (step == 0) first = loss;
    last = loss;
  }
  MESSAGE("QLoRA (NF4 base, r = 4) loss " << first << " -> " << last);
  CHECK(last < first);
  CHECK(m.adapter.lora_A.value.to_host() != A0);
  CHECK(m.adapter.lora_B.value.to_host() != B0);
  CHECK(m.base.storage().codes == codes);
  CHECK(m.base.storage().absmax_q.codes == absmax_codes);
}

}  // namespace qlora_test
