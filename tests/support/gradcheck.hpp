#pragma once
// Central-difference gradient checking for modules instantiated in double.
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "nexa/core/param.hpp"

namespace nexa::testing {

// Norm-wise relative error ||a - n|| / max(||a||, ||n||) (absolute below a norm of 1e-8) between an analytic gradient
// `analytic` and central differences of `loss` with respect to the n entries at `values` (restored after).
inline double gradient_error(const std::function<double()>& loss, double* values, index_t n, const double* analytic,
                             double eps = 1e-6) {
  double diff2 = 0, a2 = 0, n2 = 0;
  for (index_t i = 0; i < n; ++i) {
    const double saved = values[i];
    values[i] = saved + eps;
    const double up = loss();
    values[i] = saved - eps;
    const double down = loss();
    values[i] = saved;
    const double numeric = (up - down) / (2 * eps);
    diff2 += (numeric - analytic[i]) * (numeric - analytic[i]);
    a2 += analytic[i] * analytic[i];
    n2 += numeric * numeric;
  }
  // Where the true gradient is zero (e.g. a key bias, to which softmax is invariant) both sides
  // are round-off: compare absolutely there.
  const double scale = std::sqrt(std::max(a2, n2));
  return scale < 1e-8 ? std::sqrt(diff2) : std::sqrt(diff2) / scale;
}

// Loss = sum(y * r): its gradient with respect to y is r, a fixed random "upstream gradient".
inline double weighted_sum(const Tensor<double>& y, const Tensor<double>& r) {
  double s = 0;
  for (index_t i = 0; i < y.numel(); ++i) s += y.data()[i] * r.data()[i];
  return s;
}

// Collects every trainable parameter of a module with its name, for per-parameter checks.
template <class Module>
std::vector<std::pair<std::string, Param<double>*>> trainable_params(Module& m) {
  std::vector<std::pair<std::string, Param<double>*>> out;
  m.visit_params([&](const std::string& name, Param<double>& p) {
    if (p.trainable) out.emplace_back(name, &p);
  });
  return out;
}

template <class Module>
void zero_grads(Module& m) {
  m.visit_params([](const std::string&, Param<double>& p) { p.zero_grad(); });
}

}  // namespace nexa::testing
