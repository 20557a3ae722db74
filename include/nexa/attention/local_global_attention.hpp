#pragma once
// LocalGlobalAttention<Window>: Longformer's sliding-window + global attention as a policy of
// Attention (attention.hpp).
//
// Who sees whom, for each sequence b:
//   - a non-padding query i sees the non-padding keys j with |i - j| <= Window / 2 (its window);
//   - a global token (problem.global) sees every non-padding key, and every non-padding query
//     sees every global token;
//   - padding sees nothing and is seen by nothing: its output row is exactly 0 and it receives
//     and passes no gradient (a padding token marked global is still padding);
//   - causal additionally hides the keys j > i, global ones included (a causal global token sees
//     every non-padding key j <= i).
// A non-padding query always sees itself, so no softmax row is ever empty.
//
// Scores, relative bias, dropout and softmax are full attention's (full_attention.hpp), restricted
// to the visible keys: dropout numbers element (b, h, i, j) as a virtual [B, H, S, S] call does,
// so with a window of at least 2S this policy computes exactly what FullAttention computes for the
// same seed (on non-padding rows).
//
// Cost and memory are O(S * (Window + G)) per (batch, head), G the number of global tokens; no
// S x S matrix is ever formed. Saved keeps the probabilities (before dropout):
//   band           [B, H, S, width]: query i's window, key i + lo + t at t, lo = -(Window / 2)
//                  and width 2 * (Window / 2) + 1 (Window / 2 + 1 when causal), both clamped to S;
//   global_columns [B, H, S, G]: a non-global query's probability of each global key outside its
//                  window (inside, the window already holds it);
//   global_rows    [B, H, G, S]: the full rows of the global queries.
// Entries of keys a query does not see, and the band and column rows of global and padding
// queries, are 0. G is the largest number of non-padding global tokens of a sequence. The backward
// keeps the score gradients in the same layout (scratch of the same size) rather than recomputing.
//
// Queries are processed in blocks of 64: a block's scores against the keys its windows reach
// ([64, 64 + Window]) are one gemm, then masked to each query's window, which keeps the cost close
// to GEMM speed. The forward and the first backward pass split work over (batch, head, query
// block); dk and dv are summed per key block in a second pass that reads the stored score
// gradients, so every output element is written by one task in a fixed order: results do not
// depend on the thread count.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "nexa/attention/attention.hpp"
#include "nexa/attention/flash_attention.hpp"
#include "nexa/attention/score_rows.hpp"
#include "nexa/core/error.hpp"
#include "nexa/core/parallel.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/gemm.hpp"

namespace nexa {

namespace local_global_detail {

// Queries (and, in the backward, keys) per block: one gemm per block against the keys it reaches.
inline constexpr index_t block_size = 64;

// The offsets j - i a non-global query's window covers: [lo, hi]. Clamped to S - 1, so a window
// wider than the sequence costs no more than full attention; hi = 0 when causal.
struct Band {
  index_t lo = 0, hi = 0;
  [[nodiscard]] index_t width() const { return hi - lo + 1; }
};

// The non-padding global tokens of every sequence, in position order.
struct GlobalTokens {
  index_t max_count = 0;          // G: the most of any sequence
  std::vector<index_t> count;     // [B]
  std::vector<index_t> position;  // [B, G]: positions, first count[b] used
  std::vector<index_t> slot;      // [B, S]: index into position, -1 for non-global tokens

