#pragma once
// FlashAttention: FullAttention's function (the same masking, relative bias, scale and dropout
// elements, so the same seed gives the same output) computed tile by tile as FlashAttention-2
// (Dao 2023, arXiv 2307.08691) does, never forming an [S, S] matrix.
//
// Forward, per (batch, head, block of BlockQ queries): over the key blocks it sees, the tile
// scale * Q K^T + bias (one ops::gemm), masked keys set to -inf, an online softmax (running row
// max m and sum l, the accumulator rescaled by exp(m_old - m_new)), dropout on the tile and
// O += P V. Only O and the log-sum-exp L = m + log l are kept: memory O(B * heads * S * head_dim).
// Key blocks a query block cannot see (all padding, or past the diagonal when causal) cost nothing.
// K (and V in the backward) is copied once per call with each key block transposed, so that every
// tile product is an (N, N) or (N, T) GEMM, the shapes OpenBLAS's small-matrix kernels take.
//
// Backward, per (batch, head): D = rowsum(dO * O) (O the dropped output: sum_j P_ij dP_ij equals
// it through the dropout too), then for each key block and each query block that sees it, the
// tile P = exp(S - L) is recomputed: dV += Dropout(P)^T dO, dP = Dropout(dO V^T), dS = P (dP - D),
// dQ += scale dS K, dK += scale dS^T Q, d(relative bias) += dS by offset. A (batch, head) is one
// task and its partial bias gradient is reduced in batch order, so results do not depend on the
// thread count.
//
// A query that sees no key gets uniform weights over all S keys, as FullAttention's finite mask
// gives (the mean of V, no gradient to q or k, dO / S to every v): such rows always form a prefix
// (all rows of an all-padding sequence, the rows before the first token when causal) and are
// handled apart from the tiles.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include "nexa/attention/attention.hpp"
#include "nexa/attention/score_rows.hpp"
#include "nexa/core/parallel.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/flash_attention_fwd.hpp"
#include "nexa/ops/gemm.hpp"

namespace nexa {

namespace flash_detail {

// One row of a tile; tiles are stored densely ([nq, nk], leading dimension nk), as ops::gemm writes them.
template <class T>
using ConstRowMap = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;
template <class T>
using RowMap = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// What each sequence lets its queries see, computed once per call in O(B * S).
struct KeyLayout {
  index_t block = 0;                  // BlockK
  index_t blocks = 0;                 // key blocks per sequence
  std::vector<index_t> tokens;        // [B, blocks]: non-padding keys in each key block
  std::vector<index_t> blind_prefix;  // [B]: queries 0 .. blind_prefix[b] - 1 see no key

