#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "nexa/moe/shared_expert.hpp"
#include "nexa/moe/shared_expert_init.hpp"
#include "nexa/moe/topk_router.hpp"
#include "nexa/quant/quantized_expert.hpp"
#include "nexa/train/train.hpp"
#include "support/gradcheck.hpp"

using nexa::index_t;
using nexa::MoELayer;
using nexa::QuantizedExpert;
using nexa::Relu;
using nexa::T5FFN;
using nexa::Tensor;
using nexa::TopKRouter;

namespace quantized_expert_test {
namespace {

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

static_assert(nexa::Expert<QuantizedExpert<T5FFN<Relu>, nexa::NF4>>);
static_assert(nexa::Expert<QuantizedExpert<T5FFN<nexa::GatedGelu>, nexa::Int8>>);
static_assert(std::same_as<nexa::Quantized<T5FFN<Relu>, nexa::NF4>, QuantizedExpert<T5FFN<Relu>, nexa::NF4>>);
static_assert(
    std::same_as<nexa::Quantized<T5FFN<Relu, double>, nexa::MXFP4>, QuantizedExpert<T5FFN<Relu>, nexa::MXFP4, double>>);

TEST_CASE_TEMPLATE("QuantizedExpert: forward_into and backward_into equal a T5FFN holding the dequantised weights",
                   Pair, std::pair<Relu, nexa::quant::NF4>, std::pair<nexa::Gelu, nexa::quant::MXFP4>,
                   std::pair<nexa::GatedGelu, nexa::quant::NF4>, std::pair<nexa::SwiGLU, nexa::quant::Int8>) {
  using Act = typename Pair::first_type;
  using Format = typename Pair::second_type;
  nexa::Rng rng(31);
  T5FFN<Act> dense({.d_model = 96, .d_ff = 320}, rng);  // d_ff is not a multiple of the tile (128)
  QuantizedExpert<T5FFN<Act>, Format> q(dense);
  nexa::Rng rd(1);
  auto ref = q.dequantized(rd);
  const auto x = Tensor<float>::randn({37, 96}, rng);
  const auto dy = Tensor<float>::randn({37, 96}, rng);

  typename decltype(q)::Cache cq;
  typename T5FFN<Act>::Cache cr;
  Tensor<float> y({37, 96}), y_ref({37, 96});
  q.forward_into(Tensor<float>(x), cq, y.view());
  ref.forward_into(Tensor<float>(x), cr, y_ref.view());
  CHECK(max_abs_diff(y, y_ref) <= 1e-5 * max_abs(y_ref));
  Tensor<float> dx({37, 96}), dx_ref({37, 96});
  q.backward_into(dy, cq, dx.view());
  ref.backward_into(dy, cr, dx_ref.view());
  CHECK(max_abs_diff(dx, dx_ref) <= 1e-5 * max_abs(dx_ref));
  // Quantisation stays near the original expert (MXFP4's 3-bit mantissa is the coarsest).
  typename T5FFN<Act>::Cache c0;
  CHECK(max_abs_diff(dense.forward(x, c0), y_ref) < 0.35 * max_abs(y_ref));
  int visited = 0;
  q.visit_params([&](const std::string&, auto&) { ++visited; });
  CHECK(visited == 0);
  CHECK_THROWS_AS(q.forward_into(Tensor<float>({2, 95}), cq, y.view().slice_rows(0, 2)), nexa::Error);
}

TEST_CASE("QuantizedExpert in double: dx equals central differences") {
  nexa::Rng rng(32);
  QuantizedExpert<T5FFN<nexa::GatedGelu>, nexa::NF4, double> q({.d_model = 16, .d_ff = 200}, rng);
  q.set_tile_rows(64);
  auto x = Tensor<double>::randn({5, 16}, rng);
  const auto r = Tensor<double>::randn({5, 16}, rng);
  decltype(q)::Cache cache;
  auto loss = [&] {
    decltype(q)::Cache c;
    return nexa::testing::weighted_sum(q.forward(x, c), r);
  };
  (void)q.forward(x, cache);
  auto dx = q.backward(r, cache);
  CHECK(nexa::testing::gradient_error(loss, x.data(), x.numel(), dx.data()) < 1e-7);
}

TEST_CASE("NEXUS with NF4 experts: frozen router and quantised experts, a trainable shared expert learns") {
  using Layer =
      MoELayer<TopKRouter<2, nexa::Frozen>, QuantizedExpert<T5FFN<Relu>, nexa::NF4>, nexa::SharedExpert<T5FFN<Relu>>>;
  constexpr index_t d = 16, d_ff = 64, E = 4;
  nexa::Rng rng(33);
  Layer layer({.d_model = d, .d_ff = d_ff, .num_experts = E}, rng);
  nexa::freeze_routed(layer);
  const auto x = Tensor<float>::randn({96, d}, rng);
  T5FFN<Relu> teacher({.d_model = d, .d_ff = d_ff}, rng);
  T5FFN<Relu>::Cache tc;
  auto target = teacher.forward(x, tc);
  {
    Layer::Cache cache;
    const auto y = layer.forward(x, cache);
    for (index_t i = 0; i < target.numel(); ++i) target.data()[i] = y.data()[i] + 0.2f * target.data()[i];
  }
  std::vector<std::vector<std::uint8_t>> codes;
  for (const auto& e : layer.experts) {
    codes.push_back(e.wi().codes);
    codes.push_back(e.wo().codes);
  }
  const auto report = nexa::trainable_report(layer);
  CHECK(report.trainable == 2 * d * d_ff);  // the shared expert only (fixed scale)
  nexa::train::AdamW opt(layer, {.lr = 3e-3, .weight_decay = 0.0});
  for (const auto& name : opt.param_names()) CHECK(name.rfind("shared_expert.", 0) == 0);
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    Layer::Cache cache;
    auto [loss, dy] = nexa::train::mse(layer.forward(x, cache), target);
    (void)layer.backward(dy, cache);
    opt.step();
    opt.zero_grad();
    if (step == 0) first = loss;
    last = loss;
  }
  MESSAGE("NEXUS over NF4 experts: loss " << first << " -> " << last);
  CHECK(last < 0.3 * first);
  std::size_t i = 0;
  for (const auto& e : layer.experts) {
    CHECK(e.wi().codes == codes[i++]);
    CHECK(e.wo().codes == codes[i++]);
  }
}

TEST_CASE("with_quantized_experts: the layer computes with the dequantised experts") {
  using Dense = MoELayer<TopKRouter<2>, T5FFN<Relu>, nexa::SharedExpert<T5FFN<Relu>>>;
  nexa::Rng rng(34);
  Dense dense({.d_model = 32, .d_ff = 160, .num_experts = 3}, rng);
  Dense reference = dense;
  auto q = nexa::with_quantized_experts<nexa::NF4>(std::move(dense));
  nexa::Rng rd(2);
  for (std::size_t e = 0; e < q.experts.size(); ++e) reference.experts[e] = q.experts[e].dequantized(rd);
  const auto x = Tensor<float>::randn({2, 9, 32}, rng);
  const auto dy = Tensor<float>::randn({2, 9, 32}, rng);
  decltype(q)::Cache cq;
  Dense::Cache cr;
  const auto yq = q.forward(x, cq);
  const auto yr = reference.forward(x, cr);
  CHECK(max_abs_diff(yq, yr) <= 1e-5 * max_abs(yr));
  const auto dxq = q.backward(dy, cq);
  const auto dxr = reference.backward(dy, cr);
  CHECK(max_abs_diff(dxq, dxr) <= 1e-5 * max_abs(dxr));
}

TEST_CASE("Bytes per parameter of an NF4 expert with double quantisation (d_model 512, d_ff 2048)") {
  nexa::Rng rng(35);
  QuantizedExpert<T5FFN<Relu>, nexa::NF4> nf4({.d_model = 512, .d_ff = 2048}, rng);
  CHECK(nf4.num_parameters() == 2 * 512 * 2048);
  const double bpp = nf4.bytes_per_parameter();
  MESSAGE("NF4 expert (double quantisation), d_model 512, d_ff 2048: "
          << nf4.bytes() << " bytes for " << nf4.num_parameters() << " parameters = " << bpp << " bytes/parameter");
  // 0.5 (codes) + 1/64 (8-bit absmax codes) + 4/16384 (their absmax) + the offsets.
  CHECK(bpp == doctest::Approx(0.5 + 1.0 / 64 + 4.0 / 16384).epsilon(1e-4));
  QuantizedExpert<T5FFN<Relu>, nexa::NF4Format<false>> plain({.d_model = 512, .d_ff = 2048}, rng);
  QuantizedExpert<T5FFN<Relu>, nexa::Int8> int8({.d_model = 512, .d_ff = 2048}, rng);
  QuantizedExpert<T5FFN<Relu>, nexa::MXFP4> mx({.d_model = 512, .d_ff = 2048}, rng);
  MESSAGE("bytes/parameter: NF4 without double quantisation " << plain.bytes_per_parameter() << ", Int8 "
                                                              << int8.bytes_per_parameter() << ", MXFP4 "
                                                              << mx.bytes_per_parameter() << ", fp32 4");
  CHECK(plain.bytes_per_parameter() == doctest::Approx(0.5625));
  CHECK(mx.bytes_per_parameter() == doctest::Approx(0.53125));
}

}  // namespace quantized_expert_test