  template <class T, class D>
  explicit GlobalTokens(const AttentionProblem<T, D>& p)
      : count(static_cast<std::size_t>(p.batch), 0), slot(static_cast<std::size_t>(p.batch * p.seq), -1) {
    for (index_t b = 0; b < p.batch; ++b) {
      for (index_t j = 0; j < p.seq; ++j)
        if (p.is_global(b, j) && !p.is_padding(b, j))
          slot[static_cast<std::size_t>(b * p.seq + j)] = count[static_cast<std::size_t>(b)]++;
      max_count = std::max(max_count, count[static_cast<std::size_t>(b)]);
    }
    position.assign(static_cast<std::size_t>(p.batch * max_count), 0);
    for (index_t b = 0; b < p.batch; ++b)
      for (index_t j = 0; j < p.seq; ++j)
        if (const index_t s = slot[static_cast<std::size_t>(b * p.seq + j)]; s >= 0)
          position[static_cast<std::size_t>(b * max_count + s)] = j;
  }
  [[nodiscard]] const index_t* positions(index_t b) const { return position.data() + b * max_count; }
  [[nodiscard]] index_t slot_of(index_t b, index_t seq, index_t i) const {
    return slot[static_cast<std::size_t>(b * seq + i)];
  }
};

// Scratch memory, 64-byte aligned as Tensor's: Eigen's vectorised reductions (softmax_row, small
// products) sum in an order that depends on where a row starts relative to the vector width, so
// std::vector storage, placed wherever malloc puts it, would make results vary from run to run.
template <class T>
Tensor<T, cpu> scratch(index_t n) {
  return Tensor<T, cpu>::uninitialized({n});
}
template <class T>
Tensor<T, cpu> zeroed_scratch(index_t n) {
  return Tensor<T, cpu>({n});
}

// Copies rows `rows[0..n)` of the [*, dh] matrix `src` into a contiguous [n, dh] matrix.
template <class T>
Tensor<T, cpu> gather_rows(const T* src, const index_t* rows, index_t n, index_t dh) {
  Tensor<T, cpu> out = scratch<T>(n * dh);
  for (index_t r = 0; r < n; ++r) std::copy_n(src + rows[r] * dh, dh, out.data() + r * dh);
  return out;
}

template <class T, class D>
TensorView<const T, D> matrix(const T* data, index_t rows, index_t cols) {
  return TensorView<const T, D>(data, {rows, cols});
}
template <class T, class D>
TensorView<T, D> matrix(T* data, index_t rows, index_t cols) {
  return TensorView<T, D>(data, {rows, cols});
}

}  // namespace local_global_detail

namespace local_global_detail {
template <class T, class D>
struct HostSaved {
  Tensor<T, D> band;            // [B, H, S, band width]
  Tensor<T, D> global_columns;  // [B, H, S, G]
  Tensor<T, D> global_rows;     // [B, H, G, S]
};
}  // namespace local_global_detail

// On a device the FlashAttention-2 kernel computes the same function with the window and the
// global flags as its mask (padding queries output 0 there too): memory O(S), but every score tile
// is visited, so the cost is that of full attention. Applied attention dropout raises there.
template <index_t Window>
struct LocalGlobalScores {
  static_assert(Window >= 0, "LocalGlobalScores: Window must be non-negative");
  static constexpr const char* name = "LocalGlobalAttention";
  static constexpr bool runs_on_device = true;
  using DeviceCore = FlashScores<>;

  template <class T, class D>
  using Saved = std::conditional_t<std::same_as<D, cpu>, local_global_detail::HostSaved<T, D>,
                                   typename DeviceCore::template Saved<T, D>>;

  template <class T, class D>
  static void forward(const AttentionProblem<T, D>& p, Saved<T, D>& saved, T* context) {
    check_problem(p);
    if constexpr (!std::same_as<D, cpu>) {
      DeviceCore::device_forward(device_args(p), saved, context);
    } else {
      host_forward(p, saved, context);
    }
  }

  template <class T, class D>
  static void backward(const AttentionProblem<T, D>& p, const Saved<T, D>& saved, const T* dcontext,
                       AttentionGrads<T> g) {
    check_problem(p);
    if constexpr (!std::same_as<D, cpu>) {
      DeviceCore::check_saved(p, saved, name);
      DeviceCore::device_backward(device_args(p), saved, dcontext, g);
    } else {
      host_backward(p, saved, dcontext, g);
    }
  }

 private:
  template <class T, class D>
  static FlashAttentionArgs<T> device_args(const AttentionProblem<T, D>& p) {
    FlashAttentionArgs<T> args = DeviceCore::device_args(p, name);
    args.half_window = Window / 2;
    args.global = p.global;
    return args;
  }

  template <class T, class D>
  static void host_forward(const AttentionProblem<T, D>& p, Saved<T, D>& saved, T* context) {
    const index_t B = p.batch, H = p.heads, S = p.seq;
    const local_global_detail::Band band = band_of(p);
    const local_global_detail::GlobalTokens globals(p);
    const index_t G = globals.max_count;
    // Zeroed: entries of keys a query does not see stay 0.
    saved.band = Tensor<T, D>({B, H, S, band.width()});
    saved.global_columns = Tensor<T, D>({B, H, S, G});
    saved.global_rows = Tensor<T, D>({B, H, G, S});
    const index_t blocks = block_count(S), tasks = B * H * blocks;
    NEXA_PARALLEL_FOR_IF(tasks > 1 && work(p, band, G) > parallel_grain)
    for (index_t task = 0; task < tasks; ++task)
      forward_block(p, band, globals, saved, context, task / blocks, task % blocks);
  }

