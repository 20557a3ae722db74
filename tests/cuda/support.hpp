#pragma once
// Helpers shared by the CUDA backend tests: poisoned outputs, normalised errors, host copies.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "nexa/backend/cuda.hpp"
#include "support/rel_error.hpp"

namespace nexa_test {

using nexa::index_t;
template <class T>
using DeviceTensor = nexa::Tensor<T, nexa::cuda>;

template <class T>
inline constexpr bool is_16bit_float_v = std::is_same_v<T, nexa::bfloat16> || std::is_same_v<T, nexa::half>;

// NaN for floating point, an absurd index for integers: any element a kernel fails to write shows.
template <class T>
T poison_value() {
  if constexpr (std::is_floating_point_v<T>)
    return std::numeric_limits<T>::quiet_NaN();
  else if constexpr (std::is_same_v<T, nexa::bfloat16>)
    return nexa::bfloat16::from_bits(0x7FC0);  // quiet NaN
  else if constexpr (std::is_same_v<T, nexa::half>)
    return nexa::half::from_bits(0x7E00);  // quiet NaN
  else
    return T(-1234567);
}

template <class T>
DeviceTensor<T> poisoned(nexa::Shape shape) {
  return DeviceTensor<T>::full(std::move(shape), poison_value<T>());
}

template <class T>
std::vector<T> host_poisoned(std::size_t n) {
  return std::vector<T>(n, poison_value<T>());
}

// Normalised-error bounds: fp32 1e-5, 16-bit storage (fp32 accumulation) 1e-2, double 1e-12.
template <class T>
constexpr double tolerance() {
  if constexpr (is_16bit_float_v<T>) return 1e-2;
  return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

template <class T>
std::vector<T> random_normal(index_t n, nexa::Rng& rng, double stddev = 1.0) {
  return nexa::Tensor<T>::randn({n}, rng, stddev).to_host();
}

}  // namespace nexa_test
