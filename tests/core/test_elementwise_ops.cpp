// The elementwise front ends on the CPU (ops/elementwise.hpp): values worked out by hand, row
// order of the bias-gradient sums, rounding of the casts, and the shape errors.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "nexa/core/half.hpp"
#include "nexa/ops/elementwise.hpp"

using nexa::Tensor;

TEST_CASE("axpy, scale, fill and copy") {
  auto y = Tensor<float>::from_host({2, 2}, {1, 2, 3, 4});
  const auto x = Tensor<float>::from_host({4}, {10, 20, 30, 40});
  nexa::ops::axpy(0.5f, x.cview(), y.view());
  CHECK(y.to_host() == std::vector<float>{6, 12, 18, 24});
  nexa::ops::scale(-2.0f, y.view());
  CHECK(y.to_host() == std::vector<float>{-12, -24, -36, -48});
  nexa::ops::fill(7.0f, y.view());
  CHECK(y.to_host() == std::vector<float>{7, 7, 7, 7});
  nexa::ops::copy(x.cview(), y.view());
  CHECK(y.to_host() == x.to_host());
  CHECK_THROWS_WITH_AS(nexa::ops::copy(x.cview(), Tensor<float>({3}).view()), doctest::Contains("copy"), nexa::Error);
  CHECK_THROWS_WITH_AS(nexa::ops::axpy(1.0f, x.cview(), Tensor<float>({5}).view()), doctest::Contains("axpy"),
                       nexa::Error);
}

TEST_CASE("broadcast_rows, add_row and sum_rows fold leading axes") {
  const auto row = Tensor<double>::from_host({3}, {1, 2, 3});
  auto y = Tensor<double>::from_host({2, 1, 3}, {10, 20, 30, 40, 50, 60});
  nexa::ops::add_row(row.cview(), y.view());
  CHECK(y.to_host() == std::vector<double>{11, 22, 33, 41, 52, 63});
  auto acc = Tensor<double>::from_host({3}, {100, 200, 300});
  nexa::ops::sum_rows(y.cview(), acc.view());
  CHECK(acc.to_host() == std::vector<double>{152, 274, 396});
  nexa::ops::broadcast_rows(row.cview(), y.view());
  CHECK(y.to_host() == std::vector<double>{1, 2, 3, 1, 2, 3});
  CHECK_THROWS_WITH_AS(nexa::ops::add_row(Tensor<double>({2}).cview(), y.view()),
                       doctest::Contains("row expected 3 elements"), nexa::Error);
  CHECK_THROWS_WITH_AS(nexa::ops::sum_rows(y.cview(), Tensor<double>({4}).view()),
                       doctest::Contains("acc expected 3 elements"), nexa::Error);
}

TEST_CASE("sum_rows adds the rows in order into the accumulator") {
  // 1 + 2^-24 + 2^-24 is 1 in float when the rows are added one by one onto 1 (ties to even), but
  // 1 + 2^-23 when the two small rows are summed first: the order is part of the contract.
  const auto x = Tensor<float>::from_host({2, 1}, {0x1p-24f, 0x1p-24f});
  auto acc = Tensor<float>::from_host({1}, {1.0f});
  nexa::ops::sum_rows(x.cview(), acc.view());
  CHECK(acc.to_host()[0] == 1.0f);
}

TEST_CASE("casts round to nearest even and go through float for 16-bit types") {
  const auto x = Tensor<float>::from_host({4}, {1.0f + 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-9f, 65520.0f, -0.0f});
  const auto bf = nexa::ops::cast_to<nexa::bfloat16>(x.cview());
  const auto bf_bits = bf.to_host();
  CHECK(bf_bits[0].bits() == 0x3F80);  // the tie rounds to the even mantissa (1.0)
  CHECK(bf_bits[1].bits() == 0x3F81);
  const auto hf = nexa::ops::cast_to<nexa::half>(x.cview());
  CHECK(hf.to_host()[2].bits() == 0x7C00);  // 65520 overflows to +inf in binary16
  CHECK(hf.to_host()[3].bits() == 0x8000);
  auto back = Tensor<float>::uninitialized({4});
  nexa::ops::cast(bf.cview(), back.view());
  CHECK(back.to_host() == std::vector<float>{1.0f, 1.0f + 0x1p-7f, 65536.0f, -0.0f});
  const auto d = nexa::ops::cast_to<double>(x.cview());
  CHECK(d.to_host()[1] == static_cast<double>(1.0f + 0x1p-8f + 0x1p-9f));
  CHECK_THROWS_WITH_AS(nexa::ops::cast(x.cview(), Tensor<double>({3}).view()), doctest::Contains("cast"), nexa::Error);
}