  template <class T, class D>
  static void host_backward(const AttentionProblem<T, D>& p, const Saved<T, D>& saved, const T* dcontext,
                            AttentionGrads<T> g) {
    const index_t B = p.batch, H = p.heads, S = p.seq;
    const local_global_detail::Band band = band_of(p);
    const local_global_detail::GlobalTokens globals(p);
    const index_t G = globals.max_count;
    require_shape(saved.band, Shape{B, H, S, band.width()}, name, "saved window probabilities (from this forward)");
    require_shape(saved.global_columns, Shape{B, H, S, G}, name, "saved global-key probabilities");
    require_shape(saved.global_rows, Shape{B, H, G, S}, name, "saved global-query probabilities");

    // Score gradients laid out as Saved's probabilities: O(S * (Window + G)) per (batch, head).
    Scratch<T> ds{local_global_detail::zeroed_scratch<T>(saved.band.numel()),
                  local_global_detail::zeroed_scratch<T>(saved.global_columns.numel()),
                  local_global_detail::zeroed_scratch<T>(saved.global_rows.numel())};
    const index_t blocks = block_count(S), tasks = B * H * blocks;
    // Unused where OpenMP is off (a vendored build without -fopenmp): the loops then run serially.
    [[maybe_unused]] const bool parallel = tasks > 1 && work(p, band, G) > parallel_grain;
    // Pass 1, per query block: score gradients and dq (each query belongs to one block).
    NEXA_PARALLEL_FOR_IF(parallel)
    for (index_t task = 0; task < tasks; ++task)
      backward_query_block(p, band, globals, saved, dcontext, g.dq, ds, task / blocks, task % blocks);
    // Pass 2, per key block: dk and dv (each key belongs to one block).
    NEXA_PARALLEL_FOR_IF(parallel)
    for (index_t task = 0; task < tasks; ++task)
      backward_key_block(p, band, globals, saved, dcontext, g, ds, task / blocks, task % blocks);
    if (g.d_relative_bias) reduce_bias_grad(p, band, globals, ds, g.d_relative_bias);
  }

  template <class T>
  struct Scratch {
    Tensor<T, cpu> band, global_columns, global_rows;  // d(scores), laid out as Saved
  };

  template <class T, class D>
  static void check_problem(const AttentionProblem<T, D>& p) {
    require(p.batch > 0 && p.heads > 0 && p.seq > 0 && p.head_dim > 0, name,
            "batch, heads, seq and head_dim must be positive, got ", p.batch, ", ", p.heads, ", ", p.seq, ", ",
            p.head_dim);
    require(p.q && p.k && p.v, name, "q, k and v must be given");
  }

  template <class T, class D>
  static local_global_detail::Band band_of(const AttentionProblem<T, D>& p) {
    const index_t half = std::min<index_t>(Window / 2, p.seq - 1);
    return {.lo = -half, .hi = p.causal ? 0 : half};
  }

  static index_t block_count(index_t S) {
    return (S + local_global_detail::block_size - 1) / local_global_detail::block_size;
  }

  // Multiply-adds of one pass, to decide whether forking pays.
  template <class T, class D>
  static index_t work(const AttentionProblem<T, D>& p, const local_global_detail::Band& band, index_t G) {
    return p.batch * p.heads * p.seq * (band.width() + local_global_detail::block_size + 2 * G) * p.head_dim;
  }

  // The keys [first, last] of query i's window that exist.
  static std::pair<index_t, index_t> window_keys(const local_global_detail::Band& band, index_t i, index_t S) {
    return {std::max<index_t>(0, i + band.lo), std::min(S - 1, i + band.hi)};
  }

