// Cross-entropy (with ignored rows), MSE and AdamW with D = cuda against the CPU, on fresh random
// inputs: the loss value, its gradient, and parameters after several optimizer steps.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "module_support.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/nn/rms_norm.hpp"
#include "nexa/train/adamw.hpp"
#include "nexa/train/loss.hpp"
#include "nexa/train/loss_scaler.hpp"
#include "nexa/train/master_weights.hpp"

using namespace nexa_test;
using nexa::Tensor;

namespace {

template <class T>
void compare_cross_entropy(index_t n, index_t c, std::uint64_t seed) {
  CAPTURE(n);
  CAPTURE(c);
  nexa::Rng rng(seed);
  const auto logits = Tensor<T>::randn({n, c}, rng, 4.0);
  std::vector<std::int32_t> targets(static_cast<std::size_t>(n));
  const auto draws = Tensor<double>::uniform({n}, rng, 0.0, 1.0).to_host();
  for (std::size_t i = 0; i < targets.size(); ++i) {
    // About one row in five is ignored.
    targets[i] = draws[i] > 0.8 ? -100 : static_cast<std::int32_t>(draws[i] / 0.8 * static_cast<double>(c - 1) + 0.5);
  }
  const auto t_cpu = Tensor<std::int32_t>::from_host({n}, targets);
  const auto want = nexa::train::cross_entropy(logits, t_cpu);
  const auto got = nexa::train::cross_entropy(on_device(logits), on_device(t_cpu));
  CHECK(std::abs(got.loss - want.loss) <= tolerance<T>() * std::max(1.0, std::abs(want.loss)));
  CHECK(got.grad.shape() == want.grad.shape());
  CHECK(rel_error(got.grad.to_host(), want.grad.to_host()) < tolerance<T>());
}

template <class T>
void compare_mse(index_t n, std::uint64_t seed) {
  nexa::Rng rng(seed);
  const auto pred = Tensor<T>::randn({n, 3}, rng), target = Tensor<T>::randn({n, 3}, rng);
  const auto want = nexa::train::mse(pred, target);
  const auto got = nexa::train::mse(on_device(pred), on_device(target));
  CHECK(std::abs(got.loss - want.loss) <= 1e-12 * std::max(1.0, want.loss));
  CHECK(rel_error(got.grad.to_host(), want.grad.to_host()) < tolerance<T>());
}

// A Linear whose bias gets no weight decay: several steps on both devices.
template <class T>
void compare_adamw(std::uint64_t seed) {
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  nexa::Linear<T> cpu({.in_features = 33, .out_features = 65, .bias = true}, cpu_rng);
  nexa::Linear<T, nexa::cuda> gpu({.in_features = 33, .out_features = 65, .bias = true}, gpu_rng);
  const nexa::train::AdamWConfig adamw{
      .lr = 3e-2, .weight_decay = 0.1, .no_weight_decay = nexa::train::no_decay_norms_and_biases};
  nexa::train::AdamW cpu_opt(cpu, adamw);
  nexa::train::AdamW gpu_opt(gpu, adamw);
  CHECK(gpu_opt.param_names() == cpu_opt.param_names());
  CHECK(gpu_opt.state_bytes() == cpu_opt.state_bytes());
  CHECK(gpu_opt.num_elements() == cpu_opt.num_elements());
  CHECK_FALSE(gpu_opt.decays("bias"));
  CHECK(gpu_opt.decays("weight"));
  for (int step = 0; step < 5; ++step) {
    seed_grads<T>(cpu, gpu, rng);
    cpu_opt.step();
    gpu_opt.step();
  }
  CHECK(rel_error(gpu.weight.value.to_host(), cpu.weight.value.to_host()) < tolerance<T>());
  CHECK(rel_error(gpu.bias.value.to_host(), cpu.bias.value.to_host()) < tolerance<T>());
  gpu_opt.zero_grad();
  CHECK(gpu.weight.grad.to_host() == std::vector<T>(static_cast<std::size_t>(gpu.weight.grad.numel()), T(0)));
}

}  // namespace

TEST_CASE("cuda cross_entropy matches the CPU, ignored rows included") {
  compare_cross_entropy<float>(1, 1, 91);
  compare_cross_entropy<float>(37, 10, 92);
  compare_cross_entropy<float>(300, 1000, 93);
  compare_cross_entropy<double>(129, 33, 94);
}

TEST_CASE("cuda cross_entropy with every row ignored gives loss 0 and zero gradients") {
  nexa::Rng rng(99);
  const auto logits = Tensor<float>::randn({4, 3}, rng).to<nexa::cuda>();
  const auto targets = DeviceTensor<std::int32_t>::full({4}, -100);
  const auto result = nexa::train::cross_entropy(logits, targets);
  CHECK(result.loss == 0.0);
  CHECK(result.grad.to_host() == std::vector<float>(12, 0.f));
}

