#pragma once
// GroupedExperts<Expert>: all of an MoE layer's experts of one type run together, each projection
// one grouped GEMM over the experts (ops::grouped_gemm: on CUDA one cuBLAS launch for all
// experts) and each activation one elementwise call over every slot. An expert type without a
// specialisation runs expert by expert (MoELayer's loop over forward_into/backward_into).
//
// The T5FFN specialisations do per expert exactly what T5FFN::forward_into/backward_into do, in
// the same order, so the CPU results are bitwise the per-expert ones (GroupedGemmKernel<cpu> is
// one GemmKernel<cpu> call per problem); each expert's dropout draws its own mask, in expert
// order, as the per-expert path does, and an expert with no tokens is skipped as there.
//   x:       [slots, d_model], expert e's tokens are rows offsets[e]..offsets[e+1]
//   y, dx:   [slots, d_model], the same rows
#include <span>
#include <vector>

#include "nexa/moe/t5_ffn.hpp"
#include "nexa/ops/grouped_gemm.hpp"

namespace nexa {

template <class Expert>
struct GroupedExperts;

template <class Expert>
concept GroupedExpertType = requires {
  typename GroupedExperts<Expert>::Cache;
};

// What an MoE layer keeps of its experts between forward and backward: one grouped cache, or
// one cache per expert.
template <class Expert>
struct ExpertCaches {
  using type = std::vector<typename Expert::Cache>;
};
template <GroupedExpertType Expert>
struct ExpertCaches<Expert> {
  using type = typename GroupedExperts<Expert>::Cache;
};
template <class Expert>
using expert_caches_t = typename ExpertCaches<Expert>::type;

namespace grouped_detail {

// Each expert's value of the parameter `member` (wi, wo, ...), as GEMM operands.
template <class T, class D, class Expert, class Member>
std::vector<TensorView<const T, D>> weights(std::span<Expert> experts, Member member) {
  std::vector<TensorView<const T, D>> out;
  out.reserve(experts.size());
  for (Expert& e : experts) out.push_back((e.*member).value.cview());
  return out;
}

// grad_e += op(left_e)^T right_e for every expert with rows and a trainable parameter: one
// grouped GEMM (the weight gradients of one projection).
template <class Expert, class Member, class T, class D>
void accumulate_weight_grads(std::span<Expert> experts, Member member, const std::vector<index_t>& offsets,
                             TensorView<const T, D> left, TensorView<const T, D> right) {
  std::vector<TensorView<const T, D>> a, b;
  std::vector<TensorView<T, D>> c;
  for (std::size_t e = 0; e < experts.size(); ++e) {
    auto& p = experts[e].*member;
    if (!p.trainable || offsets[e + 1] == offsets[e]) continue;
    a.push_back(left.slice_rows(offsets[e], offsets[e + 1]));
    b.push_back(right.slice_rows(offsets[e], offsets[e + 1]));
    c.push_back(p.grad.view());
  }
  if (!a.empty()) ops::grouped_gemm(a, Trans::T, b, Trans::N, c, T(1), T(1));
}

// Each expert's dropout over its rows of `h` [slots, d_ff] (forward: draws and applies masks).
template <class Expert, class T, class D, class Caches>
void dropout_forward(std::span<Expert> experts, const std::vector<index_t>& offsets, Tensor<T, D>& h, Caches& caches) {
  for (std::size_t e = 0; e < experts.size(); ++e) {
    const index_t rows = offsets[e + 1] - offsets[e];
    if (rows > 0) experts[e].dropout().forward_inplace(h.data() + offsets[e] * h.cols(), rows * h.cols(), caches[e]);
  }
}
template <class Expert, class T, class D, class Caches>
void dropout_backward(std::span<Expert> experts, const std::vector<index_t>& offsets, Tensor<T, D>& g,
                      const Caches& caches) {
  for (std::size_t e = 0; e < experts.size(); ++e) {
    const index_t rows = offsets[e + 1] - offsets[e];
    if (rows > 0) experts[e].dropout().backward_inplace(g.data() + offsets[e] * g.cols(), rows * g.cols(), caches[e]);
  }
}

// y = dropout(hidden) wo^T per expert: the output projection both variants end with.
template <class Expert, class T, class D, class Caches>
void output_forward(std::span<Expert> experts, const std::vector<index_t>& offsets, Tensor<T, D>& hidden,
                    Caches& dropout, TensorView<T, D> y) {
  dropout_forward(experts, offsets, hidden, dropout);
  ops::grouped_gemm_rows(hidden.cview(), offsets, weights<T, D>(experts, &Expert::wo), Trans::T, y);
}

// Back through the output projection and dropout: accumulates dW_o and returns dL/d(activation
// output) [slots, d_ff].
template <class Expert, class T, class D, class Caches>
Tensor<T, D> output_backward(std::span<Expert> experts, const std::vector<index_t>& offsets, TensorView<const T, D> dy,
                             const Tensor<T, D>& hidden, const Caches& dropout) {
  accumulate_weight_grads(experts, &Expert::wo, offsets, dy, hidden.cview());
  auto dh = Tensor<T, D>::uninitialized(hidden.shape());
  ops::grouped_gemm_rows(dy, offsets, weights<T, D>(experts, &Expert::wo), Trans::N, dh.view());
  dropout_backward(experts, offsets, dh, dropout);
  return dh;
}

}  // namespace grouped_detail

// wo(dropout(Act(wi x))) for every expert at once.
template <class Act, class T, class D>
struct GroupedExperts<T5FFN<Act, T, D>> {
  using Expert = T5FFN<Act, T, D>;
  struct Cache {
    Tensor<T, D> input;   // [slots, d_model]
    Tensor<T, D> pre;     // [slots, d_ff] pre-activation (kept only when Act is not Relu)
    Tensor<T, D> hidden;  // [slots, d_ff] after activation and dropout
    std::vector<typename Dropout<T, D>::Cache> dropout;  // per expert
  };

