#pragma once
// GEMMs against a quantised weight W [out, in] (a frozen base in the training path):
//   gemm_x_wt<Format>(w, x, y, beta):   y  = x W^T  + beta y    x [n, in],  y [n, out]
//   gemm_dy_w<Format>(w, dy, dx, beta): dx = dy W   + beta dx   dy [n, out], dx [n, in]
// W is never dequantised whole: a tile of at most `tile_rows` output rows (default 128) is
// dequantised into scratch owned by the call (so concurrent calls on one weight are safe) and
// multiplied with ops::gemm, tile after tile. Scratch per call is bounded by
//   tile_rows * in  (weight tile in T)  + tile_rows * in  (float staging, only when T != float)
//   + n * tile_rows (the tile's slice of y, or of dy, packed)
// elements; with a single tile (out <= tile_rows) and beta = 0 y is written in place and dy is
// read in place. Tiles run in a fixed order, so results do not depend on the thread count.
// The arithmetic is T's: the dequantised float values are exact in double, so a double
// instantiation computes with exactly the weights the float one sees (gradient checks).
// The formats (NF4, Int8, MXFP4) are in quant/formats.hpp.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/parallel.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/gemm.hpp"
#include "nexa/quant/formats.hpp"

namespace nexa::quant {

inline constexpr index_t default_tile_rows = 128;

// What one call did (for tests and profiling): tiles run and the scratch it held at most.
struct QuantGemmStats {
  index_t tiles = 0;
  index_t weight_scratch_elements = 0;  // dequantised weight tile (plus float staging)
  index_t io_scratch_elements = 0;      // packed slice of y or dy
};

// The dense weight [out, in], dequantised whole (tests and inspection only; the GEMMs never do this).
template <QuantFormat Format>
[[nodiscard]] Tensor<float, cpu> dequantize(const typename Format::tensor_type& q) {
  auto w = Tensor<float, cpu>::uninitialized(q.shape);
  Format::dequantize_rows(q, 0, q.shape.rows(), w.data());
  return w;
}

namespace detail {

// Rows [r0, r0 + rows) of W, dequantised into out[rows, cols] (through float staging for T != float).
template <class Format, class T>
void dequantize_tile(const typename Format::tensor_type& w, index_t r0, index_t rows, index_t cols,
                     std::vector<float>& stage, T* out) {
  float* dst = nullptr;
  if constexpr (std::same_as<T, float>) {
    dst = out;
  } else {
    if (stage.size() < static_cast<std::size_t>(rows * cols)) stage.resize(static_cast<std::size_t>(rows * cols));
    dst = stage.data();
  }
  // Row ranges were validated by the caller, so nothing below throws inside the parallel region.
  NEXA_PARALLEL_FOR_IF(rows * cols > parallel_grain)
  for (index_t r = 0; r < rows; ++r) Format::dequantize_rows(w, r0 + r, r0 + r + 1, dst + r * cols);
  if constexpr (!std::same_as<T, float>) {
    const index_t count = rows * cols;
    for (index_t i = 0; i < count; ++i) out[i] = static_cast<T>(stage[static_cast<std::size_t>(i)]);
  }
}

template <class Format>
void check_weight(const typename Format::tensor_type& w, const char* what) {
  require(w.shape.rank() == 2 && w.shape.numel() > 0, what, "expected a quantised [out, in] weight, got shape ",
          w.shape);
}

inline index_t check_tile(index_t tile_rows, const char* what) {
  require(tile_rows > 0, what, "tile_rows must be positive, got ", tile_rows);
  return tile_rows;
}

}  // namespace detail

// y = x W^T + beta y. x: [..., in], y: [..., out] (leading axes folded into rows).
template <QuantFormat Format, class T>
void gemm_x_wt(const typename Format::tensor_type& w, TensorView<const T, cpu> x, TensorView<T, cpu> y, T beta = T(0),
               index_t tile_rows = default_tile_rows, QuantGemmStats* stats = nullptr) {
  constexpr const char* what = "quant::gemm_x_wt";
  detail::check_weight<Format>(w, what);
  detail::check_tile(tile_rows, what);
  const index_t out = w.shape.rows(), in = w.shape.cols(), n = x.rows();
  require(x.cols() == in && y.rows() == n && y.cols() == out, what, "W is [", out, ", ", in, "], so x must be [n, ", in,
          "] and y [n, ", out, "]; got x ", x.shape(), " and y ", y.shape());
  if (stats) *stats = {};
  if (n == 0) return;
  const TensorView<const T, cpu> x2(x.data(), {n, in});
  const TensorView<T, cpu> y2(y.data(), {n, out});
  const index_t tile = std::min(tile_rows, out);
  std::vector<T> wt(static_cast<std::size_t>(tile * in));
  std::vector<float> stage;
  const bool single = tile == out && beta == T(0);
  std::vector<T> yt(single ? 0 : static_cast<std::size_t>(n * tile));
  index_t tiles = 0;
  for (index_t r0 = 0; r0 < out; r0 += tile, ++tiles) {
    const index_t rows = std::min(tile, out - r0);
    detail::dequantize_tile<Format>(w, r0, rows, in, stage, wt.data());
    const TensorView<const T, cpu> wv(wt.data(), {rows, in});
    if (single) {
      ops::gemm(x2, Trans::N, wv, Trans::T, y2);
      continue;
    }
    T* yp = y2.data();
    if (beta != T(0)) {
      for (index_t i = 0; i < n; ++i) std::copy_n(yp + i * out + r0, rows, yt.data() + i * rows);
    }
    ops::gemm(x2, Trans::N, wv, Trans::T, TensorView<T, cpu>(yt.data(), {n, rows}), T(1), beta);
    for (index_t i = 0; i < n; ++i) std::copy_n(yt.data() + i * rows, rows, yp + i * out + r0);
  }
  if (stats) {
    stats->tiles = tiles;
    stats->weight_scratch_elements = static_cast<index_t>(wt.size() + stage.size());
    stats->io_scratch_elements = static_cast<index_t>(yt.size());
  }
}

// dx = dy W + beta dx. dy: [..., out], dx: [..., in].
template <QuantFormat Format, class T>
void gemm_dy_w(const typename Format::tensor_type& w, TensorView<const T, cpu> dy, TensorView<T, cpu> dx, T beta = T(0),
               index_t tile_rows = default_tile_rows, QuantGemmStats* stats = nullptr) {
  constexpr const char* what = "quant::gemm_dy_w";
  detail::check_weight<Format>(w, what);
  detail::check_tile(tile_rows, what);
  const index_t out = w.shape.rows(), in = w.shape.cols(), n = dy.rows();
  require(dy.cols() == out && dx.rows() == n && dx.cols() == in, what, "W is [", out, ", ", in, "], so dy must be [n, ",
          out, "] and dx [n, ", in, "]; got dy ", dy.shape(), " and dx ", dx.shape());
  if (stats) *stats = {};
  if (n == 0) return;
  const TensorView<const T, cpu> dy2(dy.data(), {n, out});
  const TensorView<T, cpu> dx2(dx.data(), {n, in});
  const index_t tile = std::min(tile_rows, out);
  std::vector<T> wt(static_cast<std::size_t>(tile * in));
  std::vector<float> stage;
  const bool single = tile == out;
  std::vector<T> dyt(single ? 0 : static_cast<std::size_t>(n * tile));
  index_t tiles = 0;
  for (index_t r0 = 0; r0 < out; r0 += tile, ++tiles) {
    const index_t rows = std::min(tile, out - r0);
    detail::dequantize_tile<Format>(w, r0, rows, in, stage, wt.data());
    const TensorView<const T, cpu> wv(wt.data(), {rows, in});
    const T b = r0 == 0 ? beta : T(1);
    if (single) {
      ops::gemm(dy2, Trans::N, wv, Trans::N, dx2, T(1), b);
      continue;
    }
    const T* dyp = dy2.data();
    for (index_t i = 0; i < n; ++i) std::copy_n(dyp + i * out + r0, rows, dyt.data() + i * rows);
    ops::gemm(TensorView<const T, cpu>(dyt.data(), {n, rows}), Trans::N, wv, Trans::N, dx2, T(1), b);
  }
  if (stats) {
    stats->tiles = tiles;
    stats->weight_scratch_elements = static_cast<index_t>(wt.size() + stage.size());
    stats->io_scratch_elements = static_cast<index_t>(dyt.size());
  }
}

template <QuantFormat Format>
struct QuantizedGemmKernel<Format, cpu> {
  struct Placed {};
  [[nodiscard]] static Placed place(const typename Format::tensor_type&) { return {}; }
  template <class T>
  static void x_wt(const typename Format::tensor_type& w, const Placed&, TensorView<const T, cpu> x,
                   TensorView<T, cpu> y, T beta, index_t tile_rows) {
    gemm_x_wt<Format>(w, x, y, beta, tile_rows);
  }
  template <class T>
  static void dy_w(const typename Format::tensor_type& w, const Placed&, TensorView<const T, cpu> dy,
                   TensorView<T, cpu> dx, T beta, index_t tile_rows) {
    gemm_dy_w<Format>(w, dy, dx, beta, tile_rows);
  }
};

}  // namespace nexa::quant
