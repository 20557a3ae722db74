// nexa_bench_attention --device cuda: the FlashAttention-2 kernels (FlashAttentionKernel<cuda>)
// forward and forward+backward at n = 1k .. 16k tokens (B = 1, 8 heads of 64), fp32 and bf16
// storage, as achieved TFLOP/s and as ratios to a cuBLAS GEMM (4096^3, same dtype) timed in the
// same run. FLOPs as FlashAttention-2 counts them: forward 4 B H n^2 d, backward 2.5x forward.
#include <cstdio>
#include <exception>
#include <vector>

#include "device_bench.hpp"
#include "gpu_timer.hpp"
#include "nexa/backend/cuda.hpp"
#include "nexa/ops/flash_attention_fwd.hpp"

namespace nexa::bench {
namespace {

constexpr index_t heads = 8, head_dim = 64;

template <class T>
void run_length(index_t n, const DeviceBenchOptions& options) {
  Rng rng(3);
  const Shape qkv{1, heads, n, head_dim};
  const auto q = Tensor<T, cuda>::randn(qkv, rng), k = Tensor<T, cuda>::randn(qkv, rng);
  const auto v = Tensor<T, cuda>::randn(qkv, rng), d_out = Tensor<T, cuda>::randn(qkv, rng);
  auto out = Tensor<T, cuda>::uninitialized(qkv), dq = Tensor<T, cuda>::uninitialized(qkv);
  auto dk = Tensor<T, cuda>::uninitialized(qkv), dv = Tensor<T, cuda>::uninitialized(qkv);
  auto lse = Tensor<acc_t<T>, cuda>::uninitialized({1, heads, n});
  FlashAttentionArgs<T> args{.batch = 1,
                             .heads = heads,
                             .seq = n,
                             .head_dim = head_dim,
                             .q = q.data(),
                             .k = k.data(),
                             .v = v.data(),
                             .scale = T(0.125f)};
  constexpr index_t g = 4096;
  const auto a = Tensor<T, cuda>::randn({g, g}, rng), b = Tensor<T, cuda>::randn({g, g}, rng);
  auto c = Tensor<T, cuda>::uninitialized({g, g});

  const int reps = options.quick ? 1 : 3;
  const auto t = gpu_interleaved_seconds({
                                             [&] { ops::gemm(a, Trans::N, b, Trans::N, c); },
                                             [&] { FlashAttentionKernel<cuda>::forward(args, out.data(), lse.data()); },
                                             [&] {
                                               FlashAttentionKernel<cuda>::forward(args, out.data(), lse.data());
                                               FlashAttentionKernel<cuda>::backward(
                                                   args, out.data(), lse.data(), d_out.data(), dq.data(), dk.data(),
                                                   dv.data(), static_cast<T*>(nullptr));
                                             },
                                         },
                                         reps, options.quick ? 2 : 5, 1);
  const double gemm = 2.0 * static_cast<double>(g * g * g) / t[0] * 1e-12;
  const double fwd_flops = 4.0 * static_cast<double>(heads * n) * static_cast<double>(n * head_dim);
  const double fwd = fwd_flops / t[1] * 1e-12, fwdbwd = 3.5 * fwd_flops / t[2] * 1e-12;
  if (options.json) {
    std::printf(
        "{\"device\": \"cuda\", \"variant\": \"flash\", \"dtype\": \"%s\", \"n\": %lld, \"heads\": %lld, "
        "\"head_dim\": %lld, \"seconds_fwd\": %.6f, \"seconds_fwdbwd\": %.6f, \"fwd_tflops\": %.2f, "
        "\"fwdbwd_tflops\": %.2f, \"gemm_tflops\": %.2f, \"fwd_gemm_ratio\": %.3f, \"fwdbwd_gemm_ratio\": %.3f}\n",
        dtype_name<T>(), static_cast<long long>(n), static_cast<long long>(heads), static_cast<long long>(head_dim),
        t[1], t[2], fwd, fwdbwd, gemm, fwd / gemm, fwdbwd / gemm);
  } else {
    std::printf(
        "flash %s n=%6lld: fwd %8.3f ms %6.1f TFLOP/s (%.2fx gemm)  fwd+bwd %8.3f ms %6.1f TFLOP/s (%.2fx gemm)"
        "  gemm %.1f TFLOP/s\n",
        dtype_name<T>(), static_cast<long long>(n), t[1] * 1e3, fwd, fwd / gemm, t[2] * 1e3, fwdbwd, fwdbwd / gemm,
        gemm);
  }
  std::fflush(stdout);
}

}  // namespace

int attention_bench_cuda(const DeviceBenchOptions& options) {
  if (!gpu_available()) return 1;
  try {
    std::vector<index_t> lengths =
        options.quick ? std::vector<index_t>{1024, 2048} : std::vector<index_t>{1024, 2048, 4096, 8192, 16384};
    for (const index_t n : lengths) {
      if (options.max_n > 0 && n > options.max_n) continue;
      run_length<float>(n, options);
      run_length<bfloat16>(n, options);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nexa_bench_attention --device cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace nexa::bench
