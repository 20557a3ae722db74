// Attention<FlashScores>, Attention<FullScores> and Attention<LocalGlobalScores> (whose device core
// is the flash kernel, masked to the window and global tokens) and
// RelativePositionBias with D = cuda against the same modules on the CPU (FullScores against its
// host core, which materialises the probabilities): same seed, same parameters, fresh random inputs; forward output,
// dx, d(position bias) and every parameter gradient, with padding (trailing, leading and a sequence of padding only),
// causal masks and T5's relative bias. Gradients (and the caller's d_position_bias, which backward accumulates into)
// start at random values, so accumulation is checked too. The device flash kernel stores float (or 16-bit), so the
// module is compared in float; the bias module gathers and sums in any T and is compared in float and double, bit for
// bit.
#include <cstdint>
#include <vector>

// support.hpp first: it brings in nexa/backend/cuda.hpp, which keeps Eigen host-only.
#include "module_support.hpp"

#include "nexa/attention/flash_attention.hpp"
#include "nexa/attention/full_attention.hpp"
#include "nexa/attention/local_global_attention.hpp"
#include "nexa/attention/relative_position_bias.hpp"

using namespace nexa_test;
using nexa::Tensor;

namespace {

// [B, S] flags: sequence 0 all tokens, 1 trailing padding, 2 leading padding, 3 padding only.
std::vector<std::int32_t> padding_flags(index_t B, index_t S) {
  std::vector<std::int32_t> flags(static_cast<std::size_t>(B * S), 1);
  for (index_t b = 1; b < B; ++b)
    for (index_t s = 0; s < S; ++s) {
      const bool pad = b % 4 == 1 ? s >= S - S / 3 : b % 4 == 2 ? s < S / 4 + 1 : b % 4 == 3;
      if (pad) flags[static_cast<std::size_t>(b * S + s)] = 0;
    }
  return flags;
}

// RelativePositionBias's Config is its own per (T, D): one builder for both devices.
template <class Module>
Module make_bias(index_t heads, index_t buckets, index_t max_distance, bool bidirectional, nexa::Rng& rng) {
  return Module({.heads = heads,
                 .num_buckets = buckets,
                 .max_distance = max_distance,
                 .bidirectional = bidirectional,
                 .init_std = 0.5},
                rng);
}

struct Case {
  index_t batch, seq;
  bool causal, padding, relative_bias, t5;  // t5: no projection biases, no scaling
  bool globals = false;                     // global tokens at 0 and S / 2 of every sequence
};

std::vector<std::int32_t> global_flags(index_t B, index_t S) {
  std::vector<std::int32_t> flags(static_cast<std::size_t>(B * S), 0);
  for (index_t b = 0; b < B; ++b)
    flags[static_cast<std::size_t>(b * S)] = flags[static_cast<std::size_t>(b * S + S / 2)] = 1;
  return flags;
}

template <class Scores>
void compare_attention(const Case& c, std::uint64_t seed) {
  CAPTURE(Scores::name);
  CAPTURE(c.batch);
  CAPTURE(c.seq);
  CAPTURE(c.causal);
  CAPTURE(c.padding);
  CAPTURE(c.relative_bias);
  CAPTURE(c.t5);
  CAPTURE(c.globals);
  using T = float;
  using CpuAttention = nexa::Attention<Scores, T, nexa::cpu>;
  using GpuAttention = nexa::Attention<Scores, T, nexa::cuda>;
  const index_t B = c.batch, S = c.seq, hidden = 48, heads = 4;
  const nexa::AttentionConfig config{
      .hidden = hidden, .heads = heads, .causal = c.causal, .bias = !c.t5, .scale = !c.t5, .init_std = 0.1};
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  CpuAttention cpu(config, cpu_rng);
  GpuAttention gpu(config, gpu_rng);
  auto cpu_bias = make_bias<nexa::RelativePositionBias<T, nexa::cpu>>(heads, 8, 16, !c.causal, cpu_rng);
  auto gpu_bias = make_bias<nexa::RelativePositionBias<T, nexa::cuda>>(heads, 8, 16, !c.causal, gpu_rng);
  seed_grads<T>(cpu, gpu, rng);
  seed_grads<T>(cpu_bias, gpu_bias, rng);

  const auto x = Tensor<T>::randn({B, S, hidden}, rng);
  const auto dy = Tensor<T>::randn({B, S, hidden}, rng);
  const auto d_bias_start = Tensor<T>::randn({heads, 2 * S - 1}, rng);
  const auto mask = c.padding ? Tensor<std::int32_t>::from_host({B, S}, padding_flags(B, S)) : Tensor<std::int32_t>();
  const auto mask_gpu = c.padding ? on_device(mask) : DeviceTensor<std::int32_t>();
  const auto global = c.globals ? Tensor<std::int32_t>::from_host({B, S}, global_flags(B, S)) : Tensor<std::int32_t>();
  const auto global_gpu = c.globals ? on_device(global) : DeviceTensor<std::int32_t>();

  Tensor<T> bias;
  DeviceTensor<T> bias_gpu;
  if (c.relative_bias) {
    bias = cpu_bias.forward(S);
    bias_gpu = gpu_bias.forward(S);
    REQUIRE(bias_gpu.shape() == bias.shape());
    CHECK(bitwise_equal(bias_gpu.to_host(), bias.to_host()));
  }

  typename CpuAttention::Cache cpu_cache;
  typename GpuAttention::Cache gpu_cache;
  const auto y = cpu.forward(x.cview(), mask.cview(), cpu_cache, bias.cview(), global.cview());
  const auto y_gpu =
      gpu.forward(on_device(x).cview(), mask_gpu.cview(), gpu_cache, bias_gpu.cview(), global_gpu.cview());
  REQUIRE(y_gpu.shape() == y.shape());
  CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());

