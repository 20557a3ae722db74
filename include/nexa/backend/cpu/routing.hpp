#pragma once
// CPU routing kernels: softmax + top-k, grouping by expert, gather, deterministic combine.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "nexa/core/parallel.hpp"
#include "nexa/ops/routing_fwd.hpp"

namespace nexa {

template <>
struct RoutingKernel<cpu> {
  // probs = softmax(logits) per row; experts/weights = the k largest, ties to the lower index.
  template <class A>
  static void softmax_topk(const A* logits, index_t tokens, index_t num_experts, index_t k, bool renormalize, A* probs,
                           std::int32_t* experts, A* weights) {
    NEXA_PARALLEL_FOR_IF(tokens * num_experts > parallel_grain)
    for (index_t t = 0; t < tokens; ++t) {
      const A* z = logits + t * num_experts;
      A* p = probs + t * num_experts;
      const A zmax = *std::max_element(z, z + num_experts);
      A sum = 0;
      for (index_t e = 0; e < num_experts; ++e) sum += (p[e] = std::exp(z[e] - zmax));
      for (index_t e = 0; e < num_experts; ++e) p[e] /= sum;
      std::int32_t* idx = experts + t * k;
      A* w = weights + t * k;
      // Selection by repeated scan: k is tiny (1-8), so this beats a heap or partial sort.
      for (index_t j = 0; j < k; ++j) {
        std::int32_t best = -1;
        for (index_t e = 0; e < num_experts; ++e) {
          if (std::find(idx, idx + j, static_cast<std::int32_t>(e)) != idx + j) continue;
          if (best < 0 || p[e] > p[best]) best = static_cast<std::int32_t>(e);
        }
        idx[j] = best;
        w[j] = p[best];
      }
      if (renormalize) {
        A s = 0;
        for (index_t j = 0; j < k; ++j) s += w[j];
        for (index_t j = 0; j < k; ++j) w[j] /= s;
      }
    }
  }

  // Gradient of the loss w.r.t. the logits, given its gradient w.r.t. the top-k weights and
  // (optionally, may be null) w.r.t. the full probabilities.
  template <class A>
  static void softmax_topk_backward(const A* probs, const std::int32_t* experts, const A* weights, const A* d_weights,
                                    const A* d_probs, index_t tokens, index_t num_experts, index_t k, bool renormalize,
                                    A* d_logits) {
    NEXA_PARALLEL_FOR_IF(tokens * num_experts > parallel_grain)
    for (index_t t = 0; t < tokens; ++t) {
      const A* p = probs + t * num_experts;
      const std::int32_t* idx = experts + t * k;
      const A* w = weights + t * k;
      const A* dw = d_weights + t * k;
      A* dz = d_logits + t * num_experts;  // holds dL/dp until the softmax step below
      for (index_t e = 0; e < num_experts; ++e) dz[e] = d_probs ? d_probs[t * num_experts + e] : A(0);
      if (renormalize) {
        // w_j = p_j / s with s = sum over the k chosen: dp_j = (dw_j - sum_i dw_i w_i) / s.
        A s = 0, dot = 0;
        for (index_t j = 0; j < k; ++j) s += p[idx[j]];
        for (index_t j = 0; j < k; ++j) dot += dw[j] * w[j];
        for (index_t j = 0; j < k; ++j) dz[idx[j]] += (dw[j] - dot) / s;
      } else {
        for (index_t j = 0; j < k; ++j) dz[idx[j]] += dw[j];
      }
      A dot = 0;
      for (index_t e = 0; e < num_experts; ++e) dot += p[e] * dz[e];
      for (index_t e = 0; e < num_experts; ++e) dz[e] = p[e] * (dz[e] - dot);
    }
  }

  // Counting sort of (token, choice) pairs by expert; stable in token order.
  static void group_by_expert(const std::int32_t* experts, index_t tokens, index_t k, index_t num_experts,
                              index_t* offsets, std::int32_t* slot_token, std::int32_t* assignment_slot) {
    std::fill(offsets, offsets + num_experts + 1, index_t{0});
    for (index_t a = 0; a < tokens * k; ++a) ++offsets[experts[a] + 1];
    for (index_t e = 0; e < num_experts; ++e) offsets[e + 1] += offsets[e];
    std::vector<index_t> next(offsets, offsets + num_experts);
    for (index_t t = 0; t < tokens; ++t) {
      for (index_t j = 0; j < k; ++j) {
        const index_t slot = next[static_cast<std::size_t>(experts[t * k + j])]++;
        slot_token[slot] = static_cast<std::int32_t>(t);
        assignment_slot[t * k + j] = static_cast<std::int32_t>(slot);
      }
    }
  }

