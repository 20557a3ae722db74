// nexa_bench_attention: full, local-global (window 64 and 512) and flash attention, forward and
// forward+backward, at n = 1k .. 20k tokens (B = 1, hidden 512, 8 heads of 64, fp32): time,
// achieved GFLOP/s and the peak of the memory the attention itself allocated (measured by
// counting operator new, alloc_tracker.hpp), with the fitted exponent of memory against n. Then
// encoders (Stack<PreLNBlock<Attn, T5FFN<Relu>>>, T5 relative bias) plain and Checkpointed: a
// 20,000-token sequence through 2 flash-attention blocks, and 4 full-attention blocks at 4096.
//   nexa_bench_attention [--json] [--quick] [--max-n N] [--variants full,local_global,flash,encoder]
//                        [--threads N] [--device cpu|cuda]
// --device cuda runs the GPU flash-attention kernels instead (bench/cuda/attention_cuda.cu).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "alloc_tracker.hpp"  // replaces operator new/delete in this executable: include in this TU only
#include "bench_util.hpp"
#include "device_option.hpp"
#include "nexa/attention/flash_attention.hpp"
#include "nexa/attention/full_attention.hpp"
#include "nexa/attention/local_global_attention.hpp"
#include "nexa/blocks/checkpointed.hpp"
#include "nexa/blocks/pre_ln_block.hpp"
#include "nexa/blocks/stack.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/nn/activation.hpp"
#include "nexa/ops/gemm.hpp"

namespace {

using nexa::index_t;
using nexa::Tensor;
using Clock = std::chrono::steady_clock;

constexpr index_t hidden = 512, heads = 8, head_dim = 64, d_ff = 2048;
// Full attention is skipped where its saved probabilities [heads, n, n] alone would exceed this.
constexpr double full_probs_budget = 6.0 * (1ull << 30);

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

const Clock::time_point program_start = Clock::now();

// Progress goes to stderr: the full run takes minutes.
template <class... Args>
void progress(const char* fmt, Args... args) {
  std::fprintf(stderr, "[%7.1f s] ", seconds_since(program_start));
  std::fprintf(stderr, fmt, args...);
  std::fputc('\n', stderr);
  std::fflush(stderr);
}

// The process's resident-set high-water mark (VmHWM), which writing "5" to /proc/self/clear_refs
// resets to the current RSS. Unlike the operator-new count it includes everything resident (the
// weights and inputs, BLAS and Eigen workspace, memory malloc keeps): a cross-check, not the figure.
bool reset_rss_peak() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}
std::int64_t rss_peak_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  return -1;
}

// A plain sgemm's rate, [2048, 512] x [512, 2048], taken just before each case (median of 3): the
// machine's state at that moment (other processes share these cores), to read the case's GFLOP/s
// against.
double sgemm_gflops() {
  static nexa::Rng rng(3);
  static const auto a = Tensor<float>::randn({2048, 512}, rng);
  static const auto b = Tensor<float>::randn({2048, 512}, rng);
  static auto c = Tensor<float>::uninitialized({2048, 2048});
  const double s =
      nexa::bench::median_seconds([] { nexa::ops::gemm(a, nexa::Trans::N, b, nexa::Trans::T, c); }, 3, 0.0);
  return 2.0 * 2048 * 512 * 2048 / s * 1e-9;
}

