#pragma once
// The normalised error the comparison tests use: ||got - want|| / ||want|| (Frobenius). A NaN
// anywhere makes it NaN, which fails every `<` check, so poisoned outputs cannot pass.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace nexa_test {

template <class T>
double rel_error(const std::vector<T>& got, const std::vector<T>& want) {
  REQUIRE(got.size() == want.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = static_cast<double>(got[i]) - static_cast<double>(want[i]);
    num += d * d;
    den += static_cast<double>(want[i]) * static_cast<double>(want[i]);
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

}  // namespace nexa_test