  static void forward(std::span<Expert> experts, const std::vector<index_t>& offsets, Tensor<T, D>&& x, Cache& cache,
                      TensorView<T, D> y) {
    using namespace grouped_detail;
    cache.input = std::move(x);
    const index_t d_ff = experts.empty() ? 0 : experts[0].config().d_ff;
    cache.hidden = Tensor<T, D>::uninitialized({cache.input.rows(), d_ff});
    cache.dropout.assign(experts.size(), {});
    if (cache.input.rows() == 0) return;
    ops::grouped_gemm_rows(cache.input.cview(), offsets, weights<T, D>(experts, &Expert::wi), Trans::T,
                           cache.hidden.view());
    if constexpr (!std::same_as<Act, Relu>) cache.pre = cache.hidden;
    ActivationKernel<D>::template forward<Act>(cache.hidden.numel(), cache.hidden.data(), cache.hidden.data());
    output_forward(experts, offsets, cache.hidden, cache.dropout, y);
  }

  static void backward(std::span<Expert> experts, const std::vector<index_t>& offsets, TensorView<const T, D> dy,
                       Cache& cache, TensorView<T, D> dx) {
    using namespace grouped_detail;
    if (cache.input.rows() == 0) return;
    Tensor<T, D> dh = output_backward(experts, offsets, dy, cache.hidden, cache.dropout);
    if constexpr (std::same_as<Act, Relu>) {
      ActivationKernel<D>::relu_backward_from_output(dh.numel(), cache.hidden.data(), dh.data());
    } else {
      ActivationKernel<D>::template backward<Act>(dh.numel(), cache.pre.data(), dh.data(), dh.data());
    }
    accumulate_weight_grads(experts, &Expert::wi, offsets, dh.cview(), cache.input.cview());
    ops::grouped_gemm_rows(dh.cview(), offsets, weights<T, D>(experts, &Expert::wi), Trans::N, dx);
  }
};

// wo(dropout(Act(wi_0 x) * wi_1 x)) for every expert at once.
template <class Act, class T, class D>
struct GroupedExperts<T5FFN<Gated<Act>, T, D>> {
  using Expert = T5FFN<Gated<Act>, T, D>;
  struct Cache {
    Tensor<T, D> input;                                  // [slots, d_model]
    Tensor<T, D> gate;                                   // [slots, d_ff] wi_0 x
    Tensor<T, D> linear;                                 // [slots, d_ff] wi_1 x
    Tensor<T, D> hidden;                                 // [slots, d_ff] Act(gate) * linear after dropout
    std::vector<typename Dropout<T, D>::Cache> dropout;  // per expert
  };

  static void forward(std::span<Expert> experts, const std::vector<index_t>& offsets, Tensor<T, D>&& x, Cache& cache,
                      TensorView<T, D> y) {
    using namespace grouped_detail;
    cache.input = std::move(x);
    const index_t slots = cache.input.rows(), d_ff = experts.empty() ? 0 : experts[0].config().d_ff;
    cache.gate = Tensor<T, D>::uninitialized({slots, d_ff});
    cache.linear = Tensor<T, D>::uninitialized({slots, d_ff});
    cache.hidden = Tensor<T, D>::uninitialized({slots, d_ff});
    cache.dropout.assign(experts.size(), {});
    if (slots == 0) return;
    ops::grouped_gemm_rows(cache.input.cview(), offsets, weights<T, D>(experts, &Expert::wi_0), Trans::T,
                           cache.gate.view());
    ops::grouped_gemm_rows(cache.input.cview(), offsets, weights<T, D>(experts, &Expert::wi_1), Trans::T,
                           cache.linear.view());
    ActivationKernel<D>::template gated_forward<Act>(cache.hidden.numel(), cache.gate.data(), cache.linear.data(),
                                                     cache.hidden.data());
    output_forward(experts, offsets, cache.hidden, cache.dropout, y);
  }

  static void backward(std::span<Expert> experts, const std::vector<index_t>& offsets, TensorView<const T, D> dy,
                       Cache& cache, TensorView<T, D> dx) {
    using namespace grouped_detail;
    if (cache.input.rows() == 0) return;
    // dL/dh, then dL/d(gate) after the split below.
    Tensor<T, D> d_gate = output_backward(experts, offsets, dy, cache.hidden, cache.dropout);
    auto d_linear = Tensor<T, D>::uninitialized(d_gate.shape());
    ActivationKernel<D>::template gated_backward<Act>(d_gate.numel(), cache.gate.data(), cache.linear.data(),
                                                      d_gate.data(), d_linear.data());
    accumulate_weight_grads(experts, &Expert::wi_0, offsets, d_gate.cview(), cache.input.cview());
    accumulate_weight_grads(experts, &Expert::wi_1, offsets, d_linear.cview(), cache.input.cview());
    ops::grouped_gemm_rows(d_gate.cview(), offsets, weights<T, D>(experts, &Expert::wi_0), Trans::N, dx);
    ops::grouped_gemm_rows(d_linear.cview(), offsets, weights<T, D>(experts, &Expert::wi_1), Trans::N, dx, T(1), T(1));
  }
};

}  // namespace nexa