  [[nodiscard]] index_t tokens_in(index_t b, index_t kb) const {
    return tokens[static_cast<std::size_t>(b * blocks + kb)];
  }
  [[nodiscard]] index_t blind_rows(index_t b) const { return blind_prefix[static_cast<std::size_t>(b)]; }
};

template <class T, class D>
KeyLayout key_layout(const AttentionProblem<T, D>& p, index_t block_k) {
  const index_t B = p.batch, S = p.seq;
  KeyLayout layout;
  layout.block = block_k;
  layout.blocks = ceil_div(S, block_k);
  layout.tokens.assign(static_cast<std::size_t>(B * layout.blocks), 0);
  layout.blind_prefix.assign(static_cast<std::size_t>(B), 0);
  for (index_t b = 0; b < B; ++b) {
    index_t first_token = S;
    for (index_t j = S - 1; j >= 0; --j)
      if (!p.is_padding(b, j)) {
        ++layout.tokens[static_cast<std::size_t>(b * layout.blocks + j / block_k)];
        first_token = j;
      }
    // Causal: query i sees a key iff some token is at j <= i. Otherwise every query sees the
    // tokens, if there are any.
    layout.blind_prefix[static_cast<std::size_t>(b)] = p.causal ? first_token : (first_token == S ? S : 0);
  }
  return layout;
}

// One tile: queries [i0, i0 + nq) against keys [j0, j0 + nk) of head (b, h).
struct Tile {
  index_t b = 0, h = 0, i0 = 0, nq = 0, j0 = 0, nk = 0;
  bool has_padding = false;  // some key of the block is padding
  bool masked = false;       // some query does not see some key (padding, or the future when causal)
};

template <class T, class D>
Tile make_tile(const AttentionProblem<T, D>& p, const KeyLayout& keys, index_t b, index_t h, index_t i0, index_t nq,
               index_t kb) {
  const index_t j0 = kb * keys.block;
  Tile t{.b = b, .h = h, .i0 = i0, .nq = nq, .j0 = j0, .nk = std::min(keys.block, p.seq - j0)};
  t.has_padding = keys.tokens_in(b, kb) < t.nk;
  t.masked = t.has_padding || (p.causal && t.j0 + t.nk - 1 > i0);  // the last key after the first query
  return t;
}

// Sets the entries of tile row r whose key the query does not see to `value`.
template <class T, class D>
void mask_row(const AttentionProblem<T, D>& p, const Tile& t, index_t r, T value, T* row) {
  if (t.has_padding)
    for (index_t c = 0; c < t.nk; ++c)
      if (p.is_padding(t.b, t.j0 + c)) row[c] = value;
  if (p.causal) {
    const index_t first_future = std::max<index_t>(t.i0 + r + 1 - t.j0, 0);
    if (first_future < t.nk) std::fill(row + first_future, row + t.nk, value);
  }
}

// Copies each key block [nk, dh] of one head's x [S, dh] to [dh, nk] at the same offset, so that
// products with a block's transpose are plain (N, N) GEMMs: OpenBLAS runs those with its
// small-matrix kernel, about 1.7x faster on 64 x 64 tiles than the packing path a transposed
// operand takes.
template <class T>
void transpose_key_blocks(const T* x, index_t S, index_t dh, index_t block, T* out) {
  using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  for (index_t j0 = 0; j0 < S; j0 += block) {
    const index_t nk = std::min(block, S - j0);
    Eigen::Map<RowMajor>(out + j0 * dh, dh, nk) = Eigen::Map<const RowMajor>(x + j0 * dh, nk, dh).transpose();
  }
}

// tile [nq, nk] = scale * Q_blk K_blk^T + bias, -inf where the query does not see the key;
// k_block_t is K_blk^T [dh, nk].
template <class T, class D>
void score_tile(const AttentionProblem<T, D>& p, const Tile& t, const T* k_block_t, T* tile) {
  const index_t S = p.seq, dh = p.head_dim, bh = t.b * p.heads + t.h;
  ops::gemm(TensorView<const T, D>(p.q + (bh * S + t.i0) * dh, {t.nq, dh}), Trans::N,
            TensorView<const T, D>(k_block_t, {dh, t.nk}), Trans::N, TensorView<T, D>(tile, {t.nq, t.nk}), p.scale,
            T(0));
  for (index_t r = 0; r < t.nq; ++r) {
    T* row = tile + r * t.nk;
    if (p.relative_bias)  // bias[h, j - i] for j = j0 .. is contiguous in the bias row
      RowMap<T>(row, t.nk) += ConstRowMap<T>(p.relative_bias + t.h * (2 * S - 1) + (t.j0 - (t.i0 + r)) + S - 1, t.nk);
    if (t.masked) mask_row(p, t, r, -std::numeric_limits<T>::infinity(), row);
  }
}

// Tile row r <- exp(row - shift), exactly 0 where the key is not seen. A plain Eigen exp, with no
// select (Eigen 3.4 evaluates select one scalar at a time, through std::exp): that exp may give a
// tiny positive value for -inf on some targets, so the masked entries are zeroed again after it.
template <class T, class D>
void exp_row(const AttentionProblem<T, D>& p, const Tile& t, index_t r, T shift, T* row) {
  RowMap<T> s(row, t.nk);
  s = (s - shift).exp();
  if (t.masked) mask_row(p, t, r, T(0), row);
}

// Rows [r0, r0 + n) see no key: their weights are 1 / S over all keys, dropped like any other.
// Fills tile [n, nk] with those weights of key block [j0, j0 + nk).
template <class T, class D>
void uniform_tile(const AttentionProblem<T, D>& p, index_t b, index_t h, index_t r0, index_t n, index_t j0, index_t nk,
                  T* tile) {
  std::fill_n(tile, n * nk, T(1) / static_cast<T>(p.seq));
  for (index_t r = 0; r < n; ++r) p.apply_dropout(tile + r * nk, nk, b, h, r0 + r, j0);
}

}  // namespace flash_detail

template <index_t BlockQ = 64, index_t BlockK = 64>
struct FlashScores {
  static_assert(BlockQ > 0 && BlockK > 0, "FlashScores: block sizes must be positive");
  static constexpr const char* name = "FlashAttention";
  // With D other than cpu the core is FlashAttentionKernel<D> (backend/cuda/flash_attention.hpp).
  static constexpr bool runs_on_device = true;
  // A causal query sees every earlier non-padding key, so KV-cache decoding computes the same.
  static constexpr bool decodes_incrementally = true;

