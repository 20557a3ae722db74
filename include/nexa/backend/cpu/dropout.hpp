#pragma once
// CPU dropout kernels (ops/dropout_fwd.hpp): the whole-array mask in parallel by groups of four
// elements (one Philox call each), the ranged mask serially.
#include <array>
#include <cstddef>
#include <cstdint>

#include "nexa/core/parallel.hpp"
#include "nexa/ops/dropout_fwd.hpp"

namespace nexa {

template <>
struct DropoutKernel<cpu> {
  template <class T>
  static void apply(const RandomStream& stream, std::uint64_t call, std::uint64_t threshold, T scale, T* x, index_t n) {
    const std::uint64_t base = call << 40;
    const index_t groups = (n + 3) / 4;
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t g = 0; g < groups; ++g) {
      const auto bits = stream.bits(base + static_cast<std::uint64_t>(g));
      for (index_t lane = 0; lane < 4 && g * 4 + lane < n; ++lane) {
        T& v = x[g * 4 + lane];
        v = bits[static_cast<std::size_t>(lane)] >= threshold ? v * scale : T(0);
      }
    }
  }

  template <class T>
  static void apply_range(const RandomStream& stream, std::uint64_t call, std::uint64_t threshold, T scale,
                          std::uint64_t first, T* x, index_t n) {
    const std::uint64_t base = call << 40;
    std::uint64_t group = ~std::uint64_t(0);
    std::array<std::uint32_t, 4> bits{};
    for (index_t e = 0; e < n; ++e) {
      const std::uint64_t index = first + static_cast<std::uint64_t>(e);
      if (index / 4 != group) {
        group = index / 4;
        bits = stream.bits(base + group);
      }
      x[e] = bits[static_cast<std::size_t>(index % 4)] >= threshold ? x[e] * scale : T(0);
    }
  }
};

}  // namespace nexa
