// ops::grouped_gemm and grouped_gemm_rows on the CPU equal one ops::gemm per problem, bit for bit.
#include <doctest/doctest.h>

#include <cstring>
#include <tuple>
#include <vector>

#include "nexa/core/rng.hpp"
#include "nexa/ops/gemm.hpp"
#include "nexa/ops/grouped_gemm.hpp"

using nexa::index_t;
using nexa::Tensor;
using nexa::Trans;

namespace {

template <class T>
bool bitwise_equal(const Tensor<T>& a, const Tensor<T>& b) {
  const auto x = a.to_host(), y = b.to_host();
  return x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0);
}

template <class T>
void grouped_matches_per_problem(Trans ta, Trans tb, T alpha, T beta, nexa::Rng& rng) {
  // (m, n, k) per problem: expert-like shapes, an expert with no tokens, an empty inner dimension.
  const std::vector<std::tuple<index_t, index_t, index_t>> shapes{{7, 5, 3}, {0, 5, 3}, {33, 17, 64},
                                                                  {1, 1, 1}, {4, 6, 0}, {130, 9, 20}};
  std::vector<Tensor<T>> a, b, c_grouped, c_each;
  for (const auto& [m, n, k] : shapes) {
    a.push_back(ta == Trans::N ? Tensor<T>::randn({m, k}, rng) : Tensor<T>::randn({k, m}, rng));
    b.push_back(tb == Trans::N ? Tensor<T>::randn({k, n}, rng) : Tensor<T>::randn({n, k}, rng));
    c_each.push_back(Tensor<T>::randn({m, n}, rng));
    c_grouped.push_back(c_each.back());
  }
  std::vector<nexa::TensorView<const T, nexa::cpu>> a_views, b_views;
  std::vector<nexa::TensorView<T, nexa::cpu>> c_views;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    a_views.push_back(a[i].view());
    b_views.push_back(b[i].view());
    c_views.push_back(c_grouped[i].view());
    nexa::ops::gemm(a[i], ta, b[i], tb, c_each[i], alpha, beta);
  }
  nexa::ops::grouped_gemm(a_views, ta, b_views, tb, c_views, alpha, beta);
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    CAPTURE(i);
    CHECK(bitwise_equal(c_grouped[i], c_each[i]));
  }
}

}  // namespace

TEST_CASE("grouped_gemm equals one gemm per problem, bit for bit, for every transpose pair") {
  nexa::Rng rng(61);
  for (Trans ta : {Trans::N, Trans::T})
    for (Trans tb : {Trans::N, Trans::T}) {
      grouped_matches_per_problem<float>(ta, tb, 1.f, 0.f, rng);
      grouped_matches_per_problem<float>(ta, tb, -0.5f, 2.f, rng);
      grouped_matches_per_problem<double>(ta, tb, 1.5, 1.0, rng);
    }
}

TEST_CASE("grouped_gemm_rows runs each expert's rows against its own weight") {
  nexa::Rng rng(62);
  const index_t d_in = 12, d_out = 7;
  const std::vector<index_t> offsets{0, 5, 5, 19, 20};  // expert 1 has no tokens
  const auto x = Tensor<float>::randn({20, d_in}, rng);
  std::vector<Tensor<float>> w;
  std::vector<nexa::TensorView<const float, nexa::cpu>> w_views;
  for (int e = 0; e < 4; ++e) {
    w.push_back(Tensor<float>::randn({d_out, d_in}, rng));  // a Linear weight, [out, in]
  }
  for (const auto& t : w) w_views.push_back(t.view());
  auto y = Tensor<float>::full({20, d_out}, 3.f);
  nexa::ops::grouped_gemm_rows(x.view(), offsets, w_views, Trans::T, y.view());
  const auto got = y.to_host();
  for (std::size_t e = 0; e < 4; ++e) {
    const auto rows = x.view().slice_rows(offsets[e], offsets[e + 1]);
    const auto want = nexa::ops::matmul(rows, Trans::N, w[e], Trans::T).to_host();
    CAPTURE(e);
    // An expert without rows has nothing to compare (and memcmp must not see its null data).
    CHECK(
        (want.empty() || std::memcmp(got.data() + offsets[e] * d_out, want.data(), want.size() * sizeof(float)) == 0));
  }
}

TEST_CASE("grouped_gemm rejects mismatched shapes and counts, naming the problem") {
  const auto a = Tensor<float>::zeros({4, 3}), b = Tensor<float>::zeros({3, 2}), bad_b = Tensor<float>::zeros({5, 2});
  auto c = Tensor<float>::zeros({4, 2});
  using CV = nexa::TensorView<const float, nexa::cpu>;
  using MV = nexa::TensorView<float, nexa::cpu>;
  CHECK_THROWS_WITH_AS(
      nexa::ops::grouped_gemm(std::vector<CV>{a.view(), a.view()}, Trans::N, std::vector<CV>{b.view(), bad_b.view()},
                              Trans::N, std::vector<MV>{c.view(), c.view()}),
      "grouped_gemm: problem 1: op(A) is 4x3 (A [4, 3]), op(B) is 5x2 (B [5, 2]), so C must be 4x2; "
      "got C [4, 2]",
      nexa::Error);
  CHECK_THROWS_WITH_AS(nexa::ops::grouped_gemm(std::vector<CV>{a.view()}, Trans::N, std::vector<CV>{}, Trans::N,
                                               std::vector<MV>{c.view()}),
                       "grouped_gemm: expected as many A, B and C matrices, got A 1, B 0, C 1", nexa::Error);
  CHECK_THROWS_WITH_AS(nexa::ops::grouped_gemm_rows(a.view(), {0, 2}, std::vector<CV>{b.view()}, Trans::N, c.view()),
                       doctest::Contains("grouped_gemm_rows: expected offsets from 0 to the 4 rows of A"), nexa::Error);
  CHECK_THROWS_WITH_AS(nexa::ops::grouped_gemm_rows(a.view(), {0, 3, 1, 4},
                                                    std::vector<CV>{b.view(), b.view(), b.view()}, Trans::N, c.view()),
                       "grouped_gemm_rows: expected non-decreasing offsets, got 3 then 1 at expert 1", nexa::Error);
  CHECK_THROWS_WITH_AS(nexa::ops::grouped_gemm_rows(a.view(), {0, 4}, std::vector<CV>{}, Trans::N, c.view()),
                       "grouped_gemm_rows: expected 1 offsets for as many experts as B matrices, got 2", nexa::Error);
}
