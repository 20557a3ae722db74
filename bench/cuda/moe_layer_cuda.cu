// nexa_bench_moe_layer --device cuda: the MoE layer's forward and forward+backward on the GPU at
// the foundation shape scaled up (T = 16384, d_model 1024, d_ff 4096, E = 8 and 64, top-2), as
// ratios to a cuBLAS GEMM of the experts' aggregate shape timed in the same run:
//   fp32  the layer in fp32, against an fp32 GEMM;
//   bf16  bf16 mixed precision (the context's GemmCompute::bf16: the experts' GEMMs take bf16
//         inputs with fp32 accumulation; parameters, activations and the router stay fp32),
//         against a cuBLAS GEMM on bf16 tensors. Also reports the caching allocator's cudaMalloc calls during the timed
// steps (after warm-up there should be none).
#include <cstdio>
#include <exception>
#include <string>

#include "device_bench.hpp"
#include "gpu_timer.hpp"
#include "nexa/backend/cuda.hpp"
#include "nexa/moe/moe_layer.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/moe/topk_router.hpp"

namespace nexa::bench {
namespace {

struct MoEShape {
  index_t tokens, d_model, d_ff, experts;
};

// R: the reference GEMM's storage type (float for fp32, bfloat16 for the bf16 mode).
template <class R>
void run_shape(const MoEShape& s, const DeviceBenchOptions& options, GemmCompute mode) {
  using T = float;
  constexpr int k = 2;
  using Layer = MoELayer<TopKRouter<k>, T5FFN<Relu>, NoShared, cuda, T>;
  CudaContext context;
  const CudaContextScope scope(context);
  Rng rng(1);
  Layer layer({.d_model = s.d_model, .d_ff = s.d_ff, .num_experts = s.experts}, rng);
  const auto x = Tensor<T, cuda>::randn({s.tokens, s.d_model}, rng);
  const auto dy = Tensor<T, cuda>::randn({s.tokens, s.d_model}, rng, 1e-3);
  typename Layer::Cache cache;
  // The reference: one GEMM at the experts' aggregate shape, [tokens * k, d] x [d, d_ff].
  const auto a = Tensor<R, cuda>::randn({s.tokens * k, s.d_model}, rng);
  const auto b = Tensor<R, cuda>::randn({s.d_ff, s.d_model}, rng);
  auto c = Tensor<R, cuda>::uninitialized({s.tokens * k, s.d_ff});
  context.set_gemm_compute(mode);

  const auto& allocator = context.allocator();
  const int reps = options.quick ? 2 : 5, rounds = options.quick ? 3 : 5;
  std::size_t mallocs_before = 0;
  const auto t =
      gpu_interleaved_seconds({
                                  [&] { ops::gemm(a, Trans::N, b, Trans::T, c); },
                                  [&] { (void)layer.forward(x.cview(), cache); },
                                  [&] {
                                    (void)layer.forward(x.cview(), cache);
                                    (void)layer.backward(dy.cview(), cache);
                                  },
                                  // Marks the end of warm-up for the allocator count (runs first in every round).
                                  [&] {
                                    if (mallocs_before == 0) mallocs_before = allocator->stats().raw_allocations;
                                  },
                              },
                              reps, rounds);
  const std::size_t mallocs_timed = allocator->stats().raw_allocations - mallocs_before;

  const double gemm_flops = 2.0 * static_cast<double>(s.tokens * k) * static_cast<double>(s.d_model * s.d_ff);
  const double fwd_flops = 2.0 * gemm_flops;  // two expert GEMMs (wi, wo)
  const double gemm = gemm_flops / t[0] * 1e-9, fwd = fwd_flops / t[1] * 1e-9, fwdbwd = 3.0 * fwd_flops / t[2] * 1e-9;
  if (options.json) {
    std::printf(
        "{\"device\": \"cuda\", \"dtype\": \"%s\", \"tokens\": %lld, \"d_model\": %lld, \"d_ff\": %lld, "
        "\"experts\": %lld, \"k\": %d, \"seconds_fwd\": %.6f, \"seconds_fwdbwd\": %.6f, \"fwd_tflops\": %.2f, "
        "\"fwdbwd_tflops\": %.2f, \"gemm_tflops\": %.2f, \"fwd_gemm_ratio\": %.3f, \"fwdbwd_gemm_ratio\": %.3f, "
        "\"cuda_mallocs_after_warmup\": %zu}\n",
        dtype_name<R>(), static_cast<long long>(s.tokens), static_cast<long long>(s.d_model),
        static_cast<long long>(s.d_ff), static_cast<long long>(s.experts), k, t[1], t[2], fwd * 1e-3, fwdbwd * 1e-3,
        gemm * 1e-3, fwd / gemm, fwdbwd / gemm, mallocs_timed);
  } else {
    std::printf(
        "%s T=%lld d=%lld d_ff=%lld E=%lld top-%d: fwd %.2f ms %.1f TFLOP/s (%.2fx gemm)  fwd+bwd %.2f ms %.1f "
        "TFLOP/s (%.2fx gemm)  gemm %.1f TFLOP/s  cudaMalloc after warm-up: %zu\n",
        dtype_name<R>(), static_cast<long long>(s.tokens), static_cast<long long>(s.d_model),
        static_cast<long long>(s.d_ff), static_cast<long long>(s.experts), k, t[1] * 1e3, fwd * 1e-3, fwd / gemm,
        t[2] * 1e3, fwdbwd * 1e-3, fwdbwd / gemm, gemm * 1e-3, mallocs_timed);
  }
  std::fflush(stdout);
}

}  // namespace

int moe_layer_bench_cuda(const DeviceBenchOptions& options) {
  if (!gpu_available()) return 1;
  try {
    const index_t tokens = options.quick ? 2048 : 16384, d = options.quick ? 256 : 1024;
    for (const index_t experts : {index_t{8}, index_t{64}}) {
      const MoEShape s{tokens, d, 4 * d, experts};
      run_shape<float>(s, options, GemmCompute::fp32);
      run_shape<bfloat16>(s, options, GemmCompute::bf16);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nexa_bench_moe_layer --device cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace nexa::bench
