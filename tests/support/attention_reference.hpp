#pragma once
// The one naive attention reference every policy is tested against: loops over (b, h, i, j)
// straight from the definition, in double, with the key visibility given as a predicate.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "nexa/core/tensor.hpp"
#include "nexa/nn/linear.hpp"

namespace nexa::testing {

// visible(b, i, j): query i of sequence b sees key j.
using Visibility = std::function<bool(index_t b, index_t i, index_t j)>;

// What a query that sees no key gets: uniform weights over all keys (full and flash attention,
// as Hugging Face's finite mask gives) or a zero output (local-global: padding attends nothing).
enum class EmptyRow { uniform, zero };

// Full attention's visibility: non-padding keys, j <= i when causal.
inline Visibility full_visibility(const Tensor<std::int32_t>& padding, bool causal) {
  return [&padding, causal](index_t b, index_t i, index_t j) {
    return (padding.empty() || padding(b, j) != 0) && (!causal || j <= i);
  };
}

// Longformer's: padding sees nothing and is seen by nothing; otherwise |i - j| <= window / 2, or
// i or j global (and j <= i when causal).
inline Visibility local_global_visibility(const Tensor<std::int32_t>& padding, const Tensor<std::int32_t>& global,
                                          index_t window, bool causal) {
  return [&padding, &global, window, causal](index_t b, index_t i, index_t j) {
    const auto pad = [&](index_t t) { return !padding.empty() && padding(b, t) == 0; };
    const auto glob = [&](index_t t) { return !global.empty() && global(b, t) != 0; };
    if (pad(i) || pad(j)) return false;
    if (causal && j > i) return false;
    return std::abs(i - j) <= window / 2 || glob(i) || glob(j);
  };
}

// y [B, S, heads * head_dim] for attention module `a` (any policy) on x [B, S, hidden], with a
// relative bias [heads, 2S - 1] or empty.
template <class Attn>
Tensor<double> naive_attention(Attn& a, const Tensor<double>& x, const Visibility& visible, const Tensor<double>& bias,
                               EmptyRow empty_row) {
  const auto& cfg = a.config();
  const index_t B = x.dim(0), S = x.dim(1), H = cfg.heads, dh = cfg.head_dim, hid = cfg.hidden;
  auto project = [&](Linear<double>& l) {
    Tensor<double> out({B, S, H * dh});
    for (index_t t = 0; t < B * S; ++t)
      for (index_t o = 0; o < H * dh; ++o) {
        double z = cfg.bias ? l.bias.value.data()[o] : 0.0;
        for (index_t c = 0; c < hid; ++c) z += l.weight.value(o, c) * x.data()[t * hid + c];
        out.data()[t * H * dh + o] = z;
      }
    return out;
  };
  const auto q = project(a.query), k = project(a.key), v = project(a.value);
  Tensor<double> y({B, S, H * dh});
  const double scale = cfg.scale ? 1.0 / std::sqrt(double(dh)) : 1.0;
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t i = 0; i < S; ++i) {
        std::vector<double> w(static_cast<std::size_t>(S), 0.0);
        bool any = false;
        for (index_t j = 0; j < S; ++j) any = any || visible(b, i, j);
        if (!any && empty_row == EmptyRow::zero) continue;  // y stays 0
        double mx = -INFINITY, sum = 0;
        for (index_t j = 0; j < S; ++j) {
          if (any && !visible(b, i, j)) continue;
          double z = 0;
          for (index_t d = 0; d < dh; ++d) z += q(b, i, h * dh + d) * k(b, j, h * dh + d);
          z = any ? z * scale + (bias.empty() ? 0.0 : bias(h, j - i + S - 1)) : 0.0;  // uniform when none
          w[static_cast<std::size_t>(j)] = z;
          mx = std::max(mx, z);
        }
        for (index_t j = 0; j < S; ++j)
          if (!any || visible(b, i, j))
            sum += (w[static_cast<std::size_t>(j)] = std::exp(w[static_cast<std::size_t>(j)] - mx));
        for (index_t d = 0; d < dh; ++d) {
          double c = 0;
          for (index_t j = 0; j < S; ++j)
            if (!any || visible(b, i, j)) c += w[static_cast<std::size_t>(j)] / sum * v(b, j, h * dh + d);
          y(b, i, h * dh + d) = c;
        }
      }
  return y;
}

}  // namespace nexa::testing