  template <class T, class D>
  struct Saved {
    Tensor<T, D> output;            // [B, heads, S, head_dim], after dropout
    Tensor<acc_t<T>, D> logsumexp;  // [B, heads, S]; +inf for a query that sees no key
  };

  template <class T, class D>
  static void forward(const AttentionProblem<T, D>& p, Saved<T, D>& saved, T* context) {
    if constexpr (!std::same_as<D, cpu>) {
      device_forward(device_args(p, name), saved, context);
    } else {
      host_forward(p, saved, context);
    }
  }

  template <class T, class D>
  static void backward(const AttentionProblem<T, D>& p, const Saved<T, D>& saved, const T* dcontext,
                       AttentionGrads<T> g) {
    check_saved(p, saved, name);
    if constexpr (!std::same_as<D, cpu>) {
      device_backward(device_args(p, name), saved, dcontext, g);
    } else {
      host_backward(p, saved, dcontext, g);
    }
  }

  // The device path, shared with the policies whose device core is this kernel (FullScores,
  // LocalGlobalScores): `who` names the policy in errors.
  template <class T, class D>
  static void check_saved(const AttentionProblem<T, D>& p, const Saved<T, D>& saved, const char* who) {
    const index_t B = p.batch, H = p.heads, S = p.seq, dh = p.head_dim;
    require(saved.output.shape() == Shape{B, H, S, dh} && saved.logsumexp.shape() == Shape{B, H, S}, who,
            "backward needs the saved state of a forward on this problem: output ", Shape{B, H, S, dh},
            " and logsumexp ", Shape{B, H, S}, ", got ", saved.output.shape(), " and ", saved.logsumexp.shape());
  }

  template <class T, class D>
  static FlashAttentionArgs<T> device_args(const AttentionProblem<T, D>& p, const char* who) {
    // The device kernels apply no dropout: attention dropout would change which entries they sum.
    require(!p.dropout_applied(), who,
            "attention dropout is not implemented on this device: expected dropout 0 or set_training(false), got "
            "an applied dropout call");
    return {.batch = p.batch,
            .heads = p.heads,
            .seq = p.seq,
            .head_dim = p.head_dim,
            .q = p.q,
            .k = p.k,
            .v = p.v,
            .padding = p.padding,
            .relative_bias = p.relative_bias,
            .scale = p.scale,
            .causal = p.causal};
  }

  // The kernel writes the saved output; the context is its copy (the module owns both).
  template <class T, class D>
  static void device_forward(const FlashAttentionArgs<T>& args, Saved<T, D>& saved, T* context) {
    saved.output = Tensor<T, D>::uninitialized({args.batch, args.heads, args.seq, args.head_dim});
    saved.logsumexp = Tensor<acc_t<T>, D>::uninitialized({args.batch, args.heads, args.seq});
    FlashAttentionKernel<D>::forward(args, saved.output.data(), saved.logsumexp.data());
    ops::copy(saved.output.cview(), TensorView<T, D>(context, saved.output.shape()));
  }

  template <class T, class D>
  static void device_backward(const FlashAttentionArgs<T>& args, const Saved<T, D>& saved, const T* dcontext,
                              AttentionGrads<T> g) {
    FlashAttentionKernel<D>::backward(args, saved.output.data(), saved.logsumexp.data(), dcontext, g.dq, g.dk, g.dv,
                                      g.d_relative_bias);
  }

