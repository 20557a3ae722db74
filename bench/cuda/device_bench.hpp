#pragma once
// The GPU halves of nexa_bench_moe_layer and nexa_bench_attention (`--device cuda`). They live in
// .cu files compiled only when the project is configured with CUDA (NEXA_BENCH_CUDA defined);
// without it, `--device cuda` says so and exits with an error.
#include <cstdint>
#include <type_traits>

#include "nexa/core/half.hpp"

namespace nexa::bench {

struct DeviceBenchOptions {
  bool json = false;
  bool quick = false;      // smaller shapes, fewer repetitions: a smoke run
  std::int64_t max_n = 0;  // attention: longest sequence (0: the default list)
};

// Each returns a process exit code (0: ran; 1: no usable GPU or a CUDA error, with the reason on stderr).
int moe_layer_bench_cuda(const DeviceBenchOptions& options);
int attention_bench_cuda(const DeviceBenchOptions& options);

// The dtype's name in the reports.
template <class T>
constexpr const char* dtype_name() {
  if constexpr (std::is_same_v<T, bfloat16>)
    return "bf16";
  else if constexpr (std::is_same_v<T, half>)
    return "fp16";
  else if constexpr (std::is_same_v<T, double>)
    return "fp64";
  else
    return "fp32";
}

}  // namespace nexa::bench
