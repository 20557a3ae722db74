// GemmKernel<cuda> in nexa::bfloat16 and nexa::half (fp32 accumulation) against the CPU's fp32
// GEMM of the same rounded inputs.
#include <tuple>

// support.hpp first: it brings in nexa/backend/cuda.hpp, which keeps Eigen host-only.
#include "support.hpp"

#include "nexa/backend/cuda/gemm.hpp"

using namespace nexa_test;
using nexa::Tensor;
using nexa::Trans;

namespace {

template <class H>
std::vector<H> to_16bit(const std::vector<float>& values) {
  std::vector<H> out;
  out.reserve(values.size());
  for (float v : values) out.push_back(H(v));
  return out;
}

template <class H>
std::vector<float> to_float(const std::vector<H>& values) {
  return {values.begin(), values.end()};
}

template <class H>
void compare_gemm_16bit(Trans ta, Trans tb, index_t m, index_t n, index_t k, float alpha, float beta, nexa::Rng& rng) {
  CAPTURE(m);
  CAPTURE(n);
  CAPTURE(k);
  CAPTURE(alpha);
  CAPTURE(beta);
  const auto a = to_16bit<H>(random_normal<float>(m * k, rng));
  const auto b = to_16bit<H>(random_normal<float>(k * n, rng));
  const auto c0 = to_16bit<H>(random_normal<float>(m * n, rng));
  const nexa::Shape a_shape = ta == Trans::N ? nexa::Shape{m, k} : nexa::Shape{k, m};
  const nexa::Shape b_shape = tb == Trans::N ? nexa::Shape{k, n} : nexa::Shape{n, k};
  auto want = Tensor<float>::from_host({m, n}, to_float(c0));
  nexa::ops::gemm(Tensor<float>::from_host(a_shape, to_float(a)), ta, Tensor<float>::from_host(b_shape, to_float(b)),
                  tb, want, alpha, beta);
  auto c = beta == 0.f ? poisoned<H>({m, n}) : DeviceTensor<H>::from_host({m, n}, c0);
  nexa::ops::gemm(DeviceTensor<H>::from_host(a_shape, a), ta, DeviceTensor<H>::from_host(b_shape, b), tb, c, H(alpha),
                  H(beta));
  CHECK(rel_error(to_float(c.to_host()), want.to_host()) < tolerance<H>());
}

template <class H>
void gemm_16bit_suite(std::uint64_t seed) {
  nexa::Rng rng(seed);
  const std::vector<std::tuple<index_t, index_t, index_t>> shapes{
      {1, 1, 1}, {5, 3, 7}, {64, 48, 33}, {130, 257, 96}, {3, 200, 1}};
  for (Trans ta : {Trans::N, Trans::T})
    for (Trans tb : {Trans::N, Trans::T})
      for (const auto& [m, n, k] : shapes) {
        compare_gemm_16bit<H>(ta, tb, m, n, k, 1.f, 0.f, rng);
        compare_gemm_16bit<H>(ta, tb, m, n, k, -0.5f, 2.f, rng);
      }
}

}  // namespace

TEST_CASE("cuda gemm in bfloat16 matches the CPU's fp32 gemm of the same inputs") {
  gemm_16bit_suite<nexa::bfloat16>(41);
}

TEST_CASE("cuda gemm in half matches the CPU's fp32 gemm of the same inputs") { gemm_16bit_suite<nexa::half>(42); }

TEST_CASE("cuda gemm in bfloat16 with an empty inner dimension scales C by beta") {
  auto c = poisoned<nexa::bfloat16>({3, 4});
  nexa::ops::gemm(DeviceTensor<nexa::bfloat16>::uninitialized({3, 0}), Trans::N,
                  DeviceTensor<nexa::bfloat16>::uninitialized({0, 4}), Trans::N, c, nexa::bfloat16(1.f),
                  nexa::bfloat16(0.f));
  CHECK(to_float(c.to_host()) == std::vector<float>(12, 0.f));
  auto c2 = DeviceTensor<nexa::half>::full({3, 4}, nexa::half(1.5f));
  nexa::ops::gemm(DeviceTensor<nexa::half>::uninitialized({3, 0}), Trans::N,
                  DeviceTensor<nexa::half>::uninitialized({0, 4}), Trans::N, c2, nexa::half(1.f), nexa::half(-2.f));
  CHECK(to_float(c2.to_host()) == std::vector<float>(12, -3.f));
}
