#pragma once
// Losses that return their value and the gradient with respect to their first argument.
//   cross_entropy(logits [N, C], targets int32 [N], ignore_index = -100): mean over the rows whose
//     target is not ignore_index, as torch.nn.functional.cross_entropy (reduction "mean"). The
//     log-softmax subtracts the row maximum, so large logits stay finite. When every row is
//     ignored the loss and all gradients are 0 (PyTorch would return NaN).
//   mse(pred, target): mean of (pred - target)^2 over all elements, as torch.nn.functional.mse_loss;
//     an empty input gives loss 0.
// Row losses are computed in acc_t<T> and summed in double in row order (thread-count independent).
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <vector>

#include "nexa/core/parallel.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa::train {

// {loss, d loss / d input}; structured bindings work: `auto [loss, dlogits] = cross_entropy(...)`.
template <class T, class D = cpu>
struct LossResult {
  double loss = 0;
  Tensor<T, D> grad;  // same shape as the first argument
};

template <class T, class D>
[[nodiscard]] LossResult<T, D> cross_entropy_views(TensorView<const T, D> logits,
                                                   TensorView<const std::int32_t, D> targets,
                                                   std::int32_t ignore_index = -100) {
  static_assert(std::same_as<D, cpu>, "cross_entropy: only the CPU backend implements it yet");
  using A = acc_t<T>;
  require(logits.rank() == 2, "cross_entropy", "logits must be [N, C], got shape ", logits.shape());
  const index_t n = logits.dim(0), c = logits.dim(1);
  require(c > 0, "cross_entropy", "logits need at least one class, got shape ", logits.shape());
  require_shape(targets, Shape{n}, "cross_entropy", "targets");
  index_t valid = 0;
  for (index_t i = 0; i < n; ++i) {
    const std::int32_t t = targets.data()[i];
    if (t == ignore_index) continue;
    require(0 <= t && t < c, "cross_entropy", "target ", t, " at row ", i, " is out of range for ", c,
            " classes (ignore_index is ", ignore_index, ")");
    ++valid;
  }
  LossResult<T, D> out{0.0, Tensor<T, D>::uninitialized(logits.shape())};
  std::vector<A> row_loss(static_cast<std::size_t>(n), A(0));
  const A inv = valid > 0 ? A(1) / A(valid) : A(0);
  const T* x = logits.data();
  T* g = out.grad.data();
  NEXA_PARALLEL_FOR_IF(n * c > parallel_grain)
  for (index_t i = 0; i < n; ++i) {
    const T* xi = x + i * c;
    T* gi = g + i * c;
    const std::int32_t t = targets.data()[i];
    if (t == ignore_index) {
      std::fill_n(gi, c, T(0));
      continue;
    }
    A mx = A(xi[0]);
    for (index_t j = 1; j < c; ++j) mx = std::max(mx, A(xi[j]));
    A sum = 0;
    for (index_t j = 0; j < c; ++j) sum += std::exp(A(xi[j]) - mx);
    const A log_sum = std::log(sum);
    // loss_i = logsumexp(x_i) - x_i[t]; d/dx_ij = (softmax_ij - [j == t]) / valid.
    row_loss[static_cast<std::size_t>(i)] = log_sum - (A(xi[t]) - mx);
    for (index_t j = 0; j < c; ++j) {
      const A p = std::exp(A(xi[j]) - mx - log_sum);
      gi[j] = static_cast<T>((p - (j == t ? A(1) : A(0))) * inv);
    }
  }
  double total = 0;
  for (const A l : row_loss) total += static_cast<double>(l);
  out.loss = valid > 0 ? total / static_cast<double>(valid) : 0.0;
  return out;
}

// logits and targets may each be a Tensor or a TensorView.
template <class L, class Tg>
[[nodiscard]] auto cross_entropy(const L& logits, const Tg& targets, std::int32_t ignore_index = -100) {
  return cross_entropy_views(read_view(logits), read_view(targets), ignore_index);
}

template <class T, class D>
[[nodiscard]] LossResult<T, D> mse_views(TensorView<const T, D> pred, TensorView<const T, D> target) {
  static_assert(std::same_as<D, cpu>, "mse: only the CPU backend implements it yet");
  require_shape(target, pred.shape(), "mse", "target");
  const index_t n = pred.numel();
  LossResult<T, D> out{0.0, Tensor<T, D>::uninitialized(pred.shape())};
  const T* p = pred.data();
  const T* y = target.data();
  T* g = out.grad.data();
  const double scale = n > 0 ? 2.0 / static_cast<double>(n) : 0.0;
  double total = 0;
  for (index_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(p[i]) - static_cast<double>(y[i]);
    total += d * d;
    g[i] = static_cast<T>(scale * d);
  }
  out.loss = n > 0 ? total / static_cast<double>(n) : 0.0;
  return out;
}

// pred and target may each be a Tensor or a TensorView.
template <class P, class Y>
[[nodiscard]] auto mse(const P& pred, const Y& target) {
  return mse_views(read_view(pred), read_view(target));
}

}  // namespace nexa::train
