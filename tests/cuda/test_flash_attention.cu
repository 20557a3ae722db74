// FlashAttentionKernel<cuda> against FlashAttentionKernel<cpu> (the CPU FlashScores) on the same
// random inputs: outputs, logsumexp and every gradient, with padding, causal masks and the
// relative bias, outputs poisoned first.
#include <cmath>
#include <cstdint>
#include <vector>

// support.hpp first: it brings in nexa/backend/cuda.hpp, which keeps Eigen host-only.
#include "support.hpp"

#include "nexa/backend/cpu/flash_attention.hpp"
#include "nexa/backend/cuda/flash_attention.hpp"

using namespace nexa_test;

namespace {

struct Case {
  index_t batch, heads, seq, head_dim;
  bool causal, padding, bias;
  // Tokens per sequence when padded (the rest is padding), and where they start.
  std::vector<index_t> lengths{}, starts{};
};

// +inf (a query that sees no key) must sit at the same places; the rest compare as numbers.
double lse_error(std::vector<float> got, std::vector<float> want) {
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i]) || std::isinf(got[i])) {
      if (got[i] != want[i]) return 1.0;
      got[i] = want[i] = 0.f;
    }
  }
  return rel_error(got, want);
}

// Storage T on the device; the CPU runs in float on the same (rounded) values.
template <class T>
std::vector<T> stored(const std::vector<float>& values) {
  std::vector<T> out;
  out.reserve(values.size());
  for (float v : values) out.push_back(T(v));
  return out;
}

template <class T>
std::vector<float> widened(const std::vector<T>& values) {
  return {values.begin(), values.end()};
}

template <class T = float>
void compare_flash(const Case& c, nexa::Rng& rng) {
  CAPTURE(c.batch);
  CAPTURE(c.heads);
  CAPTURE(c.seq);
  CAPTURE(c.head_dim);
  CAPTURE(c.causal);
  CAPTURE(c.padding);
  CAPTURE(c.bias);
  const index_t B = c.batch, H = c.heads, S = c.seq, dh = c.head_dim, n = B * H * S * dh, R = 2 * S - 1;
  const auto q_t = stored<T>(random_normal<float>(n, rng)), k_t = stored<T>(random_normal<float>(n, rng)),
             v_t = stored<T>(random_normal<float>(n, rng)), d_out_t = stored<T>(random_normal<float>(n, rng)),
             bias_t = stored<T>(random_normal<float>(H * R, rng)),
             d_bias0_t = stored<T>(random_normal<float>(H * R, rng));
  const auto q = widened(q_t), k = widened(k_t), v = widened(v_t), d_out = widened(d_out_t), bias = widened(bias_t),
             d_bias0 = widened(d_bias0_t);
  std::vector<std::int32_t> padding(static_cast<std::size_t>(B * S), 1);
  if (c.padding)
    for (index_t b = 0; b < B; ++b)
      for (index_t s = 0; s < S; ++s) {
        const index_t start = c.starts[std::size_t(b)], len = c.lengths[std::size_t(b)];
        padding[std::size_t(b * S + s)] = (start <= s && s < start + len) ? 1 : 0;
      }
  const float scale = 1.f / std::sqrt(static_cast<float>(dh));

  // CPU kernel on host memory.
  nexa::FlashAttentionArgs<float> host{B,
                                       H,
                                       S,
                                       dh,
                                       q.data(),
                                       k.data(),
                                       v.data(),
                                       c.padding ? padding.data() : nullptr,
                                       c.bias ? bias.data() : nullptr,
                                       scale,
                                       c.causal};
  const auto elements = static_cast<std::size_t>(n), rows = static_cast<std::size_t>(B * H * S);
  std::vector<float> out(elements), lse(rows), dq(elements), dk(elements), dv(elements), d_bias = d_bias0;

  // CUDA kernel on device copies, outputs poisoned.
  const auto q_d = DeviceTensor<T>::from_host({n}, q_t), k_d = DeviceTensor<T>::from_host({n}, k_t),
             v_d = DeviceTensor<T>::from_host({n}, v_t), dout_d = DeviceTensor<T>::from_host({n}, d_out_t),
             bias_d = DeviceTensor<T>::from_host({H * R}, bias_t);
  const auto padding_d = DeviceTensor<std::int32_t>::from_host({B * S}, padding);
  auto out_d = poisoned<T>({n}), dq_d = poisoned<T>({n}), dk_d = poisoned<T>({n}), dv_d = poisoned<T>({n});
  auto lse_d = poisoned<float>({B * H * S});
  auto d_bias_d = DeviceTensor<T>::from_host({H * R}, d_bias0_t);
  nexa::FlashAttentionArgs<T> device{B,
                                     H,
                                     S,
                                     dh,
                                     q_d.data(),
                                     k_d.data(),
                                     v_d.data(),
                                     c.padding ? padding_d.data() : nullptr,
                                     c.bias ? bias_d.data() : nullptr,
                                     T(scale),
                                     c.causal};
  // The CPU runs with the scale as T rounds it.
  host.scale = static_cast<float>(T(scale));
  nexa::FlashAttentionKernel<nexa::cpu>::forward(host, out.data(), lse.data());
  nexa::FlashAttentionKernel<nexa::cpu>::backward(host, out.data(), lse.data(), d_out.data(), dq.data(), dk.data(),
                                                  dv.data(), c.bias ? d_bias.data() : nullptr);
  nexa::FlashAttentionKernel<nexa::cuda>::forward(device, out_d.data(), lse_d.data());
  CHECK(rel_error(widened(out_d.to_host()), out) < tolerance<T>());
  CHECK(lse_error(lse_d.to_host(), lse) < tolerance<T>());
  nexa::FlashAttentionKernel<nexa::cuda>::backward(device, out_d.data(), lse_d.data(), dout_d.data(), dq_d.data(),
                                                   dk_d.data(), dv_d.data(), c.bias ? d_bias_d.data() : nullptr);
  CHECK(rel_error(widened(dq_d.to_host()), dq) < tolerance<T>());
  CHECK(rel_error(widened(dk_d.to_host()), dk) < tolerance<T>());
  CHECK(rel_error(widened(dv_d.to_host()), dv) < tolerance<T>());
  CHECK(rel_error(widened(d_bias_d.to_host()), d_bias) < tolerance<T>());

  // Deterministic: a second backward gives the same bits.
  auto dq2 = poisoned<T>({n}), dk2 = poisoned<T>({n}), dv2 = poisoned<T>({n});
  auto d_bias2 = DeviceTensor<T>::from_host({H * R}, d_bias0_t);
  nexa::FlashAttentionKernel<nexa::cuda>::backward(device, out_d.data(), lse_d.data(), dout_d.data(), dq2.data(),
                                                   dk2.data(), dv2.data(), c.bias ? d_bias2.data() : nullptr);
  CHECK(bitwise_equal(dq2.to_host(), dq_d.to_host()));
  CHECK(bitwise_equal(dk2.to_host(), dk_d.to_host()));
  CHECK(bitwise_equal(dv2.to_host(), dv_d.to_host()));
  CHECK(bitwise_equal(d_bias2.to_host(), d_bias_d.to_host()));
}

}  // namespace