  // As group_by_expert, but each expert keeps at most `capacity` assignments, chosen in priority
  // order (all first choices in token order, then all second choices, ...), as Switch/GShard do.
  // A dropped assignment gets slot -1: it reaches no expert and contributes nothing.
  static void group_by_expert_with_capacity(const std::int32_t* experts, index_t tokens, index_t k, index_t num_experts,
                                            index_t capacity, index_t* offsets, std::int32_t* slot_token,
                                            std::int32_t* assignment_slot) {
    std::vector<index_t> taken(static_cast<std::size_t>(num_experts), 0);
    for (index_t j = 0; j < k; ++j) {
      for (index_t t = 0; t < tokens; ++t) {
        const index_t a = t * k + j;
        index_t& n = taken[static_cast<std::size_t>(experts[a])];
        assignment_slot[a] = n < capacity ? 0 : -1;  // 0: kept, slot assigned below
        n += n < capacity ? 1 : 0;
      }
    }
    std::fill(offsets, offsets + num_experts + 1, index_t{0});
    for (index_t e = 0; e < num_experts; ++e) offsets[e + 1] = offsets[e] + taken[static_cast<std::size_t>(e)];
    std::vector<index_t> next(offsets, offsets + num_experts);
    for (index_t a = 0; a < tokens * k; ++a) {
      if (assignment_slot[a] < 0) continue;
      const index_t slot = next[static_cast<std::size_t>(experts[a])]++;
      slot_token[slot] = static_cast<std::int32_t>(a / k);
      assignment_slot[a] = static_cast<std::int32_t>(slot);
    }
  }

  // dst[s] = src[index[s]] for each of `count` rows of width `width`.
  template <class T>
  static void gather_rows(const T* src, const std::int32_t* index, index_t count, index_t width, T* dst) {
    NEXA_PARALLEL_FOR_IF(count * width > parallel_grain)
    for (index_t s = 0; s < count; ++s) std::copy_n(src + index[s] * width, width, dst + s * width);
  }

  // dst[t] = beta * dst[t] + sum_j w[t, j] * src[slot(t, j)], summed in j order (no atomics, so
  // bitwise reproducible). A null `weights` means all ones; dropped assignments (slot -1) add nothing.
  template <class T, class W>
  static void weighted_combine(const T* src, const std::int32_t* assignment_slot, const W* weights, index_t tokens,
                               index_t k, index_t width, T beta, T* dst) {
    NEXA_PARALLEL_FOR_IF(tokens * width > parallel_grain)
    for (index_t t = 0; t < tokens; ++t) {
      T* out = dst + t * width;
      if (beta == T(0))
        std::fill(out, out + width, T(0));
      else if (beta != T(1))
        for (index_t c = 0; c < width; ++c) out[c] *= beta;
      for (index_t j = 0; j < k; ++j) {
        if (assignment_slot[t * k + j] < 0) continue;  // dropped by the capacity limit
        const T* row = src + static_cast<index_t>(assignment_slot[t * k + j]) * width;
        const T w = weights ? static_cast<T>(weights[t * k + j]) : T(1);
        for (index_t c = 0; c < width; ++c) out[c] += w * row[c];
      }
    }
  }

  // dst[slot(t, j)] = w[t, j] * src[t]: the combine's backward to the expert outputs. Every slot
  // has exactly one (t, j), so the writes never collide.
  template <class T, class W>
  static void scatter_weighted(const T* src, const std::int32_t* assignment_slot, const W* weights, index_t tokens,
                               index_t k, index_t width, T* dst) {
    NEXA_PARALLEL_FOR_IF(tokens * width > parallel_grain)
    for (index_t t = 0; t < tokens; ++t) {
      for (index_t j = 0; j < k; ++j) {
        if (assignment_slot[t * k + j] < 0) continue;
        T* out = dst + static_cast<index_t>(assignment_slot[t * k + j]) * width;
        const T w = static_cast<T>(weights[t * k + j]);
        for (index_t c = 0; c < width; ++c) out[c] = w * src[t * width + c];
      }
    }
  }

  // d_weights[t, j] = <dy[t], expert_out[slot(t, j)]>, accumulated in W.
  template <class T, class W>
  static void combine_weight_grad(const T* dy, const T* expert_out, const std::int32_t* assignment_slot, index_t tokens,
                                  index_t k, index_t width, W* d_weights) {
    NEXA_PARALLEL_FOR_IF(tokens * k * width > parallel_grain)
    for (index_t t = 0; t < tokens; ++t) {
      for (index_t j = 0; j < k; ++j) {
        if (assignment_slot[t * k + j] < 0) {
          d_weights[t * k + j] = W(0);
          continue;
        }
        const T* row = expert_out + static_cast<index_t>(assignment_slot[t * k + j]) * width;
        W dot = 0;
        for (index_t c = 0; c < width; ++c) dot += static_cast<W>(dy[t * width + c]) * static_cast<W>(row[c]);
        d_weights[t * k + j] = dot;
      }
    }
  }
};

}  // namespace nexa