  auto d_bias = clone(d_bias_start.cview());
  auto d_bias_gpu = on_device(d_bias_start);
  const auto dx = cpu.backward(dy.cview(), cpu_cache, d_bias.view());
  const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache, d_bias_gpu.view());
  REQUIRE(dx_gpu.shape() == dx.shape());
  CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
  CHECK(rel_error(d_bias_gpu.to_host(), d_bias.to_host()) < tolerance<T>());
  check_grads<T>(cpu, gpu, tolerance<T>());

  if (c.relative_bias) {
    cpu_bias.backward(d_bias.cview());
    gpu_bias.backward(d_bias_gpu.cview());
    check_grads<T>(cpu_bias, gpu_bias, tolerance<T>());
  }
}

// The bias module alone: the device gathers and scatter-adds exactly as the CPU loops do.
template <class T>
void compare_relative_bias(index_t S, bool bidirectional, std::uint64_t seed) {
  CAPTURE(S);
  CAPTURE(bidirectional);
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  auto cpu = make_bias<nexa::RelativePositionBias<T, nexa::cpu>>(3, 10, 20, bidirectional, cpu_rng);
  auto gpu = make_bias<nexa::RelativePositionBias<T, nexa::cuda>>(3, 10, 20, bidirectional, gpu_rng);
  seed_grads<T>(cpu, gpu, rng);
  const auto bias = cpu.forward(S);
  const auto bias_gpu = gpu.forward(S);
  REQUIRE(bias_gpu.shape() == bias.shape());
  CHECK(bitwise_equal(bias_gpu.to_host(), bias.to_host()));
  const auto d_bias = Tensor<T>::randn({3, 2 * S - 1}, rng);
  cpu.backward(d_bias.cview());
  gpu.backward(on_device(d_bias).cview());
  CHECK(bitwise_equal(gpu.weight.grad.to_host(), cpu.weight.grad.to_host()));
  check_grads<T>(cpu, gpu, tolerance<T>());
}

}  // namespace