  // Probabilities and context of queries [i0, i0 + 64) of (b, h).
  template <class T, class D>
  static void forward_block(const AttentionProblem<T, D>& p, const local_global_detail::Band& band,
                            const local_global_detail::GlobalTokens& globals, Saved<T, D>& saved, T* context,
                            index_t bh, index_t block) {
    using local_global_detail::matrix;
    const index_t H = p.heads, S = p.seq, dh = p.head_dim, bw = band.width(), G = globals.max_count;
    const index_t b = bh / H, h = bh % H;
    const index_t i0 = block * local_global_detail::block_size;
    const index_t i1 = std::min(S, i0 + local_global_detail::block_size), nq = i1 - i0;
    // Keys the block's windows reach.
    const index_t k0 = std::max<index_t>(0, i0 + band.lo), k1 = std::min(S, i1 + band.hi), nk = k1 - k0;
    const T* q = p.q + bh * S * dh;
    const T* k = p.k + bh * S * dh;
    const T* v = p.v + bh * S * dh;
    T* ctx = context + bh * S * dh;
    const index_t Gb = globals.count[static_cast<std::size_t>(b)];
    const index_t* global_pos = globals.positions(b);
    const Tensor<T, cpu> global_k = local_global_detail::gather_rows(k, global_pos, Gb, dh);
    const Tensor<T, cpu> global_v = local_global_detail::gather_rows(v, global_pos, Gb, dh);

    // Scores against the window keys [nq, nk] and the global keys [nq, Gb]; both are then
    // overwritten with the dropped probabilities that multiply V.
    Tensor<T, cpu> local = local_global_detail::scratch<T>(nq * nk);
    Tensor<T, cpu> to_global = local_global_detail::scratch<T>(nq * Gb);
    ops::gemm(matrix<T, D>(q + i0 * dh, nq, dh), Trans::N, matrix<T, D>(k + k0 * dh, nk, dh), Trans::T,
              matrix<T, D>(local.data(), nq, nk), p.scale, T(0));
    if (Gb > 0)
      ops::gemm(matrix<T, D>(q + i0 * dh, nq, dh), Trans::N, matrix<T, D>(global_k.data(), Gb, dh), Trans::T,
                matrix<T, D>(to_global.data(), nq, Gb), p.scale, T(0));

    const T masked = std::numeric_limits<T>::lowest();  // softmax gives it exactly 0
    Tensor<T, cpu> row = local_global_detail::scratch<T>(bw + Gb);
    std::vector<index_t> global_queries;
    T* band_probs = saved.band.data() + bh * S * bw;
    T* column_probs = saved.global_columns.data() + bh * S * G;
    for (index_t i = i0; i < i1; ++i) {
      T* local_row = local.data() + (i - i0) * nk;
      T* global_row = to_global.data() + (i - i0) * Gb;
      const bool is_global = globals.slot_of(b, S, i) >= 0;
      if (is_global) global_queries.push_back(i);
      if (is_global || p.is_padding(b, i)) {  // no window row: 0 (padding) or replaced below (global)
        std::fill_n(local_row, nk, T(0));
        std::fill_n(global_row, Gb, T(0));
        continue;
      }
      // One softmax over the window keys followed by the global keys outside the window.
      for (index_t t = 0; t < bw; ++t) {
        const index_t j = i + band.lo + t;
        const bool seen = 0 <= j && j < S && !p.is_padding(b, j);
        row.data()[t] = seen ? local_row[j - k0] + p.bias(h, i, j) : masked;
      }
      for (index_t gi = 0; gi < Gb; ++gi) {
        const index_t j = global_pos[gi];
        const bool outside_window = j - i < band.lo || j - i > band.hi;
        row.data()[bw + gi] = outside_window && (!p.causal || j <= i) ? global_row[gi] + p.bias(h, i, j) : masked;
      }
      attention_detail::softmax_row(row.data(), bw + Gb);
      std::copy_n(row.data(), bw, band_probs + i * bw);
      std::copy_n(row.data() + bw, Gb, column_probs + i * G);

      const auto [first, last] = window_keys(band, i, S);
      std::fill_n(local_row, nk, T(0));
      std::copy_n(row.data() + (first - i - band.lo), last - first + 1, local_row + (first - k0));
      p.apply_dropout(local_row + (first - k0), last - first + 1, b, h, i, first);
      for (index_t gi = 0; gi < Gb; ++gi) {
        global_row[gi] = row.data()[bw + gi];
        if (global_row[gi] != T(0)) p.apply_dropout(global_row + gi, 1, b, h, i, global_pos[gi]);
      }
    }
    ops::gemm(matrix<T, D>(local.data(), nq, nk), Trans::N, matrix<T, D>(v + k0 * dh, nk, dh), Trans::N,
              matrix<T, D>(ctx + i0 * dh, nq, dh));
    if (Gb > 0)
      ops::gemm(matrix<T, D>(to_global.data(), nq, Gb), Trans::N, matrix<T, D>(global_v.data(), Gb, dh), Trans::N,
                matrix<T, D>(ctx + i0 * dh, nq, dh), T(1), T(1));
    if (!global_queries.empty()) forward_global_queries(p, globals, saved, ctx, bh, global_queries);
  }