 private:
  template <class T, class D>
  static void host_forward(const AttentionProblem<T, D>& p, Saved<T, D>& saved, T* context) {
    static_assert(std::same_as<T, acc_t<T>>, "FlashAttention: tiles are computed in T, which must be float or double");
    const index_t B = p.batch, H = p.heads, S = p.seq, dh = p.head_dim;
    const index_t q_blocks = flash_detail::ceil_div(S, BlockQ);
    const flash_detail::KeyLayout keys = flash_detail::key_layout(p, BlockK);
    saved.output = Tensor<T, D>::uninitialized({B, H, S, dh});
    saved.logsumexp = Tensor<acc_t<T>, D>::uninitialized({B, H, S});
    auto keys_t = Tensor<T, D>::uninitialized({B, H, S, dh});  // every key block transposed, O(S)
    NEXA_PARALLEL_FOR_IF(B * H > 1 && B * H * S * dh > parallel_grain)
    for (index_t bh = 0; bh < B * H; ++bh)
      flash_detail::transpose_key_blocks(p.k + bh * S * dh, S, dh, BlockK, keys_t.data() + bh * S * dh);
    NEXA_PARALLEL_FOR_IF(B * H * q_blocks > 1 && B * H * S * S * dh > parallel_grain)
    for (index_t task = 0; task < B * H * q_blocks; ++task) {
      const index_t bh = task / q_blocks, i0 = (task % q_blocks) * BlockQ;
      forward_block(p, keys, bh / H, bh % H, i0, std::min(BlockQ, S - i0), keys_t.data() + bh * S * dh, saved);
      const index_t first = (bh * S + i0) * dh, n = std::min(BlockQ, S - i0) * dh;
      std::copy_n(saved.output.data() + first, n, context + first);
    }
  }

  template <class T, class D>
  static void host_backward(const AttentionProblem<T, D>& p, const Saved<T, D>& saved, const T* dcontext,
                            AttentionGrads<T> g) {
    static_assert(std::same_as<T, acc_t<T>>, "FlashAttention: tiles are computed in T, which must be float or double");
    const index_t B = p.batch, H = p.heads, S = p.seq, dh = p.head_dim, R = 2 * S - 1;
    const flash_detail::KeyLayout keys = flash_detail::key_layout(p, BlockK);
    std::vector<T> bias_partial(g.d_relative_bias ? static_cast<std::size_t>(B * H * R) : 0, T(0));
    NEXA_PARALLEL_FOR_IF(B * H > 1 && B * H * S * S * dh > parallel_grain)
    for (index_t bh = 0; bh < B * H; ++bh)
      backward_head(p, keys, bh / H, bh % H, saved, dcontext, g,
                    g.d_relative_bias ? bias_partial.data() + bh * R : nullptr);
    if (g.d_relative_bias) attention_detail::reduce_bias_grad(bias_partial, B, H, S, g.d_relative_bias);
  }