template <class Scores>
void compare_attention_cases() {
  compare_attention<Scores>(
      {.batch = 2, .seq = 19, .causal = false, .padding = false, .relative_bias = false, .t5 = false}, 401);
  compare_attention<Scores>(
      {.batch = 4, .seq = 37, .causal = false, .padding = true, .relative_bias = true, .t5 = true}, 402);
  compare_attention<Scores>({.batch = 4, .seq = 70, .causal = true, .padding = true, .relative_bias = true, .t5 = true},
                            403);
  compare_attention<Scores>(
      {.batch = 3, .seq = 1, .causal = true, .padding = false, .relative_bias = true, .t5 = false}, 404);
  compare_attention<Scores>(
      {.batch = 1, .seq = 130, .causal = true, .padding = false, .relative_bias = false, .t5 = false}, 405);
}

TEST_CASE("cuda Attention<FlashScores> matches the CPU: output, dx, d(position bias), every gradient") {
  compare_attention_cases<nexa::FlashScores<>>();
}

TEST_CASE("cuda Attention<FullScores> (flash core) matches the CPU's materialised softmax") {
  compare_attention_cases<nexa::FullScores>();
}

// The flash kernel masked to Longformer's window and global tokens against the CPU's banded
// policy: padding queries (a whole padding sequence among them) output 0 and pass no gradient.
TEST_CASE("cuda Attention<LocalGlobalScores> (flash core, windowed mask) matches the CPU's banded attention") {
  using Window8 = nexa::LocalGlobalScores<8>;
  compare_attention<Window8>(
      {.batch = 4, .seq = 37, .causal = false, .padding = true, .relative_bias = true, .t5 = true, .globals = true},
      411);
  compare_attention<Window8>(
      {.batch = 2, .seq = 150, .causal = false, .padding = false, .relative_bias = false, .t5 = false, .globals = true},
      412);
  compare_attention<Window8>(
      {.batch = 4, .seq = 70, .causal = true, .padding = true, .relative_bias = true, .t5 = true, .globals = true},
      413);
  compare_attention<nexa::LocalGlobalScores<0>>(
      {.batch = 2, .seq = 19, .causal = false, .padding = true, .relative_bias = false, .t5 = false}, 414);
}

template <class Scores>
void check_device_refusals() {
  CAPTURE(Scores::name);
  nexa::Rng rng(406);
  nexa::Attention<Scores, float, nexa::cuda> gpu({.hidden = 16, .heads = 2, .dropout = 0.1}, rng);
  const auto x = DeviceTensor<float>::randn({2, 5, 16}, rng);
  typename decltype(gpu)::Cache cache;
  gpu.set_training(true);
  CHECK_THROWS_AS((void)gpu.forward(x.cview(), {}, cache), nexa::Error);
  gpu.set_training(false);
  CHECK(gpu.forward(x.cview(), {}, cache).shape() == nexa::Shape{2, 5, 16});
  std::vector<std::int32_t> flags(10, 1);
  flags[7] = 2;
  const auto bad = DeviceTensor<std::int32_t>::from_host({2, 5}, flags);
  CHECK_THROWS_AS((void)gpu.forward(x.cview(), bad.cview(), cache), nexa::Error);
}

TEST_CASE("cuda attention: applied attention dropout and bad flags raise") {
  check_device_refusals<nexa::FlashScores<>>();
  check_device_refusals<nexa::FullScores>();
  check_device_refusals<nexa::LocalGlobalScores<8>>();
}

TEST_CASE("cuda RelativePositionBias matches the CPU bit for bit: lookup and bucket gradient") {
  compare_relative_bias<float>(23, true, 407);
  compare_relative_bias<float>(1, false, 408);
  compare_relative_bias<double>(64, true, 409);
  compare_relative_bias<double>(9, false, 410);
}