  // Full rows of the global queries `queries` of (b, h): they see every non-padding key.
  template <class T, class D>
  static void forward_global_queries(const AttentionProblem<T, D>& p, const local_global_detail::GlobalTokens& globals,
                                     Saved<T, D>& saved, T* ctx, index_t bh, const std::vector<index_t>& queries) {
    using local_global_detail::matrix;
    const index_t H = p.heads, S = p.seq, dh = p.head_dim, G = globals.max_count;
    const index_t b = bh / H, h = bh % H, n = static_cast<index_t>(queries.size());
    const T* k = p.k + bh * S * dh;
    const T* v = p.v + bh * S * dh;
    const Tensor<T, cpu> q = local_global_detail::gather_rows(p.q + bh * S * dh, queries.data(), n, dh);
    Tensor<T, cpu> rows = local_global_detail::scratch<T>(n * S);
    ops::gemm(matrix<T, D>(q.data(), n, dh), Trans::N, matrix<T, D>(k, S, dh), Trans::T,
              matrix<T, D>(rows.data(), n, S), p.scale, T(0));
    for (index_t r = 0; r < n; ++r) {
      const index_t i = queries[static_cast<std::size_t>(r)];
      T* row = rows.data() + r * S;
      for (index_t j = 0; j < S; ++j) {
        const bool seen = !p.is_padding(b, j) && (!p.causal || j <= i);
        row[j] = seen ? row[j] + p.bias(h, i, j) : std::numeric_limits<T>::lowest();
      }
      attention_detail::softmax_row(row, S);
      std::copy_n(row, S, saved.global_rows.data() + (bh * G + globals.slot_of(b, S, i)) * S);
      p.apply_dropout(row, S, b, h, i, 0);
    }
    Tensor<T, cpu> out = local_global_detail::scratch<T>(n * dh);
    ops::gemm(matrix<T, D>(rows.data(), n, S), Trans::N, matrix<T, D>(v, S, dh), Trans::N,
              matrix<T, D>(out.data(), n, dh));
    for (index_t r = 0; r < n; ++r)
      std::copy_n(out.data() + r * dh, dh, ctx + queries[static_cast<std::size_t>(r)] * dh);
  }

