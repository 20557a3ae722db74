#pragma once
// Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_ (norm_type 2):
//   norm = sqrt(sum over trainable parameters of sum(grad^2)), computed in double;
//   if max_norm / (norm + 1e-6) < 1, every trainable gradient is multiplied by that factor.
// Returns the norm before clipping. A non-finite norm is returned without touching the gradients
// (the caller should skip the step). Frozen parameters are ignored. Sums run over fixed chunks
// added in order, so the norm does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <string>
#include <type_traits>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/parallel.hpp"
#include "nexa/core/param.hpp"

namespace nexa::train {

namespace detail {

template <class T>
double sum_squares(const T* x, index_t n) {
  constexpr index_t chunk = parallel_grain;
  const index_t chunks = (n + chunk - 1) / chunk;
  std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
  NEXA_PARALLEL_FOR_IF(chunks > 1)
  for (index_t c = 0; c < chunks; ++c) {
    double s = 0;
    const index_t end = std::min(n, (c + 1) * chunk);
    for (index_t i = c * chunk; i < end; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    partial[static_cast<std::size_t>(c)] = s;
  }
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace detail

// Global L2 norm of the trainable gradients, in double.
template <class Module>
[[nodiscard]] double grad_norm(Module& model) {
  double total = 0;
  model.visit_params([&](const std::string&, auto& p) {
    static_assert(std::same_as<typename std::remove_cvref_t<decltype(p.grad)>::device, cpu>,
                  "grad_norm: only CPU parameters are supported yet");
    if (p.trainable) total += detail::sum_squares(p.grad.data(), p.grad.numel());
  });
  return std::sqrt(total);
}

// Scales the trainable gradients so that their global L2 norm is at most max_norm; returns the
// norm before clipping.
template <class Module>
double clip_grad_norm(Module& model, double max_norm) {
  require(max_norm >= 0 && !std::isnan(max_norm), "clip_grad_norm", "max_norm must be non-negative, got ", max_norm);
  const double norm = grad_norm(model);
  if (!std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    model.visit_params([&](const std::string&, auto& p) {
      if (!p.trainable) return;
      using T = typename std::remove_cvref_t<decltype(p.grad)>::value_type;
      const T scale = static_cast<T>(coef);
      T* g = p.grad.data();
      const index_t n = p.grad.numel();
      NEXA_PARALLEL_FOR_IF(n > parallel_grain)
      for (index_t i = 0; i < n; ++i) g[i] *= scale;
    });
  }
  return norm;
}

}  // namespace nexa::train
