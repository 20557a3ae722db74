#include <doctest/doctest.h>

#include <cmath>

#include "nexa/core/rng.hpp"
#include "nexa/core/tensor.hpp"

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors") {
  // From Random123's kat_vectors: philox4x32 10 rounds.
  auto zero = nexa::detail::philox4x32_10({0, 0, 0, 0}, {0, 0});
  CHECK(zero[0] == 0x6627e8d5u);
  CHECK(zero[1] == 0xe169c58du);
  CHECK(zero[2] == 0xbc57ac4cu);
  CHECK(zero[3] == 0x9b00dbd8u);
  auto pi =
      nexa::detail::philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u});
  CHECK(pi[0] == 0xd16cfe09u);
  CHECK(pi[1] == 0x94fdccebu);
  CHECK(pi[2] == 0x5001e420u);
  CHECK(pi[3] == 0x24126ea1u);
}

TEST_CASE("Random tensors depend only on seed and stream order, with sane moments") {
  nexa::Rng a(7), b(7), c(8);
  auto x = nexa::Tensor<double>::randn({100000}, a);
  auto y = nexa::Tensor<double>::randn({100000}, b);
  auto z = nexa::Tensor<double>::randn({100000}, c);
  CHECK(x.to_host() == y.to_host());
  CHECK(x.to_host() != z.to_host());
  double mean = 0, var = 0;
  for (double v : x.to_host()) mean += v;
  mean /= 100000;
  for (double v : x.to_host()) var += (v - mean) * (v - mean);
  var /= 100000;
  CHECK(std::abs(mean) < 0.02);
  CHECK(std::abs(var - 1.0) < 0.02);
  auto u = nexa::Tensor<double>::uniform({10000}, a, -2.0, 3.0);
  for (double v : u.to_host()) CHECK((v > -2.0 && v <= 3.0));
}
