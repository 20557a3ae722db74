#pragma once
// CUDA RMSNorm / LayerNorm kernels: the same functions and formulas as NormKernel<cpu>
// (ops/norm_fwd.hpp). One warp per row (warp-stride over rows, lanes over columns), statistics in
// A reduced by a fixed butterfly; parameter gradients through the deterministic two-stage column
// sums of reduce.hpp. Queued on the current context's stream.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/norm.hpp holds CUDA kernels: compile this file with nvcc"
#endif

#include <cuda_runtime.h>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/launch.hpp"
#include "nexa/backend/cuda/reduce.hpp"
#include "nexa/ops/norm_fwd.hpp"

namespace nexa {

namespace cuda_backend {

template <class T, class A>
__global__ void rms_forward_kernel(index_t rows, index_t n, const T* x, const T* w, A eps, T* y, A* rstd_out) {
  const unsigned lane = launch::lane();
  for (index_t r = launch::warp_index(); r < rows; r += launch::warp_stride()) {
    const T* xr = x + r * n;
    A ms = 0;
    for (index_t j = lane; j < n; j += launch::warp) ms += A(xr[j]) * A(xr[j]);
    ms = launch::warp_sum(ms) / A(n);
    const A rstd = A(1) / sqrt(ms + eps);
    for (index_t j = lane; j < n; j += launch::warp) y[r * n + j] = w[j] * static_cast<T>(A(xr[j]) * rstd);
    if (rstd_out && lane == 0) rstd_out[r] = rstd;
  }
}

template <class T, class A>
__global__ void rms_backward_kernel(index_t rows, index_t n, const T* x, const A* rstd, const T* w, const T* g, T* dx) {
  const unsigned lane = launch::lane();
  for (index_t r = launch::warp_index(); r < rows; r += launch::warp_stride()) {
    const T* xr = x + r * n;
    const T* gr = g + r * n;
    const A s = rstd[r];
    A sum_gx = 0;
    for (index_t j = lane; j < n; j += launch::warp) sum_gx += A(gr[j]) * A(w[j]) * A(xr[j]) * s;
    sum_gx = launch::warp_sum(sum_gx) / A(n);
    for (index_t j = lane; j < n; j += launch::warp) {
      const A xhat = A(xr[j]) * s;
      dx[r * n + j] = static_cast<T>(s * (A(gr[j]) * A(w[j]) - xhat * sum_gx));
    }
  }
}

template <class T, class A>
__global__ void layer_norm_forward_kernel(index_t rows, index_t n, const T* x, const T* w, const T* b, A eps, T* y,
                                          A* mean_out, A* rstd_out) {
  const unsigned lane = launch::lane();
  for (index_t r = launch::warp_index(); r < rows; r += launch::warp_stride()) {
    const T* xr = x + r * n;
    A mean = 0;
    for (index_t j = lane; j < n; j += launch::warp) mean += A(xr[j]);
    mean = launch::warp_sum(mean) / A(n);
    A var = 0;  // two passes, as on the CPU
    for (index_t j = lane; j < n; j += launch::warp) var += (A(xr[j]) - mean) * (A(xr[j]) - mean);
    var = launch::warp_sum(var) / A(n);
    const A rstd = A(1) / sqrt(var + eps);
    for (index_t j = lane; j < n; j += launch::warp)
      y[r * n + j] = static_cast<T>((A(xr[j]) - mean) * rstd * A(w[j]) + A(b[j]));
    if (lane == 0) {
      if (mean_out) mean_out[r] = mean;
      if (rstd_out) rstd_out[r] = rstd;
    }
  }
}

template <class T, class A>
__global__ void layer_norm_backward_kernel(index_t rows, index_t n, const T* x, const A* mean, const A* rstd,
                                           const T* w, const T* g, T* dx) {
  const unsigned lane = launch::lane();
  for (index_t r = launch::warp_index(); r < rows; r += launch::warp_stride()) {
    const T* xr = x + r * n;
    const T* gr = g + r * n;
    const A mu = mean[r], s = rstd[r];
    A sum_g = 0, sum_gx = 0;
    for (index_t j = lane; j < n; j += launch::warp) {
      const A gj = A(gr[j]) * A(w[j]);
      sum_g += gj;
      sum_gx += gj * (A(xr[j]) - mu) * s;
    }
    sum_g = launch::warp_sum(sum_g) / A(n);
    sum_gx = launch::warp_sum(sum_gx) / A(n);
    for (index_t j = lane; j < n; j += launch::warp) {
      const A xhat = (A(xr[j]) - mu) * s;
      dx[r * n + j] = static_cast<T>(s * (A(gr[j]) * A(w[j]) - sum_g - xhat * sum_gx));
    }
  }
}

// Column-sum terms (reduce.hpp): d(weight) of RMSNorm and LayerNorm, d(bias) of LayerNorm.
template <class T, class A>
struct RmsWeightTerm {
  const T* x;
  const A* rstd;
  const T* g;
  index_t n;
  __device__ A operator()(index_t r, index_t c) const { return A(g[r * n + c]) * A(x[r * n + c]) * rstd[r]; }
};
template <class T, class A>
struct LayerNormWeightTerm {
  const T* x;
  const A* mean;
  const A* rstd;
  const T* g;
  index_t n;
  __device__ A operator()(index_t r, index_t c) const {
    return A(g[r * n + c]) * (A(x[r * n + c]) - mean[r]) * rstd[r];
  }
};
template <class T, class A>
struct RowValueTerm {
  const T* g;
  index_t n;
  __device__ A operator()(index_t r, index_t c) const { return A(g[r * n + c]); }
};

// Warps of one block each cover a row.
inline unsigned row_blocks(index_t rows) { return launch::blocks_for(rows, launch::warps_per_block); }

}  // namespace cuda_backend

template <>
struct NormKernel<cuda> {
  template <class T, class A>
  static void rms_forward(index_t rows, index_t n, const T* x, const T* w, A eps, T* y, A* rstd_out) {
    if (rows == 0) return;
    cuda_backend::rms_forward_kernel<<<cuda_backend::row_blocks(rows), cuda_backend::launch::threads, 0,
                                       cuda_backend::current_stream()>>>(rows, n, x, w, eps, y, rstd_out);
    cuda_backend::check_launch("rms_forward_kernel");
  }
  template <class T, class A>
  static void rms_backward(index_t rows, index_t n, const T* x, const A* rstd, const T* w, const T* g, T* dx) {
    if (rows == 0) return;
    cuda_backend::rms_backward_kernel<<<cuda_backend::row_blocks(rows), cuda_backend::launch::threads, 0,
                                        cuda_backend::current_stream()>>>(rows, n, x, rstd, w, g, dx);
    cuda_backend::check_launch("rms_backward_kernel");
  }
  template <class T, class A>
  static void rms_weight_grad(index_t rows, index_t n, const T* x, const A* rstd, const T* g, T* dw_acc) {
    cuda_backend::column_sums_accumulate<A>(rows, n, cuda_backend::RmsWeightTerm<T, A>{x, rstd, g, n}, dw_acc);
  }
  template <class T, class A>
  static void layer_norm_forward(index_t rows, index_t n, const T* x, const T* w, const T* b, A eps, T* y, A* mean_out,
                                 A* rstd_out) {
    if (rows == 0) return;
    cuda_backend::layer_norm_forward_kernel<<<cuda_backend::row_blocks(rows), cuda_backend::launch::threads, 0,
                                              cuda_backend::current_stream()>>>(rows, n, x, w, b, eps, y, mean_out,
                                                                                rstd_out);
    cuda_backend::check_launch("layer_norm_forward_kernel");
  }
  template <class T, class A>
  static void layer_norm_backward(index_t rows, index_t n, const T* x, const A* mean, const A* rstd, const T* w,
                                  const T* g, T* dx) {
    if (rows == 0) return;
    cuda_backend::layer_norm_backward_kernel<<<cuda_backend::row_blocks(rows), cuda_backend::launch::threads, 0,
                                               cuda_backend::current_stream()>>>(rows, n, x, mean, rstd, w, g, dx);
    cuda_backend::check_launch("layer_norm_backward_kernel");
  }
  template <class T, class A>
  static void layer_norm_param_grad(index_t rows, index_t n, const T* x, const A* mean, const A* rstd, const T* g,
                                    T* dw_acc, T* db_acc) {
    if (dw_acc) {
      cuda_backend::column_sums_accumulate<A>(rows, n, cuda_backend::LayerNormWeightTerm<T, A>{x, mean, rstd, g, n},
                                              dw_acc);
    }
    if (db_acc) cuda_backend::column_sums_accumulate<A>(rows, n, cuda_backend::RowValueTerm<T, A>{g, n}, db_acc);
  }
};

}  // namespace nexa
