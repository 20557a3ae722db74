#pragma once
// FlashAttentionKernel<cpu>: the raw-pointer form of FlashScores (attention/flash_attention.hpp),
// the CPU FlashAttention-2 the Attention module runs, so the CUDA kernels are checked against
// exactly that math.
#include <algorithm>

#include "nexa/attention/flash_attention.hpp"
#include "nexa/ops/flash_attention_fwd.hpp"

namespace nexa {

template <>
struct FlashAttentionKernel<cpu> {
  template <class T>
  static void forward(const FlashAttentionArgs<T>& a, T* out, acc_t<T>* logsumexp) {
    typename Scores::template Saved<T, cpu> saved;
    Scores::forward(problem(a), saved, out);
    std::copy_n(saved.logsumexp.data(), a.batch * a.heads * a.seq, logsumexp);
  }

  template <class T>
  static void backward(const FlashAttentionArgs<T>& a, const T* out, const acc_t<T>* logsumexp, const T* d_out, T* dq,
                       T* dk, T* dv, T* d_relative_bias) {
    const index_t B = a.batch, H = a.heads, S = a.seq, dh = a.head_dim;
    typename Scores::template Saved<T, cpu> saved;
    saved.output = Tensor<T, cpu>::uninitialized({B, H, S, dh});
    saved.logsumexp = Tensor<acc_t<T>, cpu>::uninitialized({B, H, S});
    std::copy_n(out, B * H * S * dh, saved.output.data());
    std::copy_n(logsumexp, B * H * S, saved.logsumexp.data());
    Scores::backward(problem(a), saved, d_out, AttentionGrads<T>{dq, dk, dv, d_relative_bias});
  }

 private:
  using Scores = FlashScores<>;

  template <class T>
  static AttentionProblem<T, cpu> problem(const FlashAttentionArgs<T>& a) {
    require(a.half_window < 0 && !a.global, "FlashAttentionKernel<cpu>",
            "a local window and global tokens are LocalGlobalAttention's on the CPU: expected half_window < 0 and no "
            "global flags, got half_window ",
            a.half_window, a.global ? " and global flags" : "");
    AttentionProblem<T, cpu> p;
    p.batch = a.batch;
    p.heads = a.heads;
    p.seq = a.seq;
    p.head_dim = a.head_dim;
    p.q = a.q;
    p.k = a.k;
    p.v = a.v;
    p.padding = a.padding;
    p.relative_bias = a.relative_bias;
    p.scale = a.scale;
    p.causal = a.causal;
    return p;
  }
};

}  // namespace nexa