  // Pass 1 for queries [i0, i0 + 64) of (b, h): d(scores) into `ds` and dq of those queries.
  // Softmax backward per row: ds = P * (dP - <P, dP>) with dP = Dropout'(dctx V^T); keys the
  // query does not see have P = 0 exactly, so they get no gradient.
  template <class T, class D>
  static void backward_query_block(const AttentionProblem<T, D>& p, const local_global_detail::Band& band,
                                   const local_global_detail::GlobalTokens& globals, const Saved<T, D>& saved,
                                   const T* dcontext, T* dq_out, Scratch<T>& ds, index_t bh, index_t block) {
    using A = acc_t<T>;
    using local_global_detail::matrix;
    const index_t H = p.heads, S = p.seq, dh = p.head_dim, bw = band.width(), G = globals.max_count;
    const index_t b = bh / H, h = bh % H;
    const index_t i0 = block * local_global_detail::block_size;
    const index_t i1 = std::min(S, i0 + local_global_detail::block_size), nq = i1 - i0;
    const index_t k0 = std::max<index_t>(0, i0 + band.lo), k1 = std::min(S, i1 + band.hi), nk = k1 - k0;
    const T* k = p.k + bh * S * dh;
    const T* v = p.v + bh * S * dh;
    const T* dctx = dcontext + bh * S * dh;
    T* dq = dq_out + bh * S * dh;
    const index_t Gb = globals.count[static_cast<std::size_t>(b)];
    const index_t* global_pos = globals.positions(b);
    const Tensor<T, cpu> global_k = local_global_detail::gather_rows(k, global_pos, Gb, dh);
    const Tensor<T, cpu> global_v = local_global_detail::gather_rows(v, global_pos, Gb, dh);

    // d(dropped probabilities) = dctx V^T, against the window keys and the global keys; then
    // overwritten in place with d(scores) (0 outside each query's visible keys).
    Tensor<T, cpu> local = local_global_detail::scratch<T>(nq * nk);
    Tensor<T, cpu> to_global = local_global_detail::scratch<T>(nq * Gb);
    ops::gemm(matrix<T, D>(dctx + i0 * dh, nq, dh), Trans::N, matrix<T, D>(v + k0 * dh, nk, dh), Trans::T,
              matrix<T, D>(local.data(), nq, nk));
    if (Gb > 0)
      ops::gemm(matrix<T, D>(dctx + i0 * dh, nq, dh), Trans::N, matrix<T, D>(global_v.data(), Gb, dh), Trans::T,
                matrix<T, D>(to_global.data(), nq, Gb));

    std::vector<index_t> global_queries;
    const T* band_probs = saved.band.data() + bh * S * bw;
    const T* column_probs = saved.global_columns.data() + bh * S * G;
    for (index_t i = i0; i < i1; ++i) {
      T* local_row = local.data() + (i - i0) * nk;
      T* global_row = to_global.data() + (i - i0) * Gb;
      const bool is_global = globals.slot_of(b, S, i) >= 0;
      if (is_global) global_queries.push_back(i);
      if (is_global || p.is_padding(b, i)) {
        std::fill_n(local_row, nk, T(0));
        std::fill_n(global_row, Gb, T(0));
        continue;
      }
      const T* pb = band_probs + i * bw;
      const T* pg = column_probs + i * G;
      const auto [first, last] = window_keys(band, i, S);
      T* window = local_row + (first - k0);  // keys first..last
      const T* window_probs = pb + (first - i - band.lo);
      const index_t n = last - first + 1;
      p.apply_dropout(window, n, b, h, i, first);
      for (index_t gi = 0; gi < Gb; ++gi)
        if (pg[gi] != T(0)) p.apply_dropout(global_row + gi, 1, b, h, i, global_pos[gi]);
      A dot = 0;
      for (index_t t = 0; t < n; ++t) dot += A(window_probs[t]) * A(window[t]);
      for (index_t gi = 0; gi < Gb; ++gi) dot += A(pg[gi]) * A(global_row[gi]);
      T* ds_window = ds.band.data() + (bh * S + i) * bw + (first - i - band.lo);
      for (index_t t = 0; t < n; ++t)
        ds_window[t] = window[t] = static_cast<T>(A(window_probs[t]) * (A(window[t]) - dot));
      std::fill(local_row, window, T(0));
      std::fill(window + n, local_row + nk, T(0));
      T* ds_columns = ds.global_columns.data() + (bh * S + i) * G;
      for (index_t gi = 0; gi < Gb; ++gi)
        ds_columns[gi] = global_row[gi] = static_cast<T>(A(pg[gi]) * (A(global_row[gi]) - dot));
    }
    // dq = scale * d(scores) K (the rows of global and padding queries are 0 here).
    ops::gemm(matrix<T, D>(local.data(), nq, nk), Trans::N, matrix<T, D>(k + k0 * dh, nk, dh), Trans::N,
              matrix<T, D>(dq + i0 * dh, nq, dh), p.scale, T(0));
    if (Gb > 0)
      ops::gemm(matrix<T, D>(to_global.data(), nq, Gb), Trans::N, matrix<T, D>(global_k.data(), Gb, dh), Trans::N,
                matrix<T, D>(dq + i0 * dh, nq, dh), p.scale, T(1));
    if (!global_queries.empty()) backward_global_queries(p, globals, saved, dctx, dq, ds, bh, global_queries);
  }

  template <class T, class D>
  static void backward_global_queries(const AttentionProblem<T, D>& p, const local_global_detail::GlobalTokens& globals,
                                      const Saved<T, D>& saved, const T* dctx, T* dq, Scratch<T>& ds, index_t bh,
                                      const std::vector<index_t>& queries) {
    using A = acc_t<T>;
    using local_global_detail::matrix;
    const index_t H = p.heads, S = p.seq, dh = p.head_dim, G = globals.max_count;
    const index_t b = bh / H, h = bh % H, n = static_cast<index_t>(queries.size());
    const Tensor<T, cpu> dctx_rows = local_global_detail::gather_rows(dctx, queries.data(), n, dh);
    Tensor<T, cpu> rows = local_global_detail::scratch<T>(n * S);
    ops::gemm(matrix<T, D>(dctx_rows.data(), n, dh), Trans::N, matrix<T, D>(p.v + bh * S * dh, S, dh), Trans::T,
              matrix<T, D>(rows.data(), n, S));
    for (index_t r = 0; r < n; ++r) {
      const index_t i = queries[static_cast<std::size_t>(r)];
      const index_t row_index = bh * G + globals.slot_of(b, S, i);
      T* row = rows.data() + r * S;
      const T* probs = saved.global_rows.data() + row_index * S;
      p.apply_dropout(row, S, b, h, i, 0);
      A dot = 0;
      for (index_t j = 0; j < S; ++j) dot += A(probs[j]) * A(row[j]);
      for (index_t j = 0; j < S; ++j) row[j] = static_cast<T>(A(probs[j]) * (A(row[j]) - dot));
      std::copy_n(row, S, ds.global_rows.data() + row_index * S);
    }
    Tensor<T, cpu> out = local_global_detail::scratch<T>(n * dh);
    ops::gemm(matrix<T, D>(rows.data(), n, S), Trans::N, matrix<T, D>(p.k + bh * S * dh, S, dh), Trans::N,
              matrix<T, D>(out.data(), n, dh), p.scale, T(0));
    for (index_t r = 0; r < n; ++r)
      std::copy_n(out.data() + r * dh, dh, dq + queries[static_cast<std::size_t>(r)] * dh);
  }