  // One query block [i0, i0 + nq) of head (b, h): writes its rows of saved.output and logsumexp.
  // keys_t: the head's key blocks transposed (transpose_key_blocks).
  template <class T, class D>
  static void forward_block(const AttentionProblem<T, D>& p, const flash_detail::KeyLayout& keys, index_t b, index_t h,
                            index_t i0, index_t nq, const T* keys_t, Saved<T, D>& saved) {
    using flash_detail::RowMap;
    constexpr T unseen = -std::numeric_limits<T>::infinity();
    const index_t S = p.seq, dh = p.head_dim, bh = b * p.heads + h;
    const T* v = p.v + bh * S * dh;
    T* out = saved.output.data() + (bh * S + i0) * dh;  // the accumulator O [nq, dh]
    T* lse = saved.logsumexp.data() + bh * S + i0;
    std::fill_n(out, nq * dh, T(0));
    // A Tensor, not a std::vector: its 64-byte alignment fixes where Eigen's vectorised row sums
    // start their packets, so the sums do not depend on which thread's heap served the task.
    auto tile = Tensor<T, D>::uninitialized({BlockQ, BlockK});
    std::vector<T> row_max(static_cast<std::size_t>(nq), unseen), row_sum(static_cast<std::size_t>(nq), T(0));

    // Causal: key blocks starting after the block's last query are all future.
    const index_t k_end = p.causal ? (i0 + nq - 1) / BlockK + 1 : keys.blocks;
    for (index_t kb = 0; kb < k_end; ++kb) {
      if (keys.tokens_in(b, kb) == 0) continue;
      const flash_detail::Tile t = flash_detail::make_tile(p, keys, b, h, i0, nq, kb);
      flash_detail::score_tile(p, t, keys_t + t.j0 * dh, tile.data());
      for (index_t r = 0; r < nq; ++r) {
        const auto ur = static_cast<std::size_t>(r);
        T* row = tile.data() + r * t.nk;
        const T m_new = std::max(row_max[ur], RowMap<T>(row, t.nk).maxCoeff());
        // A row that has seen no key yet keeps a zero accumulator: shifting by 0 keeps -inf at -inf.
        const T shift = m_new == unseen ? T(0) : m_new;
        const T rescale = m_new == row_max[ur] ? T(1) : std::exp(row_max[ur] - shift);  // 0 while nothing was seen
        flash_detail::exp_row(p, t, r, shift, row);
        row_sum[ur] = rescale * row_sum[ur] + RowMap<T>(row, t.nk).sum();  // the denominator, before dropout
        row_max[ur] = m_new;
        if (rescale != T(1)) RowMap<T>(out + r * dh, dh) *= rescale;
        p.apply_dropout(row, t.nk, b, h, i0 + r, t.j0);
      }
      ops::gemm(TensorView<const T, D>(tile.data(), {nq, t.nk}), Trans::N,
                TensorView<const T, D>(v + t.j0 * dh, {t.nk, dh}), Trans::N, TensorView<T, D>(out, {nq, dh}), T(1),
                T(1));
    }

    const index_t blind_end = std::min(keys.blind_rows(b), i0 + nq);
    for (index_t r = 0; r < nq; ++r) {
      const auto ur = static_cast<std::size_t>(r);
      if (i0 + r < blind_end) {
        lse[r] = std::numeric_limits<T>::infinity();  // makes every recomputed P of the row 0
      } else {
        RowMap<T>(out + r * dh, dh) *= T(1) / row_sum[ur];
        lse[r] = row_max[ur] + std::log(row_sum[ur]);
      }
    }
    // Queries that see no key: O = Dropout(1 / S) V over every key block.
    if (blind_end > i0)
      for (index_t kb = 0; kb < keys.blocks; ++kb) {
        const index_t j0 = kb * BlockK, nk = std::min(BlockK, S - j0), n = blind_end - i0;
        flash_detail::uniform_tile(p, b, h, i0, n, j0, nk, tile.data());
        ops::gemm(TensorView<const T, D>(tile.data(), {n, nk}), Trans::N, TensorView<const T, D>(v + j0 * dh, {nk, dh}),
                  Trans::N, TensorView<T, D>(out, {n, dh}), T(1), T(1));
      }
  }

