#pragma once
// Losses that return their value and the gradient with respect to their first argument.
//   cross_entropy(logits [N, C], targets int32 [N], ignore_index = -100): mean over the rows whose
//     target is not ignore_index, as torch.nn.functional.cross_entropy (reduction "mean"). The
//     log-softmax subtracts the row maximum, so large logits stay finite. When every row is
//     ignored the loss and all gradients are 0 (PyTorch would return NaN).
//   mse(pred, target): mean of (pred - target)^2 over all elements, as torch.nn.functional.mse_loss;
//     an empty input gives loss 0.
// Row losses are computed in acc_t<T> and summed in double in row order (thread-count and device
// independent); the per-row work runs in LossKernel<D> (backend/cpu/loss.hpp, backend/cuda/loss.hpp).
#include <cstdint>
#include <vector>

#include "nexa/backend/cpu/loss.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/loss_fwd.hpp"

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
  using A = acc_t<T>;
  require(logits.rank() == 2, "cross_entropy", "logits must be [N, C], got shape ", logits.shape());
  const index_t n = logits.dim(0), c = logits.dim(1);
  require(c > 0, "cross_entropy", "logits need at least one class, got shape ", logits.shape());
  require_shape(targets, Shape{n}, "cross_entropy", "targets");
  // Targets are checked on the host (a copy for device tensors): an error names the bad row.
  std::vector<std::int32_t> host_targets(static_cast<std::size_t>(n));
  nexa::detail::Transfer<D>::to_host(host_targets.data(), targets.data(), host_targets.size());
  index_t valid = 0;
  for (index_t i = 0; i < n; ++i) {
    const std::int32_t t = host_targets[static_cast<std::size_t>(i)];
    if (t == ignore_index) continue;
    require(0 <= t && t < c, "cross_entropy", "target ", t, " at row ", i, " is out of range for ", c,
            " classes (ignore_index is ", ignore_index, ")");
    ++valid;
  }
  LossResult<T, D> out{0.0, Tensor<T, D>::uninitialized(logits.shape())};
  auto row_loss = Tensor<A, D>::uninitialized({n});
  const A inv = valid > 0 ? A(1) / A(valid) : A(0);
  LossKernel<D>::cross_entropy_rows(n, c, logits.data(), targets.data(), ignore_index, inv, out.grad.data(),
                                    row_loss.data());
  double total = 0;
  for (const A l : row_loss.to_host()) total += static_cast<double>(l);
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
  require_shape(target, pred.shape(), "mse", "target");
  const index_t n = pred.numel();
  LossResult<T, D> out{0.0, Tensor<T, D>::uninitialized(pred.shape())};
  const double scale = n > 0 ? 2.0 / static_cast<double>(n) : 0.0;
  auto squared = Tensor<double, D>::uninitialized({n});
  LossKernel<D>::squared_errors(n, pred.data(), target.data(), scale, out.grad.data(), squared.data());
  double total = 0;
  for (const double e : squared.to_host()) total += e;
  out.loss = n > 0 ? total / static_cast<double>(n) : 0.0;
  return out;
}

// pred and target may each be a Tensor or a TensorView.
template <class P, class Y>
[[nodiscard]] auto mse(const P& pred, const Y& target) {
  return mse_views(read_view(pred), read_view(target));
}

}  // namespace nexa::train