  // Pass 2 for keys [j0, j0 + 64) of (b, h): dk = scale * d(scores)^T Q and dv = Dropout(P)^T dctx,
  // summed over the queries that see those keys: through their windows, as global queries, and,
  // for global keys, through the global columns.
  template <class T, class D>
  static void backward_key_block(const AttentionProblem<T, D>& p, const local_global_detail::Band& band,
                                 const local_global_detail::GlobalTokens& globals, const Saved<T, D>& saved,
                                 const T* dcontext, AttentionGrads<T> g, const Scratch<T>& ds, index_t bh,
                                 index_t block) {
    using local_global_detail::matrix;
    const index_t H = p.heads, S = p.seq, dh = p.head_dim, bw = band.width(), G = globals.max_count;
    const index_t b = bh / H, h = bh % H;
    const index_t j0 = block * local_global_detail::block_size;
    const index_t j1 = std::min(S, j0 + local_global_detail::block_size), nk = j1 - j0;
    // Queries whose windows reach these keys: i + lo <= j <= i + hi.
    const index_t q0 = std::max<index_t>(0, j0 - band.hi), q1 = std::min(S, j1 - band.lo), nq = q1 - q0;
    const T* q = p.q + bh * S * dh;
    const T* dctx = dcontext + bh * S * dh;
    T* dk = g.dk + bh * S * dh + j0 * dh;
    T* dv = g.dv + bh * S * dh + j0 * dh;

    // Transposed [nk, nq] blocks of d(scores) and of the dropped probabilities of the windows.
    Tensor<T, cpu> ds_t = local_global_detail::zeroed_scratch<T>(nk * nq);
    Tensor<T, cpu> probs_t = local_global_detail::zeroed_scratch<T>(nk * nq);
    Tensor<T, cpu> segment = local_global_detail::scratch<T>(nk);
    const T* band_probs = saved.band.data() + bh * S * bw;
    const T* band_ds = ds.band.data() + bh * S * bw;
    for (index_t i = q0; i < q1; ++i) {
      if (globals.slot_of(b, S, i) >= 0 || p.is_padding(b, i)) continue;  // their window rows are 0
      const index_t first = std::max({j0, i + band.lo, index_t(0)}), last = std::min({j1 - 1, i + band.hi, S - 1});
      if (first > last) continue;
      const index_t n = last - first + 1, t0 = first - i - band.lo;
      std::copy_n(band_probs + i * bw + t0, n, segment.data());
      p.apply_dropout(segment.data(), n, b, h, i, first);
      for (index_t t = 0; t < n; ++t) {
        const index_t at = (first - j0 + t) * nq + (i - q0);
        ds_t.data()[at] = band_ds[i * bw + t0 + t];
        probs_t.data()[at] = segment.data()[t];
      }
    }
    ops::gemm(matrix<T, D>(ds_t.data(), nk, nq), Trans::N, matrix<T, D>(q + q0 * dh, nq, dh), Trans::N,
              matrix<T, D>(dk, nk, dh), p.scale, T(0));
    ops::gemm(matrix<T, D>(probs_t.data(), nk, nq), Trans::N, matrix<T, D>(dctx + q0 * dh, nq, dh), Trans::N,
              matrix<T, D>(dv, nk, dh));

    const index_t Gb = globals.count[static_cast<std::size_t>(b)];
    if (Gb == 0) return;
    const index_t* global_pos = globals.positions(b);
    // Global queries: their rows' columns j0..j1 ([Gb, nk]).
    {
      const Tensor<T, cpu> global_q = local_global_detail::gather_rows(q, global_pos, Gb, dh);
      const Tensor<T, cpu> global_dctx = local_global_detail::gather_rows(dctx, global_pos, Gb, dh);
      Tensor<T, cpu> ds_rows = local_global_detail::scratch<T>(Gb * nk),
                     probs_rows = local_global_detail::scratch<T>(Gb * nk);
      for (index_t gi = 0; gi < Gb; ++gi) {
        const index_t row = (bh * G + gi) * S + j0;
        std::copy_n(ds.global_rows.data() + row, nk, ds_rows.data() + gi * nk);
        std::copy_n(saved.global_rows.data() + row, nk, probs_rows.data() + gi * nk);
        p.apply_dropout(probs_rows.data() + gi * nk, nk, b, h, global_pos[gi], j0);
      }
      ops::gemm(matrix<T, D>(ds_rows.data(), Gb, nk), Trans::T, matrix<T, D>(global_q.data(), Gb, dh), Trans::N,
                matrix<T, D>(dk, nk, dh), p.scale, T(1));
      ops::gemm(matrix<T, D>(probs_rows.data(), Gb, nk), Trans::T, matrix<T, D>(global_dctx.data(), Gb, dh), Trans::N,
                matrix<T, D>(dv, nk, dh), T(1), T(1));
    }
    // Global keys in this block: the global columns of every query.
    Tensor<T, cpu> ds_column = local_global_detail::scratch<T>(S), probs_column = local_global_detail::scratch<T>(S);
    for (index_t gi = 0; gi < Gb; ++gi) {
      const index_t j = global_pos[gi];
      if (j < j0 || j >= j1) continue;
      for (index_t i = 0; i < S; ++i) {
        const index_t at = (bh * S + i) * G + gi;
        ds_column.data()[i] = ds.global_columns.data()[at];
        T& prob = probs_column.data()[i] = saved.global_columns.data()[at];
        if (prob != T(0)) p.apply_dropout(&prob, 1, b, h, i, j);
      }
      ops::gemm(matrix<T, D>(ds_column.data(), 1, S), Trans::N, matrix<T, D>(q, S, dh), Trans::N,
                matrix<T, D>(dk + (j - j0) * dh, 1, dh), p.scale, T(1));
      ops::gemm(matrix<T, D>(probs_column.data(), 1, S), Trans::N, matrix<T, D>(dctx, S, dh), Trans::N,
                matrix<T, D>(dv + (j - j0) * dh, 1, dh), T(1), T(1));
    }
  }

