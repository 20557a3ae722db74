#pragma once
// CPU Fourier features of m/z (ops/fourier_fwd.hpp): one token after another, in double.
#include <cmath>

#include "nexa/ops/fourier_fwd.hpp"

namespace nexa {

template <>
struct FourierKernel<cpu> {
  template <class T>
  static void features(index_t n, index_t F, const T* mz, const double* angular, T* out) {
    for (index_t t = 0; t < n; ++t) {
      const double m = static_cast<double>(mz[t]);
      T* row = out + t * 2 * F;
      for (index_t k = 0; k < F; ++k) {
        const double a = m * angular[k];
        row[k] = static_cast<T>(std::sin(a));
        row[F + k] = static_cast<T>(std::cos(a));
      }
    }
  }
};

}  // namespace nexa