struct Timing {
  double seconds_fwd = 0, seconds_fwdbwd = 0;
  std::int64_t peak_bytes = 0;  // operator-new high-water mark of one forward+backward, over the baseline
  std::int64_t rss_peak = -1;   // process VmHWM during that forward+backward (-1: not available)
  int reps = 0;
  double sgemm_gflops = 0;  // the reference sgemm's rate just before the case
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Repetitions from the expected cost of one forward+backward: 5 with a warm-up below about a
// second, down to one run (the measured one, no warm-up) for the largest cases.
std::pair<int, bool> repetitions(double expected_seconds) {
  if (expected_seconds < 0.5) return {5, true};
  if (expected_seconds < 2.0) return {3, true};
  if (expected_seconds < 8.0) return {2, false};
  return {1, false};
}

// `run(t_fwd, t_fwdbwd)` does one forward then one backward with a fresh cache, timing both (the
// cache and results are freed after the clock stops). The first call is also the memory
// measurement: peak of live operator-new bytes over those live before it (module, inputs).
Timing measure(const std::function<void(double&, double&)>& run, double expected_seconds) {
  const auto [reps, warmup] = repetitions(expected_seconds);
  Timing t;
  t.reps = reps;
  t.sgemm_gflops = sgemm_gflops();
  std::vector<double> fwd, fwdbwd;
  const bool rss = reset_rss_peak();
  double f = 0, fb = 0;
  t.peak_bytes = nexa::bench::alloc::measure_peak([&] { run(f, fb); });
  t.rss_peak = rss ? rss_peak_bytes() : -1;
  if (!warmup) {
    fwd.push_back(f);
    fwdbwd.push_back(fb);
  }
  while (static_cast<int>(fwd.size()) < reps) {
    run(f, fb);
    fwd.push_back(f);
    fwdbwd.push_back(fb);
  }
  t.seconds_fwd = median(fwd);
  t.seconds_fwdbwd = median(fwdbwd);
  return t;
}

// ---- attention alone -------------------------------------------------------------------------

struct Flops {
  double core_fwd = 0, core_bwd = 0, proj_fwd = 0, proj_bwd = 0;
  [[nodiscard]] double fwd() const { return core_fwd + proj_fwd; }
  [[nodiscard]] double fwdbwd() const { return core_fwd + core_bwd + proj_fwd + proj_bwd; }
};

// Query-key pairs attended to per head: n^2 for full and flash; for local-global (global token
// 0 only), each other query's window |i - j| <= W/2 clipped to the sequence, plus key 0 when
// outside it, and the global query's whole row.
double visible_pairs(index_t n, index_t window) {
  if (window < 0) return static_cast<double>(n) * static_cast<double>(n);
  double pairs = static_cast<double>(n);  // query 0 is global: it sees every key
  for (index_t i = 1; i < n; ++i) {
    const index_t lo = std::max<index_t>(0, i - window / 2), hi = std::min<index_t>(n - 1, i + window / 2);
    pairs += static_cast<double>(hi - lo + 1) + (lo > 0 ? 1.0 : 0.0);
  }
  return pairs;
}

// Matmul FLOPs. Core: per visible pair and head, q.k and p*v are 2*head_dim each (4*head_dim
// forward); the backward's dV, dP, dQ, dK are 8*head_dim, and flash attention recomputes q.k
// (10*head_dim). Projections (Q, K, V: 3 of [n, hidden] x [hidden, 512]): 2*n*hidden*512 each
// forward, twice that backward (dW and dX). Softmax, masking and copies are not counted.
Flops attention_flops(index_t n, index_t window, bool recompute) {
  const double pairs = visible_pairs(n, window) * heads;
  const double inner = heads * head_dim;
  Flops f;
  f.core_fwd = 4.0 * head_dim * pairs;
  f.core_bwd = (recompute ? 10.0 : 8.0) * head_dim * pairs;
  f.proj_fwd = 3 * 2.0 * static_cast<double>(n) * hidden * inner;
  f.proj_bwd = 2 * f.proj_fwd;
  return f;
}

struct Point {
  index_t n;
  std::int64_t bytes;
};
// (variant, window) -> measured points, for the exponent fits.
std::map<std::pair<std::string, index_t>, std::vector<Point>> memory_points;

std::string window_json(index_t window) { return window < 0 ? "null" : std::to_string(window); }
std::string label(const std::string& variant, index_t window) {
  return window < 0 ? variant : variant + "(" + std::to_string(window) + ")";
}
double mib(std::int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// Rough seconds for `flops` on this machine (about 100 GFLOP/s achieved): only picks repetitions.
double expected_seconds(double flops) { return flops / 100e9; }

template <class Attn>
void run_attention(const std::string& variant, index_t window, index_t n, bool json) {
  const bool flash = variant == "flash";
  const Flops flops = attention_flops(n, window, flash);
  if (variant == "full") {
    const double probs = static_cast<double>(heads) * static_cast<double>(n) * static_cast<double>(n) * sizeof(float);
    if (probs > full_probs_budget) {
      const std::string why = "its [heads, n, n] probabilities alone would take " +
                              std::to_string(static_cast<long long>(probs / (1 << 20))) + " MiB, over the " +
                              std::to_string(static_cast<long long>(full_probs_budget / (1 << 20))) + " MiB budget";
      progress("skip %s n=%lld: %s", variant.c_str(), static_cast<long long>(n), why.c_str());
      if (json)
        std::printf("{\"variant\": \"%s\", \"window\": null, \"n\": %lld, \"skipped\": \"%s\"}\n", variant.c_str(),
                    static_cast<long long>(n), why.c_str());
      else
        std::printf("%-18s n=%6lld  skipped: %s\n", variant.c_str(), static_cast<long long>(n), why.c_str());
      std::fflush(stdout);
      return;
    }
  }
  progress("%s n=%lld ...", label(variant, window).c_str(), static_cast<long long>(n));
  nexa::Rng rng(7);
  Attn attn({.hidden = hidden, .heads = heads, .head_dim = head_dim}, rng);
  const auto x = Tensor<float>::randn({1, n, hidden}, rng);
  const auto dy = Tensor<float>::randn({1, n, heads * head_dim}, rng, 1e-3);
  Tensor<std::int32_t> global;
  if (window >= 0) {  // [CLS]-like: the first token is global
    global = Tensor<std::int32_t>::zeros({1, n});
    global.data()[0] = 1;
  }
  const Timing t = measure(
      [&](double& t_fwd, double& t_fwdbwd) {
        typename Attn::Cache cache;
        const auto start = Clock::now();
        Tensor<float> y = attn.forward(x.cview(), {}, cache, {}, global.cview());
        t_fwd = seconds_since(start);
        Tensor<float> dx = attn.backward(dy.cview(), cache);
        t_fwdbwd = seconds_since(start);
      },
      expected_seconds(flops.fwdbwd()));
  memory_points[{variant, window}].push_back({n, t.peak_bytes});

  const double gf_fwd = flops.fwd() / t.seconds_fwd * 1e-9, gf_fwdbwd = flops.fwdbwd() / t.seconds_fwdbwd * 1e-9;
  const double core_fwd = flops.core_fwd / t.seconds_fwd * 1e-9;
  const double core_fwdbwd = (flops.core_fwd + flops.core_bwd) / t.seconds_fwdbwd * 1e-9;
  if (json) {
    std::printf(
        "{\"variant\": \"%s\", \"window\": %s, \"n\": %lld, \"batch\": 1, \"hidden\": %lld, \"heads\": %lld, "
        "\"head_dim\": %lld, \"global_tokens\": %d, \"seconds_fwd\": %.6f, \"seconds_fwdbwd\": %.6f, "
        "\"gflops_fwd\": %.2f, \"gflops_fwdbwd\": %.2f, \"core_gflops_fwd\": %.2f, \"core_gflops_fwdbwd\": %.2f, "
        "\"core_gflop_fwd\": %.3f, \"core_gflop_bwd\": %.3f, \"proj_gflop_fwd\": %.3f, \"proj_gflop_bwd\": %.3f, "
        "\"peak_bytes\": %lld, \"rss_peak_bytes\": %lld, \"reps\": %d, \"sgemm_gflops\": %.1f, "
        "\"ratio_fwd_to_sgemm\": %.3f, \"ratio_fwdbwd_to_sgemm\": %.3f}\n",
        variant.c_str(), window_json(window).c_str(), static_cast<long long>(n), static_cast<long long>(hidden),
        static_cast<long long>(heads), static_cast<long long>(head_dim), window >= 0 ? 1 : 0, t.seconds_fwd,
        t.seconds_fwdbwd, gf_fwd, gf_fwdbwd, core_fwd, core_fwdbwd, flops.core_fwd * 1e-9, flops.core_bwd * 1e-9,
        flops.proj_fwd * 1e-9, flops.proj_bwd * 1e-9, static_cast<long long>(t.peak_bytes),
        static_cast<long long>(t.rss_peak), t.reps, t.sgemm_gflops, gf_fwd / t.sgemm_gflops,
        gf_fwdbwd / t.sgemm_gflops);
  } else {
    std::printf(
        "%-18s n=%6lld  fwd %9.2f ms %6.1f GFLOP/s   fwd+bwd %9.2f ms %6.1f GFLOP/s   peak %9.1f MiB   "
        "(rss hwm %7.0f MiB, %d rep%s, sgemm %.0f GFLOP/s; ratio to sgemm fwd %.2f, fwd+bwd %.2f)\n",
        label(variant, window).c_str(), static_cast<long long>(n), t.seconds_fwd * 1e3, gf_fwd, t.seconds_fwdbwd * 1e3,
        gf_fwdbwd, mib(t.peak_bytes), t.rss_peak < 0 ? -1.0 : mib(t.rss_peak), t.reps, t.reps == 1 ? "" : "s",
        t.sgemm_gflops, gf_fwd / t.sgemm_gflops, gf_fwdbwd / t.sgemm_gflops);
  }
  std::fflush(stdout);
}

// Least-squares slope of log(bytes) against log(n).
double fitted_exponent(const std::vector<Point>& pts) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const auto k = static_cast<double>(pts.size());
  for (const auto& p : pts) {
    const double x = std::log(static_cast<double>(p.n)), y = std::log(static_cast<double>(p.bytes));
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  return (k * sxy - sx * sy) / (k * sxx - sx * sx);
}

void report_exponents(bool json) {
  for (const auto& [key, pts] : memory_points) {
    const auto& [variant, window] = key;
    if (pts.size() < 2) continue;
    const double all = fitted_exponent(pts);
    const double top = fitted_exponent({pts[pts.size() - 2], pts.back()});  // between the two largest n
    if (json) {
      std::printf(
          "{\"variant\": \"%s\", \"window\": %s, \"memory_exponent\": %.3f, \"memory_exponent_top_two\": %.3f, "
          "\"points\": %zu, \"n_min\": %lld, \"n_max\": %lld}\n",
          variant.c_str(), window_json(window).c_str(), all, top, pts.size(), static_cast<long long>(pts.front().n),
          static_cast<long long>(pts.back().n));
    } else {
      std::printf(
          "%-18s memory ~ n^%.2f (least squares on log-log over %zu sizes, n = %lld .. %lld; n^%.2f between the "
          "two largest)\n",
          label(variant, window).c_str(), all, pts.size(), static_cast<long long>(pts.front().n),
          static_cast<long long>(pts.back().n), top);
    }
  }
  std::fflush(stdout);
}

// ---- encoders --------------------------------------------------------------------------------

using FFN = nexa::T5FFN<nexa::Relu>;

// Matmul FLOPs of one forward of one block: attention core (n^2 pairs), Q/K/V/O projections and
// the FFN's two products. Forward+backward counts the backward as twice the forward (plus the
// flash recompute of q.k), not the checkpointed blocks' second forward: the work the model needs.
Flops block_flops(index_t n, bool flash) {
  Flops f = attention_flops(n, -1, flash);
  const double inner = heads * head_dim;
  f.proj_fwd += 2.0 * static_cast<double>(n) * inner * hidden + 2 * 2.0 * static_cast<double>(n) * hidden * d_ff;
  f.proj_bwd = 2 * f.proj_fwd;
  return f;
}

template <class Block>
void run_encoder(const std::string& variant, const std::string& attention, index_t layers, index_t n, bool flash,
                 bool checkpointed, bool json) {
  progress("%s: %lld blocks x %lld tokens ...", variant.c_str(), static_cast<long long>(layers),
           static_cast<long long>(n));
  using Encoder = nexa::Stack<Block>;
  nexa::Rng rng(11);
  Encoder encoder(
      {.layers = layers,
       .block = {.d_model = hidden, .heads = heads, .head_dim = head_dim, .ffn = {.d_model = hidden, .d_ff = d_ff}},
       .relative_buckets = 32},
      rng);
  const auto x = Tensor<float>::randn({1, n, hidden}, rng);
  const auto dy = Tensor<float>::randn({1, n, hidden}, rng, 1e-3);
  const Flops per_block = block_flops(n, flash);
  const double fwd_flops = per_block.fwd() * static_cast<double>(layers);
  const double fwdbwd_flops = per_block.fwdbwd() * static_cast<double>(layers);
  const double expected = expected_seconds(fwdbwd_flops + (checkpointed ? fwd_flops : 0.0));
  const Timing t = measure(
      [&](double& t_fwd, double& t_fwdbwd) {
        typename Encoder::Cache cache;
        const auto start = Clock::now();
        Tensor<float> y = encoder.forward(x.cview(), {}, cache);
        t_fwd = seconds_since(start);
        Tensor<float> dx = encoder.backward(dy.cview(), cache);
        t_fwdbwd = seconds_since(start);
      },
      expected);
  const double tokens_per_s = static_cast<double>(n) / t.seconds_fwdbwd;
  if (json) {
    std::printf(
        "{\"variant\": \"%s\", \"attention\": \"%s\", \"checkpointed\": %s, \"window\": null, \"layers\": %lld, "
        "\"n\": %lld, \"d_model\": %lld, \"heads\": %lld, \"head_dim\": %lld, \"d_ff\": %lld, "
        "\"relative_buckets\": 32, \"seconds_fwd\": %.6f, \"seconds_fwdbwd\": %.6f, \"gflops_fwd\": %.2f, "
        "\"gflops_fwdbwd\": %.2f, \"tokens_per_second_fwdbwd\": %.1f, \"peak_bytes\": %lld, "
        "\"rss_peak_bytes\": %lld, \"reps\": %d, \"sgemm_gflops\": %.1f}\n",
        variant.c_str(), attention.c_str(), checkpointed ? "true" : "false", static_cast<long long>(layers),
        static_cast<long long>(n), static_cast<long long>(hidden), static_cast<long long>(heads),
        static_cast<long long>(head_dim), static_cast<long long>(d_ff), t.seconds_fwd, t.seconds_fwdbwd,
        fwd_flops / t.seconds_fwd * 1e-9, fwdbwd_flops / t.seconds_fwdbwd * 1e-9, tokens_per_s,
        static_cast<long long>(t.peak_bytes), static_cast<long long>(t.rss_peak), t.reps, t.sgemm_gflops);
  } else {
    std::printf(
        "%-30s %lld blocks x %6lld tokens  fwd %8.2f s   fwd+bwd %8.2f s (%6.1f GFLOP/s, %7.0f tokens/s)   peak "
        "%8.1f MiB   (rss hwm %7.0f MiB, %d rep%s, sgemm %.0f GFLOP/s)\n",
        variant.c_str(), static_cast<long long>(layers), static_cast<long long>(n), t.seconds_fwd, t.seconds_fwdbwd,
        fwdbwd_flops / t.seconds_fwdbwd * 1e-9, tokens_per_s, mib(t.peak_bytes),
        t.rss_peak < 0 ? -1.0 : mib(t.rss_peak), t.reps, t.reps == 1 ? "" : "s", t.sgemm_gflops);
  }
  std::fflush(stdout);
}

template <class Attn>
void run_encoder_pair(const std::string& name, index_t layers, index_t n, bool flash, bool json) {
  using Block = nexa::PreLNBlock<Attn, FFN>;
  run_encoder<Block>("encoder_" + name, name, layers, n, flash, false, json);
  run_encoder<nexa::Checkpointed<Block>>("encoder_" + name + "_checkpointed", name, layers, n, flash, true, json);
}

std::set<std::string> split_list(const std::string& s) {
  std::set<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.insert(item);
  return out;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--json] [--quick] [--max-n N] [--variants LIST] [--threads N] [--device cpu|cuda]\n"
               "  LIST: comma-separated of full, local_global, flash, encoder (default: all)\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false, quick = false;
  index_t max_n = 20000;
  std::set<std::string> variants{"full", "local_global", "flash", "encoder"};
  std::string device = "cpu";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") {
      json = true;
    } else if (arg == "--quick") {
      quick = true;
    } else if (arg == "--max-n" && i + 1 < argc) {
      max_n = std::atoll(argv[++i]);
      if (max_n <= 0) return usage(argv[0]);
    } else if (arg == "--variants" && i + 1 < argc) {
      variants = split_list(argv[++i]);
      for (const auto& v : variants)
        if (v != "full" && v != "local_global" && v != "flash" && v != "encoder") return usage(argv[0]);
    } else if (arg == "--device" && i + 1 < argc) {
      device = argv[++i];
      if (device != "cpu" && device != "cuda") return usage(argv[0]);
    } else if (arg == "--threads" && i + 1 < argc) {
      const int threads = std::atoi(argv[++i]);
      if (threads <= 0) return usage(argv[0]);
#ifdef _OPENMP
      omp_set_num_threads(threads);
#endif
    } else {
      return usage(argv[0]);
    }
  }
  if (device == "cuda") {
    return nexa::bench::run_on_cuda(argv[0], [](const auto& o) { return nexa::bench::attention_bench_cuda(o); },
                                    {.json = json, .quick = quick, .max_n = max_n});
  }
  if (quick) max_n = std::min<index_t>(max_n, 2048);
  std::vector<index_t> sizes;
  for (index_t n : {1024, 2048, 4096, 8192, 16384, 20000})
    if (n <= max_n) sizes.push_back(n);

  try {
    for (index_t n : sizes) {
      if (variants.count("full")) run_attention<nexa::FullAttention<>>("full", -1, n, json);
      if (variants.count("local_global")) {
        run_attention<nexa::LocalGlobalAttention<64>>("local_global", 64, n, json);
        run_attention<nexa::LocalGlobalAttention<512>>("local_global", 512, n, json);
      }
      if (variants.count("flash")) run_attention<nexa::FlashAttention<>>("flash", -1, n, json);
    }
    report_exponents(json);
    if (variants.count("encoder")) {
      // The long-context encoder: one sequence of up to 20,000 tokens through 2 flash blocks.
      run_encoder_pair<nexa::FlashAttention<>>("flash", 2, std::min<index_t>(20000, max_n), true, json);
      // Where checkpointing matters more: 4 full-attention blocks, each keeping [heads, n, n].
      run_encoder_pair<nexa::FullAttention<>>("full", 4, std::min<index_t>(4096, max_n), false, json);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nexa_bench_attention: %s\n", e.what());
    return 1;
  }
  progress("done");
  return 0;
}