  // d(relative bias)[h, j - i] += d(score_ij): per (batch, head) partials in a fixed order, then
  // summed over the batch in order.
  template <class T, class D>
  static void reduce_bias_grad(const AttentionProblem<T, D>& p, const local_global_detail::Band& band,
                               const local_global_detail::GlobalTokens& globals, const Scratch<T>& ds,
                               T* d_relative_bias) {
    const index_t B = p.batch, H = p.heads, S = p.seq, R = 2 * S - 1, bw = band.width(), G = globals.max_count;
    std::vector<T> partial(static_cast<std::size_t>(B * H * R), T(0));
    NEXA_PARALLEL_FOR_IF(B * H > 1 && B * H * S * (bw + 2 * G) > parallel_grain)
    for (index_t bh = 0; bh < B * H; ++bh) {
      const index_t b = bh / H;
      T* part = partial.data() + bh * R + (S - 1);  // part[j - i]
      const index_t Gb = globals.count[static_cast<std::size_t>(b)];
      const index_t* global_pos = globals.positions(b);
      for (index_t i = 0; i < S; ++i) {
        const T* window = ds.band.data() + (bh * S + i) * bw;
        for (index_t t = 0; t < bw; ++t) part[band.lo + t] += window[t];
        const T* columns = ds.global_columns.data() + (bh * S + i) * G;
        for (index_t gi = 0; gi < Gb; ++gi) part[global_pos[gi] - i] += columns[gi];
      }
      for (index_t gi = 0; gi < Gb; ++gi) {
        const T* row = ds.global_rows.data() + (bh * G + gi) * S;
        for (index_t j = 0; j < S; ++j) part[j - global_pos[gi]] += row[j];
      }
    }
    attention_detail::reduce_bias_grad(partial, B, H, S, d_relative_bias);
  }
};

template <index_t Window, class T = float, class D = cpu>
using LocalGlobalAttention = Attention<LocalGlobalScores<Window>, T, D>;

}  // namespace nexa
