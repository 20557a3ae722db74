#pragma once
// CPU RMSNorm / LayerNorm kernels (ops/norm_fwd.hpp): rows in parallel; parameter gradients by
// column blocks per thread with rows summed in order (race-free, thread-count independent).
#include <algorithm>
#include <cmath>

#include "nexa/core/parallel.hpp"
#include "nexa/ops/norm_fwd.hpp"

namespace nexa {

template <>
struct NormKernel<cpu> {
  template <class T, class A>
  static void rms_forward(index_t rows, index_t n, const T* x, const T* w, A eps, T* y, A* rstd_out) {
    NEXA_PARALLEL_FOR_IF(rows * n > parallel_grain)
    for (index_t r = 0; r < rows; ++r) {
      const T* xr = x + r * n;
      A ms = 0;
      for (index_t j = 0; j < n; ++j) ms += A(xr[j]) * A(xr[j]);
      ms /= A(n);
      const A rstd = A(1) / std::sqrt(ms + eps);
      // As T5LayerNorm: normalise in A, cast to the storage type, then scale by the weight.
      for (index_t j = 0; j < n; ++j) y[r * n + j] = w[j] * static_cast<T>(A(xr[j]) * rstd);
      if (rstd_out) rstd_out[r] = rstd;
    }
  }

  template <class T, class A>
  static void rms_backward(index_t rows, index_t n, const T* x, const A* rstd, const T* w, const T* g, T* dx) {
    // dx = rstd * (g - xhat * mean(g * xhat)) with g = dy * weight and xhat = x * rstd.
    NEXA_PARALLEL_FOR_IF(rows * n > parallel_grain)
    for (index_t r = 0; r < rows; ++r) {
      const T* xr = x + r * n;
      const T* gr = g + r * n;
      A sum_gx = 0;
      for (index_t j = 0; j < n; ++j) sum_gx += A(gr[j]) * A(w[j]) * A(xr[j]) * rstd[r];
      sum_gx /= A(n);
      for (index_t j = 0; j < n; ++j) {
        const A xhat = A(xr[j]) * rstd[r];
        dx[r * n + j] = static_cast<T>(rstd[r] * (A(gr[j]) * A(w[j]) - xhat * sum_gx));
      }
    }
  }

  template <class T, class A>
  static void rms_weight_grad(index_t rows, index_t n, const T* x, const A* rstd, const T* g, T* dw_acc) {
    constexpr index_t block = 64;
    const index_t blocks = (n + block - 1) / block;
    NEXA_PARALLEL_FOR_IF(rows * n > parallel_grain && blocks > 1)
    for (index_t b = 0; b < blocks; ++b) {
      const index_t j0 = b * block, j1 = std::min(n, j0 + block);
      A dw[block] = {};
      for (index_t r = 0; r < rows; ++r) {
        for (index_t j = j0; j < j1; ++j) dw[j - j0] += A(g[r * n + j]) * A(x[r * n + j]) * rstd[r];
      }
      for (index_t j = j0; j < j1; ++j) dw_acc[j] += static_cast<T>(dw[j - j0]);
    }
  }

  template <class T, class A>
  static void layer_norm_forward(index_t rows, index_t n, const T* x, const T* w, const T* b, A eps, T* y, A* mean_out,
                                 A* rstd_out) {
    NEXA_PARALLEL_FOR_IF(rows * n > parallel_grain)
    for (index_t r = 0; r < rows; ++r) {
      const T* xr = x + r * n;
      A mean = 0;
      for (index_t j = 0; j < n; ++j) mean += A(xr[j]);
      mean /= A(n);
      A var = 0;  // two passes: no cancellation when |mean| >> std
      for (index_t j = 0; j < n; ++j) var += (A(xr[j]) - mean) * (A(xr[j]) - mean);
      var /= A(n);
      const A rstd = A(1) / std::sqrt(var + eps);
      for (index_t j = 0; j < n; ++j) y[r * n + j] = static_cast<T>((A(xr[j]) - mean) * rstd * A(w[j]) + A(b[j]));
      if (mean_out) mean_out[r] = mean;
      if (rstd_out) rstd_out[r] = rstd;
    }
  }

  template <class T, class A>
  static void layer_norm_backward(index_t rows, index_t n, const T* x, const A* mean, const A* rstd, const T* w,
                                  const T* g, T* dx) {
    // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight.
    NEXA_PARALLEL_FOR_IF(rows * n > parallel_grain)
    for (index_t r = 0; r < rows; ++r) {
      const T* xr = x + r * n;
      const T* gr = g + r * n;
      A sum_g = 0, sum_gx = 0;
      for (index_t j = 0; j < n; ++j) {
        const A gj = A(gr[j]) * A(w[j]);
        sum_g += gj;
        sum_gx += gj * (A(xr[j]) - mean[r]) * rstd[r];
      }
      sum_g /= A(n);
      sum_gx /= A(n);
      for (index_t j = 0; j < n; ++j) {
        const A xhat = (A(xr[j]) - mean[r]) * rstd[r];
        dx[r * n + j] = static_cast<T>(rstd[r] * (A(gr[j]) * A(w[j]) - sum_g - xhat * sum_gx));
      }
    }
  }

  template <class T, class A>
  static void layer_norm_param_grad(index_t rows, index_t n, const T* x, const A* mean, const A* rstd, const T* g,
                                    T* dw_acc, T* db_acc) {
    constexpr index_t block = 64;
    const index_t blocks = (n + block - 1) / block;
    NEXA_PARALLEL_FOR_IF(rows * n > parallel_grain && blocks > 1)
    for (index_t b = 0; b < blocks; ++b) {
      const index_t j0 = b * block, j1 = std::min(n, j0 + block);
      A dw[block] = {}, db[block] = {};
      for (index_t r = 0; r < rows; ++r) {
        for (index_t j = j0; j < j1; ++j) {
          const A gj = A(g[r * n + j]);
          dw[j - j0] += gj * (A(x[r * n + j]) - mean[r]) * rstd[r];
          db[j - j0] += gj;
        }
      }
      for (index_t j = j0; j < j1; ++j) {
        if (dw_acc) dw_acc[j] += static_cast<T>(dw[j - j0]);
        if (db_acc) db_acc[j] += static_cast<T>(db[j - j0]);
      }
    }
  }
};

}  // namespace nexa