TEST_CASE("cuda cross_entropy rejects out-of-range targets naming the row") {
  const auto logits = DeviceTensor<float>::zeros({2, 3});
  const auto targets = Tensor<std::int32_t>::from_host({2}, {1, 3}).to<nexa::cuda>();
  CHECK_THROWS_WITH_AS((void)nexa::train::cross_entropy(logits, targets), doctest::Contains("at row 1"), nexa::Error);
}

TEST_CASE("cuda mse matches the CPU") {
  compare_mse<float>(1000, 95);
  compare_mse<double>(77, 96);
}

TEST_CASE("cuda AdamW steps match the CPU, with and without weight decay") {
  compare_adamw<float>(97);
  compare_adamw<double>(98);
}

TEST_CASE("cuda all_finite finds a single inf or NaN anywhere") {
  nexa::Rng rng(100);
  const index_t n = 100003;
  const auto clean = Tensor<float>::randn({n}, rng);
  CHECK(nexa::ops::all_finite(on_device(clean).cview()));
  for (const index_t at : {index_t{0}, index_t{4097}, n - 1}) {
    for (const float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
      auto dirty = clean;
      dirty(at) = bad;
      CHECK_FALSE(nexa::ops::all_finite(on_device(dirty).cview()));
    }
  }
  CHECK(nexa::ops::all_finite(DeviceTensor<double>::zeros({0}).cview()));
}

TEST_CASE("cuda DynamicLossScaler unscales device gradients and skips the step on an overflow") {
  nexa::Rng cpu_rng(101), gpu_rng(101), rng(102);
  nexa::Linear<float> cpu({.in_features = 8, .out_features = 5, .bias = true}, cpu_rng);
  nexa::Linear<float, nexa::cuda> gpu({.in_features = 8, .out_features = 5, .bias = true}, gpu_rng);
  nexa::train::AdamW cpu_opt(cpu, {.lr = 0.05});
  nexa::train::AdamW gpu_opt(gpu, {.lr = 0.05});
  nexa::train::DynamicLossScaler cpu_scaler({.init_scale = 1024.0}), gpu_scaler({.init_scale = 1024.0});
  seed_grads<float>(cpu, gpu, rng);
  CHECK(cpu_scaler.step(cpu, cpu_opt));
  CHECK(gpu_scaler.step(gpu, gpu_opt));
  CHECK(rel_error(gpu.weight.grad.to_host(), cpu.weight.grad.to_host()) < tolerance<float>());
  CHECK(rel_error(gpu.weight.value.to_host(), cpu.weight.value.to_host()) < tolerance<float>());
  const auto before = gpu.weight.value.to_host();
  auto bad = Tensor<float>::randn(gpu.weight.grad.shape(), rng);
  bad(3, 2) = std::numeric_limits<float>::infinity();
  gpu.weight.grad = on_device(bad);
  CHECK_FALSE(gpu_scaler.step(gpu, gpu_opt));
  CHECK(gpu.weight.value.to_host() == before);
  CHECK(gpu_opt.steps() == 1);
  CHECK(gpu_scaler.scale() == 512.0);
}

namespace {
// A bf16 weight and an fp32 bias on device D.
template <class D>
struct MixedLinear {
  nexa::Param<nexa::bfloat16, D> weight;
  nexa::Param<float, D> bias;
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(nexa::join_name(prefix, "weight"), weight);
    f(nexa::join_name(prefix, "bias"), bias);
  }
};

template <class D>
MixedLinear<D> make_mixed(const Tensor<nexa::bfloat16>& w, const Tensor<float>& b) {
  return {nexa::Param<nexa::bfloat16, D>(w.template to<D>()), nexa::Param<float, D>(b.template to<D>())};
}
}  // namespace

