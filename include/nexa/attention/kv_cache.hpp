#pragma once
// KVCache<T, D> and decode_attention: incremental causal decoding (generation). The cache holds
// the keys and values of every position decoded so far, so each new position costs one
// projection of itself and one pass over the cached keys instead of a forward over the whole
// sequence. Attention::decode, PreLNBlock::decode and Stack::decode build on it.
//
// For the n newest positions p = length - n .. length - 1 (after append), query i sees keys
// j <= p that the key mask keeps, with scores scale * q . k_j + bias[h, j - p]: the same numbers
// as a causal forward over the whole sequence. Batched prompts of different lengths are padded on
// the left (key mask 0 there): the bias depends only on j - p, so the real tokens see what they
// would see unpadded. A query that sees no key (a padding position) gets a zero context.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "nexa/core/parallel.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa {

template <class T, class D = cpu>
struct KVCache {
  static_assert(std::same_as<D, cpu>, "KVCache: only the CPU backend implements decoding yet");
  Tensor<T, D> k, v;   // [B, heads, capacity, head_dim]; positions [0, length) are filled
  index_t length = 0;  // positions decoded so far

  [[nodiscard]] index_t capacity() const { return k.empty() ? 0 : k.dim(2); }

  // Appends n positions: k_new, v_new [B, heads, n, head_dim]. The capacity doubles when full, so
  // decoding token by token copies O(length) elements in all, not per step.
  void append(TensorView<const T, D> k_new, TensorView<const T, D> v_new) {
    require(k_new.rank() == 4 && v_new.shape() == k_new.shape(), "KVCache",
            "new keys and values expected [B, heads, n, head_dim] of one shape, got ", k_new.shape(), " and ",
            v_new.shape());
    const index_t B = k_new.dim(0), H = k_new.dim(1), n = k_new.dim(2), dh = k_new.dim(3);
    if (!k.empty())
      require(k.dim(0) == B && k.dim(1) == H && k.dim(3) == dh, "KVCache", "new keys expected [", k.dim(0), ", ",
              k.dim(1), ", n, ", k.dim(3), "] (the cached batch, heads and head_dim), got ", k_new.shape());
    if (length + n > capacity()) grow(B, H, dh, std::max(length + n, 2 * capacity()));
    const index_t cap = capacity();
    for (index_t bh = 0; bh < B * H; ++bh) {
      std::copy_n(k_new.data() + bh * n * dh, n * dh, k.data() + (bh * cap + length) * dh);
      std::copy_n(v_new.data() + bh * n * dh, n * dh, v.data() + (bh * cap + length) * dh);
    }
    length += n;
  }

 private:
  void grow(index_t B, index_t H, index_t dh, index_t new_capacity) {
    const index_t old_capacity = capacity();
    auto k2 = Tensor<T, D>::zeros({B, H, new_capacity, dh});
    auto v2 = Tensor<T, D>::zeros({B, H, new_capacity, dh});
    for (index_t bh = 0; bh < B * H && old_capacity > 0; ++bh) {
      std::copy_n(k.data() + bh * old_capacity * dh, length * dh, k2.data() + bh * new_capacity * dh);
      std::copy_n(v.data() + bh * old_capacity * dh, length * dh, v2.data() + bh * new_capacity * dh);
    }
    k = std::move(k2);
    v = std::move(v2);
  }
};

// context [B, heads, n, head_dim] of the n newest cached positions (q: [B, heads, n, head_dim]).
// key_mask: [B, length] of 0/1 or null; bias: [heads, 2 * length - 1] or null.
template <class T>
void decode_attention(const KVCache<T, cpu>& kv, const T* q, index_t n, const std::int32_t* key_mask, const T* bias,
                      T scale, T* context) {
  using A = acc_t<T>;
  const index_t B = kv.k.dim(0), H = kv.k.dim(1), cap = kv.k.dim(2), dh = kv.k.dim(3), L = kv.length;
  NEXA_PARALLEL_FOR_IF(B * H * n * L * dh > parallel_grain)
  for (index_t bh = 0; bh < B * H; ++bh) {
    const index_t b = bh / H, h = bh % H;
    const T* keys = kv.k.data() + bh * cap * dh;
    const T* values = kv.v.data() + bh * cap * dh;
    std::vector<A> scores(static_cast<std::size_t>(L));
    for (index_t i = 0; i < n; ++i) {
      const index_t p = L - n + i;
      const T* qi = q + (bh * n + i) * dh;
      A max = -std::numeric_limits<A>::infinity();
      for (index_t j = 0; j <= p; ++j) {
        if (key_mask && key_mask[b * L + j] == 0) {
          scores[static_cast<std::size_t>(j)] = -std::numeric_limits<A>::infinity();
          continue;
        }
        A s = 0;
        for (index_t c = 0; c < dh; ++c) s += static_cast<A>(qi[c]) * static_cast<A>(keys[j * dh + c]);
        s = static_cast<A>(scale) * s + (bias ? static_cast<A>(bias[h * (2 * L - 1) + (j - p) + L - 1]) : A(0));
        scores[static_cast<std::size_t>(j)] = s;
        max = std::max(max, s);
      }
      T* out = context + (bh * n + i) * dh;
      std::fill_n(out, dh, T(0));
      if (max == -std::numeric_limits<A>::infinity()) continue;  // no visible key
      A total = 0;
      for (index_t j = 0; j <= p; ++j)
        total += scores[static_cast<std::size_t>(j)] = std::exp(scores[static_cast<std::size_t>(j)] - max);
      std::vector<A> acc(static_cast<std::size_t>(dh), A(0));
      for (index_t j = 0; j <= p; ++j) {
        const A w = scores[static_cast<std::size_t>(j)] / total;
        if (w == A(0)) continue;
        for (index_t c = 0; c < dh; ++c) acc[static_cast<std::size_t>(c)] += w * static_cast<A>(values[j * dh + c]);
      }
      for (index_t c = 0; c < dh; ++c) out[c] = static_cast<T>(acc[static_cast<std::size_t>(c)]);
    }
  }
}

}  // namespace nexa
