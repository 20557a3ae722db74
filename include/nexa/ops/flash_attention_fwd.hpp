#pragma once
// Declarations shared by the FlashAttention-2 kernels of each device (backend/cpu/flash_attention.hpp,
// backend/cuda/flash_attention.hpp): raw pointers in FlashScores' layouts, so a caller (the
// Attention module, a test) runs the same problem on either device.
#include <cstdint>

#include "nexa/core/shape.hpp"

namespace nexa {

// Softmax over the keys each query sees of s_ij = scale * q_i . k_j + bias[h, j - i], then the
// weighted sum of values. A query that sees no key gets uniform weights over all S keys and a
// logsumexp of +inf (FullAttention's finite mask), as the CPU FlashScores does.
template <class T>
struct FlashAttentionArgs {
  index_t batch = 0, heads = 0, seq = 0, head_dim = 0;
  const T* q = nullptr;  // [B, heads, S, head_dim]
  const T* k = nullptr;
  const T* v = nullptr;
  const std::int32_t* padding = nullptr;  // [B, S], 1 = token, 0 = padding; null = no padding
  const T* relative_bias = nullptr;       // [heads, 2S - 1], bias[h, j - i] at [h, j - i + S - 1]; null = none
  T scale = T(1);
  bool causal = false;
  // Longformer's local window + global tokens (LocalGlobalAttention) when half_window >= 0: a
  // non-padding query sees the keys with |i - j| <= half_window, and every key when it or the key is
  // global (global: [B, S], 1 = global; null = none); a padding query sees nothing and its output
  // is 0. half_window < 0: every key (full attention; a query that sees no key averages all S).
  index_t half_window = -1;
  const std::int32_t* global = nullptr;
};

// FlashAttentionKernel<Device>:
//   forward<T>(args, out [B, heads, S, head_dim], logsumexp [B, heads, S])
//   backward<T>(args, out, logsumexp, d_out, dq, dk, dv (overwritten), d_relative_bias
//               [heads, 2S - 1] (accumulated; null = not wanted))
// All pointers live on Device; no dropout (the CPU Attention module applies it by element index).
template <class D>
struct FlashAttentionKernel;

}  // namespace nexa
