#pragma once
// CUDA grouped GEMM. With cuBLAS 12.5 or later every non-empty problem goes into one
// cublas<t>gemmGroupedBatched / cublasGemmGroupedBatchedEx call (one group of one problem each,
// since every expert has its own row count); older toolkits loop over GemmKernel<cuda>. Problems
// are transposed into cuBLAS's column-major view exactly as GemmKernel<cuda> does (B first).
// cuBLAS reads the A/B/C pointer arrays from device memory: they are copied into a buffer from
// the context's caching allocator, freed (stream-ordered) after the launch is queued, so a
// repeated step allocates nothing. Plain C++ (no kernels), so it also compiles without nvcc.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "nexa/backend/cuda/buffer.hpp"
#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/data_type.hpp"
#include "nexa/backend/cuda/gemm.hpp"
#include "nexa/ops/grouped_gemm_fwd.hpp"

#if defined(CUBLAS_VERSION) && CUBLAS_VERSION >= 120500
#define NEXA_CUBLAS_HAS_GROUPED_GEMM 1
#else
#define NEXA_CUBLAS_HAS_GROUPED_GEMM 0
#endif

namespace nexa {

template <>
struct GroupedGemmKernel<cuda> {
  template <class T>
  static void run(Trans ta, Trans tb, T alpha, std::span<const GemmProblem<T>> problems, T beta) {
    static_assert(cuda_backend::blas_supported_v<T>,
                  "GroupedGemmKernel<cuda> supports float, double, nexa::bfloat16 and nexa::half");
    if constexpr (std::is_same_v<T, float>) {
      // The grouped call takes no fast fp32 compute type: under a reduced-precision GemmCompute,
      // one GemmKernel<cuda> call per problem, which honours it.
      if (cuda_backend::current_context().gemm_compute() != GemmCompute::fp32) {
        for (const GemmProblem<T>& p : problems)
          GemmKernel<cuda>::run<T>(ta, tb, p.m, p.n, p.k, alpha, p.a, p.b, beta, p.c);
        return;
      }
    }
#if NEXA_CUBLAS_HAS_GROUPED_GEMM
    // Empty outputs need nothing; an empty inner dimension only scales C, which cuBLAS would
    // reject (zero leading dimensions): GemmKernel<cuda> handles both.
    std::vector<GemmProblem<T>> full;
    for (const GemmProblem<T>& p : problems) {
      if (p.m > 0 && p.n > 0 && p.k > 0)
        full.push_back(p);
      else
        GemmKernel<cuda>::run<T>(ta, tb, p.m, p.n, p.k, alpha, p.a, p.b, beta, p.c);
    }
    if (!full.empty()) run_grouped<T>(ta, tb, alpha, full, beta);
#else
    for (const GemmProblem<T>& p : problems)
      GemmKernel<cuda>::run<T>(ta, tb, p.m, p.n, p.k, alpha, p.a, p.b, beta, p.c);
#endif
  }

#if NEXA_CUBLAS_HAS_GROUPED_GEMM
 private:
  template <class T>
  static void run_grouped(Trans ta, Trans tb, T alpha, const std::vector<GemmProblem<T>>& problems, T beta) {
    using S = cuda_backend::blas_scale_t<T>;
    const std::size_t count = problems.size();
    CudaContext& context = cuda_backend::current_context();
    // Column-major view: C^T (n x m) = op(B)^T (n x k) op(A)^T (k x m), so cuBLAS's A is nexa's B.
    const std::vector<cublasOperation_t> op_first(count, tb == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T);
    const std::vector<cublasOperation_t> op_second(count, ta == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T);
    std::vector<std::int64_t> rows(count), cols(count), inner(count), ld_first(count), ld_second(count), ld_out(count),
        group_size(count, 1);
    const std::vector<S> alphas(count, static_cast<S>(alpha)), betas(count, static_cast<S>(beta));
    // Pointer arrays, laid out as [B pointers | A pointers | C pointers].
    std::vector<const void*> pointers(3 * count);
    for (std::size_t i = 0; i < count; ++i) {
      const GemmProblem<T>& p = problems[i];
      rows[i] = p.n;
      cols[i] = p.m;
      inner[i] = p.k;
      ld_first[i] = tb == Trans::N ? p.n : p.k;
      ld_second[i] = ta == Trans::N ? p.k : p.m;
      ld_out[i] = p.n;
      pointers[i] = p.b;
      pointers[count + i] = p.a;
      pointers[2 * count + i] = p.c;
    }
    Buffer<const void*, cuda> device_pointers(pointers.size());
    // From pageable host memory: returns once `pointers` has been staged, so it may then go.
    NEXA_CUDA_CHECK(cudaMemcpyAsync(static_cast<void*>(device_pointers.data()), pointers.data(),
                                    pointers.size() * sizeof(const void*), cudaMemcpyHostToDevice, context.stream()));
    const void* const* first = device_pointers.data();
    const void* const* second = first + count;
    // The C entries were stored as const void*; cuBLAS takes them as the writable outputs they are.
    void* const* out = const_cast<void* const*>(first + 2 * count);
    const auto groups = static_cast<std::int64_t>(count);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      const auto* b_arrays = reinterpret_cast<const T* const*>(first);
      const auto* a_arrays = reinterpret_cast<const T* const*>(second);
      auto* c_arrays = reinterpret_cast<T* const*>(out);
      if constexpr (std::is_same_v<T, float>) {
        NEXA_CUBLAS_CHECK(cublasSgemmGroupedBatched_64(context.blas(), op_first.data(), op_second.data(), rows.data(),
                                                       cols.data(), inner.data(), alphas.data(), b_arrays,
                                                       ld_first.data(), a_arrays, ld_second.data(), betas.data(),
                                                       c_arrays, ld_out.data(), groups, group_size.data()));
      } else {
        NEXA_CUBLAS_CHECK(cublasDgemmGroupedBatched_64(context.blas(), op_first.data(), op_second.data(), rows.data(),
                                                       cols.data(), inner.data(), alphas.data(), b_arrays,
                                                       ld_first.data(), a_arrays, ld_second.data(), betas.data(),
                                                       c_arrays, ld_out.data(), groups, group_size.data()));
      }
    } else {
      constexpr cudaDataType_t type = cuda_backend::blas_data_type<T>();
      NEXA_CUBLAS_CHECK(cublasGemmGroupedBatchedEx_64(
          context.blas(), op_first.data(), op_second.data(), rows.data(), cols.data(), inner.data(), alphas.data(),
          first, type, ld_first.data(), second, type, ld_second.data(), betas.data(), out, type, ld_out.data(), groups,
          group_size.data(), CUBLAS_COMPUTE_32F));
    }
  }
#endif
};

}  // namespace nexa
