// FlashAttentionKernel<cpu> against a naive softmax attention computed in double, with padding,
// causal masks, queries that see no key, and the relative bias and its gradient.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "nexa/backend/cpu/flash_attention.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/core/tensor.hpp"

using nexa::index_t;

namespace {

struct Reference {
  std::vector<double> out, lse, dq, dk, dv, d_bias;
};

// Softmax attention and its gradients, one query at a time, in double.
Reference naive(const nexa::FlashAttentionArgs<float>& a, const std::vector<float>& d_out) {
  const index_t B = a.batch, H = a.heads, S = a.seq, dh = a.head_dim, R = 2 * S - 1;
  Reference ref{std::vector<double>(std::size_t(B * H * S * dh)), std::vector<double>(std::size_t(B * H * S)),
                std::vector<double>(std::size_t(B * H * S * dh)), std::vector<double>(std::size_t(B * H * S * dh)),
                std::vector<double>(std::size_t(B * H * S * dh)), std::vector<double>(std::size_t(H * R))};
  auto at = [](index_t i) { return static_cast<std::size_t>(i); };
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h) {
      const index_t head = (b * H + h) * S * dh;
      for (index_t i = 0; i < S; ++i) {
        std::vector<double> s(at(S), -std::numeric_limits<double>::infinity()), p(at(S), 0.0);
        bool any = false;
        for (index_t j = 0; j < S; ++j) {
          if ((a.padding && a.padding[b * S + j] == 0) || (a.causal && j > i)) continue;
          double dot = 0;
          for (index_t d = 0; d < dh; ++d) dot += double(a.q[head + i * dh + d]) * double(a.k[head + j * dh + d]);
          s[at(j)] = a.scale * dot + (a.relative_bias ? a.relative_bias[h * R + j - i + S - 1] : 0.0);
          any = true;
        }
        double lse = std::numeric_limits<double>::infinity();
        if (any) {
          const double m = *std::max_element(s.begin(), s.end());
          double sum = 0;
          for (index_t j = 0; j < S; ++j) sum += std::exp(s[at(j)] - m);
          for (index_t j = 0; j < S; ++j) p[at(j)] = std::exp(s[at(j)] - m) / sum;
          lse = m + std::log(sum);
        } else {
          std::fill(p.begin(), p.end(), 1.0 / double(S));
        }
        ref.lse[at((b * H + h) * S + i)] = lse;
        double row_dot = 0;
        std::vector<double> dp(at(S), 0.0);
        for (index_t j = 0; j < S; ++j) {
          for (index_t d = 0; d < dh; ++d) {
            ref.out[at(head + i * dh + d)] += p[at(j)] * a.v[head + j * dh + d];
            ref.dv[at(head + j * dh + d)] += p[at(j)] * d_out[at(head + i * dh + d)];
            dp[at(j)] += double(d_out[at(head + i * dh + d)]) * a.v[head + j * dh + d];
          }
          row_dot += p[at(j)] * dp[at(j)];
        }
        if (!any) continue;  // uniform weights do not depend on the scores
        for (index_t j = 0; j < S; ++j) {
          const double ds = p[at(j)] * (dp[at(j)] - row_dot);
          ref.d_bias[at(h * R + j - i + S - 1)] += ds;
          for (index_t d = 0; d < dh; ++d) {
            ref.dq[at(head + i * dh + d)] += a.scale * ds * a.k[head + j * dh + d];
            ref.dk[at(head + j * dh + d)] += a.scale * ds * a.q[head + i * dh + d];
          }
        }
      }
    }
  return ref;
}

double rel_error(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool both_inf = std::isinf(want[i]) && double(got[i]) == want[i];
    const double diff = both_inf ? 0.0 : double(got[i]) - want[i];
    num += diff * diff;
    den += both_inf ? 0.0 : want[i] * want[i];
  }
  // Absolute below a reference norm of 1: with a single key, dq and dk are exactly 0 and the
  // kernel's rounding noise (about 1e-7 at -O1) must not count as an infinite relative error.
  return std::sqrt(num) / std::max(std::sqrt(den), 1.0);
}

void check_kernel(index_t B, index_t H, index_t S, index_t dh, bool causal, std::vector<std::int32_t> padding,
                  bool bias, std::uint64_t seed) {
  CAPTURE(S);
  CAPTURE(causal);
  CAPTURE(bias);
  nexa::Rng rng(seed);
  const index_t n = B * H * S * dh, R = 2 * S - 1;
  auto draw = [&](index_t count) { return nexa::Tensor<float>::randn({count}, rng).to_host(); };
  const auto q = draw(n), k = draw(n), v = draw(n), d_out = draw(n), bias_values = draw(H * R);
  const nexa::FlashAttentionArgs<float> args{B,
                                             H,
                                             S,
                                             dh,
                                             q.data(),
                                             k.data(),
                                             v.data(),
                                             padding.empty() ? nullptr : padding.data(),
                                             bias ? bias_values.data() : nullptr,
                                             0.3f,
                                             causal};
  const auto elements = static_cast<std::size_t>(n);
  std::vector<float> out(elements), lse(static_cast<std::size_t>(B * H * S)), dq(elements), dk(elements), dv(elements),
      d_bias(static_cast<std::size_t>(H * R), 0.f);
  nexa::FlashAttentionKernel<nexa::cpu>::forward(args, out.data(), lse.data());
  nexa::FlashAttentionKernel<nexa::cpu>::backward(args, out.data(), lse.data(), d_out.data(), dq.data(), dk.data(),
                                                  dv.data(), d_bias.data());
  const Reference ref = naive(args, d_out);
  CHECK(rel_error(out, ref.out) < 1e-5);
  CHECK(rel_error(lse, ref.lse) < 1e-5);
  CHECK(rel_error(dq, ref.dq) < 1e-5);
  CHECK(rel_error(dk, ref.dk) < 1e-5);
  CHECK(rel_error(dv, ref.dv) < 1e-5);
  CHECK(rel_error(d_bias, ref.d_bias) < 1e-5);
}

std::vector<std::int32_t> tokens(index_t S, std::vector<std::pair<index_t, index_t>> ranges) {
  std::vector<std::int32_t> mask;
  for (const auto& [start, end] : ranges)
    for (index_t s = 0; s < S; ++s) mask.push_back(start <= s && s < end ? 1 : 0);
  return mask;
}

}  // namespace

TEST_CASE("FlashAttentionKernel<cpu> equals naive softmax attention and its gradients") {
  check_kernel(2, 2, 70, 16, false, {}, true, 81);
  check_kernel(1, 3, 1, 8, false, {}, false, 82);
  check_kernel(2, 2, 70, 16, true, {}, true, 83);
}

TEST_CASE("FlashAttentionKernel<cpu> handles padding, and queries that see no key get uniform weights") {
  // Sequence 1 is all padding; causal with leading padding leaves its first queries blind.
  check_kernel(3, 2, 40, 8, false, tokens(40, {{0, 40}, {5, 30}, {0, 0}}), true, 84);
  check_kernel(2, 2, 75, 8, true, tokens(75, {{9, 60}, {0, 75}}), true, 85);
}