TEST_CASE("cuda MasterWeights: bf16 parameters with fp32 masters train as on the CPU") {
  nexa::Rng rng(103);
  const index_t n = 4099;
  const auto w = nexa::ops::cast_to<nexa::bfloat16>(Tensor<float>::randn({n}, rng).cview());
  const auto b = Tensor<float>::randn({7}, rng);
  auto cpu = make_mixed<nexa::cpu>(w, b);
  auto gpu = make_mixed<nexa::cuda>(w, b);
  nexa::train::MasterWeights<nexa::cpu> cpu_masters(cpu);
  nexa::train::MasterWeights<nexa::cuda> gpu_masters(gpu);
  nexa::train::AdamW cpu_opt(cpu_masters, {.lr = 1e-2});
  nexa::train::AdamW gpu_opt(gpu_masters, {.lr = 1e-2});
  for (int step = 0; step < 3; ++step) {
    const auto gw = nexa::ops::cast_to<nexa::bfloat16>(Tensor<float>::randn({n}, rng).cview());
    const auto gb = Tensor<float>::randn({7}, rng);
    cpu.weight.grad = gw;
    cpu.bias.grad = gb;
    gpu.weight.grad = gw.to<nexa::cuda>();
    gpu.bias.grad = on_device(gb);
    cpu_masters.gradients_to_master();
    gpu_masters.gradients_to_master();
    cpu_opt.step();
    gpu_opt.step();
    cpu_masters.weights_to_model();
    gpu_masters.weights_to_model();
  }
  std::vector<std::vector<float>> want, got;
  cpu_masters.visit_params([&](const std::string&, nexa::Param<float>& p) { want.push_back(p.value.to_host()); });
  gpu_masters.visit_params(
      [&](const std::string&, nexa::Param<float, nexa::cuda>& p) { got.push_back(p.value.to_host()); });
  REQUIRE(got.size() == 2);
  CHECK(rel_error(got[0], want[0]) < tolerance<float>());
  CHECK(rel_error(got[1], want[1]) < tolerance<float>());
  // The bf16 copies are the masters rounded: equal to the CPU's except where a master differs in
  // its last bits right at a rounding boundary, so compare as floats with the bf16 tolerance.
  const auto widen = [](const std::vector<nexa::bfloat16>& v) { return std::vector<float>(v.begin(), v.end()); };
  CHECK(rel_error(widen(gpu.weight.value.to_host()), widen(cpu.weight.value.to_host())) < 1e-2);
  std::vector<nexa::bfloat16> rounded(got[0].size());
  for (std::size_t i = 0; i < rounded.size(); ++i) rounded[i] = nexa::bfloat16(got[0][i]);
  CHECK(bitwise_equal(gpu.weight.value.to_host(), rounded));
}

namespace {
// RMSNorm -> gated T5 FFN (with dropout) -> Linear classifier: a small model built from the
// device-ready modules, trained with cross-entropy and AdamW.
template <class D>
struct SmallClassifier {
  nexa::RMSNorm<float, D> norm;
  nexa::T5FFN<nexa::GatedGelu, float, D> ffn;
  nexa::Linear<float, D> head;

  explicit SmallClassifier(std::uint64_t seed) : SmallClassifier(nexa::Rng(seed)) {}
  explicit SmallClassifier(nexa::Rng rng)
      : norm({.dim = 24}, rng),
        ffn({.d_model = 24, .d_ff = 40, .dropout = 0.1}, rng),
        head({.in_features = 24, .out_features = 11, .bias = true}, rng) {}

  // One forward and backward; returns the loss (gradients accumulate in the parameters).
  double train_step(const nexa::Tensor<float, D>& x, const nexa::Tensor<std::int32_t, D>& targets) {
    typename nexa::RMSNorm<float, D>::Cache norm_cache;
    typename nexa::T5FFN<nexa::GatedGelu, float, D>::Cache ffn_cache;
    typename nexa::Linear<float, D>::Cache head_cache;
    auto h = ffn.forward(norm.forward(x.cview(), norm_cache), ffn_cache);
    auto [loss, dlogits] = nexa::train::cross_entropy(head.forward(std::move(h), head_cache), targets);
    const auto dh = head.backward(dlogits.cview(), head_cache);
    (void)norm.backward(ffn.backward(dh.cview(), ffn_cache).cview(), norm_cache);
    return loss;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    norm.visit_params(f, nexa::join_name(prefix, "norm"));
    ffn.visit_params(f, nexa::join_name(prefix, "ffn"));
    head.visit_params(f, nexa::join_name(prefix, "head"));
  }
};
}  // namespace

TEST_CASE("cuda training steps of a small RMSNorm + T5FFN + Linear classifier match the CPU") {
  SmallClassifier<nexa::cpu> cpu(104);
  SmallClassifier<nexa::cuda> gpu(104);
  nexa::train::AdamW cpu_opt(cpu, {.lr = 1e-2});
  nexa::train::AdamW gpu_opt(gpu, {.lr = 1e-2});
  nexa::Rng rng(105);
  for (int step = 0; step < 3; ++step) {
    CAPTURE(step);
    const auto x = Tensor<float>::randn({53, 24}, rng);
    std::vector<std::int32_t> labels(53);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::int32_t>((i * 7 + step) % 11);
    labels[5] = -100;
    const auto targets = Tensor<std::int32_t>::from_host({53}, labels);
    cpu_opt.zero_grad();
    gpu_opt.zero_grad();
    const double want = cpu.train_step(x, targets);
    const double got = gpu.train_step(on_device(x), on_device(targets));
    CHECK(std::abs(got - want) < 1e-5 * std::abs(want));
    check_grads<float>(cpu, gpu, tolerance<float>());
    cpu_opt.step();
    gpu_opt.step();
  }
  std::vector<std::vector<float>> want;
  cpu.visit_params([&](const std::string&, nexa::Param<float>& p) { want.push_back(p.value.to_host()); });
  std::size_t i = 0;
  gpu.visit_params([&](const std::string& name, nexa::Param<float, nexa::cuda>& p) {
    CAPTURE(name);
    CHECK(rel_error(p.value.to_host(), want[i++]) < tolerance<float>());
  });
}
