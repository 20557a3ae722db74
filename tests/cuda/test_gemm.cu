// GemmKernel<cuda> against GemmKernel<cpu>: every transpose pair, alpha/beta, odd shapes.
#include <tuple>

#include "support.hpp"

using namespace nexa_test;
using nexa::Tensor;
using nexa::Trans;

namespace {

// C = alpha op(A) op(B) + beta C0 on both devices; the device C starts poisoned when beta == 0.
template <class T>
void compare_gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, T beta, nexa::Rng& rng) {
  CAPTURE(m);
  CAPTURE(n);
  CAPTURE(k);
  CAPTURE(alpha);
  CAPTURE(beta);
  const bool at = ta == Trans::T, bt = tb == Trans::T;
  CAPTURE(at);
  CAPTURE(bt);
  const auto a = at ? Tensor<T>::randn({k, m}, rng) : Tensor<T>::randn({m, k}, rng);
  const auto b = bt ? Tensor<T>::randn({n, k}, rng) : Tensor<T>::randn({k, n}, rng);
  auto c_cpu = Tensor<T>::randn({m, n}, rng);
  auto c_gpu = beta == T(0) ? poisoned<T>({m, n}) : c_cpu.template to<nexa::cuda>();
  nexa::ops::gemm(a, ta, b, tb, c_cpu, alpha, beta);
  nexa::ops::gemm(a.template to<nexa::cuda>(), ta, b.template to<nexa::cuda>(), tb, c_gpu, alpha, beta);
  CHECK(rel_error(c_gpu.to_host(), c_cpu.to_host()) < tolerance<T>());
}

template <class T>
void gemm_suite(std::uint64_t seed) {
  nexa::Rng rng(seed);
  const std::vector<std::tuple<index_t, index_t, index_t>> shapes{{1, 1, 1},      {5, 3, 7},   {64, 48, 33},
                                                                  {130, 257, 96}, {3, 200, 1}, {300, 2, 517}};
  const std::vector<std::pair<T, T>> scalars{{T(1), T(0)}, {T(0.5), T(2)}, {T(-1.5), T(1)}};
  for (Trans ta : {Trans::N, Trans::T})
    for (Trans tb : {Trans::N, Trans::T})
      for (const auto& [m, n, k] : shapes)
        for (const auto& [alpha, beta] : scalars) compare_gemm<T>(ta, tb, m, n, k, alpha, beta, rng);
}

}  // namespace

TEST_CASE("cuda gemm matches the CPU in float for all transposes, alpha and beta") { gemm_suite<float>(21); }

TEST_CASE("cuda gemm matches the CPU in double for all transposes, alpha and beta") { gemm_suite<double>(22); }

TEST_CASE("cuda gemm with an empty inner dimension scales C by beta") {
  const auto a = DeviceTensor<float>::uninitialized({3, 0});
  const auto b = DeviceTensor<float>::uninitialized({0, 4});
  auto c = poisoned<float>({3, 4});
  nexa::ops::gemm(a, Trans::N, b, Trans::N, c, 1.f, 0.f);
  CHECK(c.to_host() == std::vector<float>(12, 0.f));
  auto c2 = DeviceTensor<float>::full({3, 4}, 1.5f);
  nexa::ops::gemm(a, Trans::N, b, Trans::N, c2, 1.f, 2.f);
  CHECK(c2.to_host() == std::vector<float>(12, 3.f));
  auto c3 = DeviceTensor<double>::full({4, 3}, 1.5);
  nexa::ops::gemm(DeviceTensor<double>::uninitialized({0, 4}), Trans::T, DeviceTensor<double>::uninitialized({3, 0}),
                  Trans::T, c3, 1.0, -1.0);
  CHECK(c3.to_host() == std::vector<double>(12, -1.5));
  auto empty = DeviceTensor<float>::uninitialized({0, 4});
  nexa::ops::gemm(DeviceTensor<float>::uninitialized({0, 5}), Trans::N, DeviceTensor<float>::uninitialized({5, 4}),
                  Trans::N, empty);
}

TEST_CASE("cuda matmul folds leading axes like the CPU") {
  nexa::Rng rng(23);
  const auto x = Tensor<float>::randn({2, 3, 16}, rng), w = Tensor<float>::randn({8, 16}, rng);
  const auto want = nexa::ops::matmul(x, Trans::N, w, Trans::T);
  const auto got = nexa::ops::matmul(x.to<nexa::cuda>(), Trans::N, w.to<nexa::cuda>(), Trans::T);
  CHECK(got.shape() == nexa::Shape{6, 8});
  CHECK(rel_error(got.to_host(), want.to_host()) < tolerance<float>());
}

TEST_CASE("cuda float gemm follows the context's GemmCompute; FullPrecisionGemms returns to fp32 for its scope") {
  nexa::Rng rng(23);
  const index_t m = 96, n = 80, k = 512;
  const auto a = Tensor<float>::randn({m, k}, rng);
  const auto b = Tensor<float>::randn({k, n}, rng);
  const auto c_cpu = nexa::ops::matmul(a, Trans::N, b, Trans::N);
  const auto a_gpu = a.to<nexa::cuda>();
  const auto b_gpu = b.to<nexa::cuda>();
  nexa::CudaContext context;
  const nexa::CudaContextScope scope(context);
  const auto product = [&] {
    auto c = poisoned<float>({m, n});
    nexa::ops::gemm(a_gpu, Trans::N, b_gpu, Trans::N, c);
    return rel_error(c.to_host(), c_cpu.to_host());
  };
  CHECK(product() < 1e-5);
  // Rounded inputs (bf16 keeps 8 mantissa bits, fp16 and tf32 11): normalised error about 2^-9
  // and 2^-12 for random data, never 0, never above 1e-2.
  for (const auto mode : {nexa::GemmCompute::tf32, nexa::GemmCompute::bf16, nexa::GemmCompute::fp16}) {
    CAPTURE(static_cast<int>(mode));
    context.set_gemm_compute(mode);
    const double error = product();
    CHECK(error > 1e-6);
    CHECK(error < 1e-2);
    {
      const nexa::FullPrecisionGemms<nexa::cuda> full;
      CHECK(context.gemm_compute() == nexa::GemmCompute::fp32);
      CHECK(product() < 1e-5);
    }
    CHECK(context.gemm_compute() == mode);
  }
}
