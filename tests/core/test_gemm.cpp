#include <doctest/doctest.h>

#include "nexa/ops/gemm.hpp"

using nexa::Tensor;
using nexa::Trans;

namespace {
// Plain triple loop: the reference for every transpose combination.
Tensor<double> naive(const Tensor<double>& a, Trans ta, const Tensor<double>& b, Trans tb) {
  const auto m = ta == Trans::N ? a.dim(0) : a.dim(1), k = ta == Trans::N ? a.dim(1) : a.dim(0);
  const auto n = tb == Trans::N ? b.dim(1) : b.dim(0);
  Tensor<double> c({m, n});
  for (nexa::index_t i = 0; i < m; ++i)
    for (nexa::index_t j = 0; j < n; ++j)
      for (nexa::index_t p = 0; p < k; ++p)
        c(i, j) += (ta == Trans::N ? a(i, p) : a(p, i)) * (tb == Trans::N ? b(p, j) : b(j, p));
  return c;
}
}  // namespace

TEST_CASE("gemm matches the naive product for all transposes, alpha and beta") {
  nexa::Rng rng(1);
  for (Trans ta : {Trans::N, Trans::T}) {
    for (Trans tb : {Trans::N, Trans::T}) {
      auto a = ta == Trans::N ? Tensor<double>::randn({5, 7}, rng) : Tensor<double>::randn({7, 5}, rng);
      auto b = tb == Trans::N ? Tensor<double>::randn({7, 3}, rng) : Tensor<double>::randn({3, 7}, rng);
      auto c0 = Tensor<double>::randn({5, 3}, rng);
      auto c = c0;
      nexa::ops::gemm(a, ta, b, tb, c, 0.5, 2.0);
      auto ref = naive(a, ta, b, tb);
      for (nexa::index_t i = 0; i < 5; ++i)
        for (nexa::index_t j = 0; j < 3; ++j) CHECK(c(i, j) == doctest::Approx(0.5 * ref(i, j) + 2.0 * c0(i, j)));
    }
  }
}

TEST_CASE("gemm rejects mismatched shapes with both shapes in the message") {
  Tensor<float> a({4, 3}), b({2, 5}), c({4, 5});
  auto bad = [&] { nexa::ops::gemm(a, Trans::N, b, Trans::N, c); };
  CHECK_THROWS_WITH_AS(bad(), doctest::Contains("[4, 3]"), nexa::Error);
}
