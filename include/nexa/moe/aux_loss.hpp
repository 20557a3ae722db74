#pragma once
// Router auxiliary losses and their gradients, on any device (AuxLossKernel<D>).
//   Switch load balancing: L = alpha * N * sum_i f_i P_i, f_i = share of tokens whose first choice
//     is expert i (a count: no gradient), P_i = mean routing probability of expert i.
//   ST-MoE router z-loss:  L = c_z * mean_t logsumexp(logits_t)^2.
#include <cstdint>
#include <type_traits>

#include "nexa/backend/cpu/aux_loss.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/moe/aux_loss_fwd.hpp"

namespace nexa {

struct AuxLosses {
  double load_balance = 0.0;  // already multiplied by its coefficient
  double z_loss = 0.0;        // likewise
  double supervised = 0.0;    // routers trained on domain labels (SequenceClassifierRouter), likewise
  [[nodiscard]] double total() const { return load_balance + z_loss + supervised; }
};

// Adds coef * N * f_i / T to d_probs[t, i] (when given) and returns the loss value.
template <class A, class D>
double load_balance_loss(const Tensor<A, D>& probs, const Tensor<std::int32_t, D>& experts, double coef,
                         std::type_identity_t<Tensor<A, D>>* d_probs) {
  const index_t tokens = probs.dim(0), n = probs.dim(1);
  if (coef == 0.0 || tokens == 0) return 0.0;
  require(experts.rank() == 2 && experts.dim(0) == tokens && experts.dim(1) >= 1, "load_balance_loss",
          "experts expected [", tokens, ", k >= 1], got ", experts.shape());
  require(!d_probs || d_probs->shape() == probs.shape(), "load_balance_loss", "d_probs expected shape ", probs.shape(),
          ", got ", d_probs ? d_probs->shape() : Shape{});
  return AuxLossKernel<D>::template load_balance<A>(probs.data(), experts.data(), tokens, n, experts.dim(1), coef,
                                                    d_probs ? d_probs->data() : nullptr);
}

// Adds c_z * 2 * z_t * softmax(logits_t) / T to d_logits[t] (when given) and returns the loss value.
template <class A, class D>
double z_loss(const Tensor<A, D>& logits, const Tensor<A, D>& probs, double coef,
              std::type_identity_t<Tensor<A, D>>* d_logits) {
  const index_t tokens = logits.dim(0), n = logits.dim(1);
  if (coef == 0.0 || tokens == 0) return 0.0;
  require(probs.shape() == logits.shape(), "z_loss", "probs expected shape ", logits.shape(), ", got ", probs.shape());
  require(!d_logits || d_logits->shape() == logits.shape(), "z_loss", "d_logits expected shape ", logits.shape(),
          ", got ", d_logits ? d_logits->shape() : Shape{});
  return AuxLossKernel<D>::template z_loss<A>(logits.data(), probs.data(), tokens, n, coef,
                                              d_logits ? d_logits->data() : nullptr);
}

}  // namespace nexa