TEST_CASE("cuda flash attention matches the CPU without masks") {
  nexa::Rng rng(71);
  compare_flash({1, 1, 2, 8, false, false, false}, rng);
  compare_flash({2, 3, 37, 16, false, false, false}, rng);
  compare_flash({1, 2, 130, 64, false, false, true}, rng);
}

TEST_CASE("cuda flash attention matches the CPU with padding, including an all-padding sequence") {
  nexa::Rng rng(72);
  compare_flash({3, 2, 45, 32, false, true, true, {45, 20, 0}, {0, 3, 0}}, rng);
}

TEST_CASE("cuda flash attention matches the CPU when causal, with leading padding (queries that see nothing)") {
  nexa::Rng rng(73);
  compare_flash({2, 2, 70, 24, true, false, true}, rng);
  compare_flash({2, 3, 90, 64, true, true, true, {60, 90}, {7, 0}}, rng);
  // Blind queries spanning more than one tile.
  compare_flash({2, 2, 100, 16, true, true, true, {60, 20}, {40, 70}}, rng);
}

TEST_CASE("cuda flash attention matches the CPU for head sizes up to 128") {
  nexa::Rng rng(74);
  compare_flash({1, 2, 50, 100, false, true, true, {41}, {5}}, rng);
  compare_flash({1, 1, 33, 128, true, false, false}, rng);
}

TEST_CASE("cuda flash attention in bfloat16 and half (fp32 inside) matches the CPU's fp32 on the same values") {
  nexa::Rng rng(75);
  compare_flash<nexa::bfloat16>({2, 2, 70, 32, true, true, true, {50, 70}, {10, 0}}, rng);
  compare_flash<nexa::bfloat16>({1, 3, 45, 64, false, false, true}, rng);
  compare_flash<nexa::half>({2, 2, 40, 16, false, true, true, {40, 25}, {0, 5}}, rng);
}

TEST_CASE("cuda flash attention rejects head sizes it has no tile for") {
  nexa::FlashAttentionArgs<float> args{1, 1, 4, 129};
  CHECK_THROWS_WITH_AS(nexa::FlashAttentionKernel<nexa::cuda>::forward<float>(args, nullptr, nullptr),
                       "FlashAttentionKernel<cuda>: expected head_dim in [1, 128], got 129", nexa::Error);
}
