// nexa_bench_moe_layer: MoE layer forward and forward+backward throughput against a plain GEMM
// of the same FLOPs, measured in the same run.
//   nexa_bench_moe_layer [--json] [--quick] [--device cpu|cuda]
// --device cuda runs the GPU shapes instead (bench/cuda/moe_layer_cuda.cu).
#include <cstdio>
#include <cstring>
#include <string>

#include "bench_util.hpp"
#include "device_option.hpp"
#include "nexa/moe.hpp"

namespace {

struct Shape {
  std::string name;
  nexa::index_t tokens, d_model, d_ff, experts;
  int k;
};

// FLOPs of the experts' GEMMs in one forward: two products of [tokens*k, d] x [d, d_ff] size.
double expert_forward_flops(const Shape& s) {
  return 2.0 * 2.0 * static_cast<double>(s.tokens * s.k) * static_cast<double>(s.d_model * s.d_ff);
}

template <int K>
void run(const Shape& s, bool json) {
  using Layer = nexa::MoELayer<nexa::TopKRouter<K>, nexa::T5FFN<nexa::Relu>>;
  nexa::Rng rng(1);
  Layer layer({.d_model = s.d_model, .d_ff = s.d_ff, .num_experts = s.experts}, rng);
  auto x = nexa::Tensor<float>::randn({s.tokens, s.d_model}, rng);
  auto dy = nexa::Tensor<float>::randn({s.tokens, s.d_model}, rng, 1e-3);
  typename Layer::Cache cache;
  // The reference: a plain sgemm at the experts' aggregate shape, [tokens*k, d] x [d, d_ff].
  auto a = nexa::Tensor<float>::randn({s.tokens * s.k, s.d_model}, rng);
  auto b = nexa::Tensor<float>::randn({s.d_ff, s.d_model}, rng);
  auto c = nexa::Tensor<float>::uninitialized({s.tokens * s.k, s.d_ff});
  const auto t = nexa::bench::interleaved_median_seconds({
      [&] { nexa::ops::gemm(a, nexa::Trans::N, b, nexa::Trans::T, c); },
      [&] { (void)layer.forward(x, cache); },
      [&] {
        (void)layer.forward(x, cache);
        (void)layer.backward(dy, cache);
      },
  });
  const double t_gemm = t[0], t_fwd = t[1], t_fwdbwd = t[2];
  const double gemm =
      2.0 * static_cast<double>(s.tokens * s.k) * static_cast<double>(s.d_model * s.d_ff) / t_gemm * 1e-9;
  const double f = expert_forward_flops(s);
  const double fwd_gflops = f / t_fwd * 1e-9;
  const double fwdbwd_gflops = 3.0 * f / t_fwdbwd * 1e-9;  // backward = dX and dW products: 2x forward
  if (json) {
    std::printf(
        "{\"name\": \"%s\", \"tokens\": %lld, \"d_model\": %lld, \"d_ff\": %lld, \"experts\": %lld, \"k\": %d, "
        "\"seconds_fwd\": %.6f, \"seconds_fwdbwd\": %.6f, \"fwd_gflops\": %.2f, \"fwdbwd_gflops\": %.2f, "
        "\"gemm_gflops\": %.2f, \"fwd_gemm_ratio\": %.3f, \"fwdbwd_gemm_ratio\": %.3f}\n",
        s.name.c_str(), static_cast<long long>(s.tokens), static_cast<long long>(s.d_model),
        static_cast<long long>(s.d_ff), static_cast<long long>(s.experts), K, t_fwd, t_fwdbwd, fwd_gflops,
        fwdbwd_gflops, gemm, fwd_gflops / gemm, fwdbwd_gflops / gemm);
  } else {
    std::printf(
        "%-22s fwd %8.2f ms %7.1f GFLOP/s (%.2fx gemm)   fwd+bwd %8.2f ms %7.1f GFLOP/s (%.2fx gemm)   "
        "gemm %.1f GFLOP/s\n",
        s.name.c_str(), t_fwd * 1e3, fwd_gflops, fwd_gflops / gemm, t_fwdbwd * 1e3, fwdbwd_gflops, fwdbwd_gflops / gemm,
        gemm);
  }
  std::fflush(stdout);
}

// Router cost per token against the whole layer's (experts included), at one shape: forward and
// forward+backward, timed in alternation.
template <class RouterPolicy>
void run_router(const char* name, const Shape& s, bool json) {
  using Layer = nexa::MoELayer<RouterPolicy, nexa::T5FFN<nexa::Relu>>;
  nexa::Rng rng(2);
  Layer layer({.d_model = s.d_model, .d_ff = s.d_ff, .num_experts = s.experts, .domain_dim = 384}, rng);
  auto x = nexa::Tensor<float>::randn({s.tokens, s.d_model}, rng);
  auto dy = nexa::Tensor<float>::randn({s.tokens, s.d_model}, rng, 1e-3);
  auto dw = nexa::Tensor<float>::randn({s.tokens, s.k}, rng, 1e-3);
  typename Layer::Cache cache;
  typename Layer::RouterT::Cache router_cache;
  const auto t = nexa::bench::interleaved_median_seconds({
      [&] { (void)layer.router.route(x, router_cache); },
      [&] {
        (void)layer.router.route(x, router_cache);
        (void)layer.router.backward(dw.cview(), router_cache);
      },
      [&] { (void)layer.forward(x, cache); },
      [&] {
        (void)layer.forward(x, cache);
        (void)layer.backward(dy, cache);
      },
  });
  const double per_token = 1e6 / static_cast<double>(s.tokens);
  if (json) {
    std::printf(
        "{\"name\": \"%s\", \"tokens\": %lld, \"d_model\": %lld, \"experts\": %lld, \"k\": %d, "
        "\"router_us_per_token_fwd\": %.4f, \"layer_us_per_token_fwd\": %.4f, \"router_us_per_token_fwdbwd\": "
        "%.4f, \"layer_us_per_token_fwdbwd\": %.4f, \"router_over_layer_fwd\": %.4f, "
        "\"router_over_layer_fwdbwd\": %.4f}\n",
        name, static_cast<long long>(s.tokens), static_cast<long long>(s.d_model), static_cast<long long>(s.experts),
        s.k, t[0] * per_token, t[2] * per_token, t[1] * per_token, t[3] * per_token, t[0] / t[2], t[1] / t[3]);
  } else {
    std::printf("%-22s router %.3f us/token fwd (%.1f%% of the layer), %.3f us/token fwd+bwd (%.1f%%)\n", name,
                t[0] * per_token, 100 * t[0] / t[2], t[1] * per_token, 100 * t[1] / t[3]);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false, quick = false;
  std::string device = "cpu";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--device") == 0 && i + 1 < argc &&
               (std::strcmp(argv[i + 1], "cpu") == 0 || std::strcmp(argv[i + 1], "cuda") == 0)) {
      device = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--json] [--quick] [--device cpu|cuda]\n", argv[0]);
      return 2;
    }
  }
  if (device == "cuda") {
    return nexa::bench::run_on_cuda(argv[0], [](const auto& o) { return nexa::bench::moe_layer_bench_cuda(o); },
                                    {.json = json, .quick = quick});
  }
  const nexa::index_t tokens = quick ? 512 : 4096;
  try {
    run<2>({"default_E8_top2", tokens, 512, 2048, 8, 2}, json);
    run<2>({"E64_top2", tokens, 512, 2048, 64, 2}, json);
    run<1>({"E8_top1", tokens, 512, 2048, 8, 1}, json);
    const Shape base{"router", tokens, 512, 2048, 8, 2};
    run_router<nexa::TopKRouter<2>>("router_topk", base, json);
    run_router<nexa::NexusRouter<2>>("router_nexus", base, json);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nexa_bench_moe_layer: %s\n", e.what());
    return 1;
  }
  return 0;
}