  // All gradients of head (b, h): dq, dk, dv slices overwritten, its bias gradient added to
  // bias_partial [2S - 1] (when not null).
  template <class T, class D>
  static void backward_head(const AttentionProblem<T, D>& p, const flash_detail::KeyLayout& keys, index_t b, index_t h,
                            const Saved<T, D>& saved, const T* dcontext, AttentionGrads<T> g, T* bias_partial) {
    using flash_detail::RowMap;
    using MatrixMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
    const index_t S = p.seq, dh = p.head_dim, bh = b * p.heads + h, head = bh * S * dh;
    const T *q = p.q + head, *k = p.k + head, *v = p.v + head, *dout = dcontext + head;
    const T* lse = saved.logsumexp.data() + bh * S;
    T *dq = g.dq + head, *dk = g.dk + head, *dv = g.dv + head;
    std::fill_n(dq, S * dh, T(0));
    std::fill_n(dk, S * dh, T(0));
    std::fill_n(dv, S * dh, T(0));
    // D_i = dO_i . O_i = sum_j P_ij dP_ij: the softmax backward's row term.
    std::vector<T> row_dot(static_cast<std::size_t>(S));
    Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(row_dot.data(), S) =
        (MatrixMap(dout, S, dh) * MatrixMap(saved.output.data() + head, S, dh)).rowwise().sum();
    // Key and value blocks transposed, for (N, N) products (transpose_key_blocks).
    auto keys_t = Tensor<T, D>::uninitialized({S, dh}), values_t = Tensor<T, D>::uninitialized({S, dh});
    flash_detail::transpose_key_blocks(k, S, dh, BlockK, keys_t.data());
    flash_detail::transpose_key_blocks(v, S, dh, BlockK, values_t.data());
    // Aligned scratch (see forward_block).
    auto probs = Tensor<T, D>::uninitialized({BlockQ, BlockK}), dprobs = Tensor<T, D>::uninitialized({BlockQ, BlockK});
    const index_t q_blocks = flash_detail::ceil_div(S, BlockQ);

    for (index_t kb = 0; kb < keys.blocks; ++kb) {
      const index_t j0 = kb * BlockK, nk = std::min(BlockK, S - j0);
      const TensorView<const T, D> k_block(k + j0 * dh, {nk, dh}), v_block_t(values_t.data() + j0 * dh, {dh, nk});
      const TensorView<T, D> dk_block(dk + j0 * dh, {nk, dh}), dv_block(dv + j0 * dh, {nk, dh});
      const index_t tokens = keys.tokens_in(b, kb);
      // Causal: query blocks ending before j0 see none of these keys.
      for (index_t qb = (p.causal ? j0 / BlockQ : 0); tokens > 0 && qb < q_blocks; ++qb) {
        const index_t i0 = qb * BlockQ, nq = std::min(BlockQ, S - i0);
        const TensorView<const T, D> q_block(q + i0 * dh, {nq, dh}), dout_block(dout + i0 * dh, {nq, dh});
        const flash_detail::Tile t = flash_detail::make_tile(p, keys, b, h, i0, nq, kb);
        flash_detail::score_tile(p, t, keys_t.data() + j0 * dh, probs.data());
        for (index_t r = 0; r < nq; ++r) flash_detail::exp_row(p, t, r, lse[i0 + r], probs.data() + r * nk);
        const T* dropped = probs.data();
        if (p.dropout_applied()) {
          std::copy_n(probs.data(), nq * nk, dprobs.data());
          for (index_t r = 0; r < nq; ++r) p.apply_dropout(dprobs.data() + r * nk, nk, b, h, i0 + r, j0);
          dropped = dprobs.data();
        }
        ops::gemm(TensorView<const T, D>(dropped, {nq, nk}), Trans::T, dout_block, Trans::N, dv_block, T(1), T(1));
        ops::gemm(dout_block, Trans::N, v_block_t, Trans::N, TensorView<T, D>(dprobs.data(), {nq, nk}), T(1), T(0));
        // dS = P (Dropout(dP) - D), in place of P; masked entries have P = 0.
        for (index_t r = 0; r < nq; ++r) {
          const index_t i = i0 + r;
          RowMap<T> ds(probs.data() + r * nk, nk);
          p.apply_dropout(dprobs.data() + r * nk, nk, b, h, i, j0);
          ds *= RowMap<T>(dprobs.data() + r * nk, nk) - row_dot[static_cast<std::size_t>(i)];
          if (bias_partial) RowMap<T>(bias_partial + (j0 - i) + S - 1, nk) += ds;
        }
        const TensorView<const T, D> ds_tile(probs.data(), {nq, nk});
        ops::gemm(ds_tile, Trans::N, k_block, Trans::N, TensorView<T, D>(dq + i0 * dh, {nq, dh}), p.scale, T(1));
        ops::gemm(ds_tile, Trans::T, q_block, Trans::N, dk_block, p.scale, T(1));
      }
      // Queries that see no key weigh every key 1 / S: dV += Dropout(1 / S)^T dO over their rows.
      for (index_t r0 = 0; r0 < keys.blind_rows(b); r0 += BlockQ) {
        const index_t n = std::min(BlockQ, keys.blind_rows(b) - r0);
        flash_detail::uniform_tile(p, b, h, r0, n, j0, nk, probs.data());
        ops::gemm(TensorView<const T, D>(probs.data(), {n, nk}), Trans::T,
                  TensorView<const T, D>(dout + r0 * dh, {n, dh}), Trans::N, dv_block, T(1), T(1));
      }
    }
  }
};

template <index_t BlockQ = 64, index_t BlockK = 64, class T = float, class D = cpu>
using FlashAttention = Attention<FlashScores<BlockQ, BlockK>, T, D>;

}  // namespace nexa
