#pragma once
// Gradient-check helpers for the BERT tests.
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "support/gradcheck.hpp"

namespace nexa::testing {

// The key projection's bias adds q . b_k to every score of a query row, and softmax is invariant
// to that: its gradient is exactly zero, so a relative error is meaningless (noise over noise).
inline bool is_key_bias(const std::string& name) {
  return name.size() >= 8 && name.compare(name.size() - 8, 8, "key.bias") == 0;
}

// max |central difference| over the n entries at `values`.
inline double max_numeric_gradient(const std::function<double()>& loss, double* values, index_t n, double eps = 1e-6) {
  double out = 0;
  for (index_t i = 0; i < n; ++i) {
    const double saved = values[i];
    values[i] = saved + eps;
    const double up = loss();
    values[i] = saved - eps;
    const double down = loss();
    values[i] = saved;
    out = std::max(out, std::abs(up - down) / (2 * eps));
  }
  return out;
}

// Checks one parameter: relative error < 1e-6, or, for a key bias, both gradients ~0.
inline void check_param_gradient(const std::function<double()>& loss, const std::string& name, double* values,
                                 const double* grad, index_t n) {
  INFO(name);
  if (is_key_bias(name)) {
    double analytic = 0;
    for (index_t i = 0; i < n; ++i) analytic = std::max(analytic, std::abs(grad[i]));
    CHECK(analytic < 1e-12);
    CHECK(max_numeric_gradient(loss, values, n) < 1e-7);
  } else {
    CHECK(gradient_error(loss, values, n, grad) < 1e-6);
  }
}

}  // namespace nexa::testing
