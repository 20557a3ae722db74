#pragma once
// `--device cpu|cuda` for the benchmarks: runs the GPU half (bench/cuda/) where it was built,
// and says plainly when it was not.
#include <cstdio>
#include <string>

#include "cuda/device_bench.hpp"

namespace nexa::bench {

// Returns the exit code of the GPU run, or 2 (with a message) when this build has no CUDA.
template <class Run>
int run_on_cuda(const char* program, Run&& run, const DeviceBenchOptions& options) {
#ifdef NEXA_BENCH_CUDA
  (void)program;
  return run(options);
#else
  (void)run;
  (void)options;
  std::fprintf(stderr,
               "%s: --device cuda needs a build configured with CUDA (nvcc found, NEXA_CUDA=ON); this one has none\n",
               program);
  return 2;
#endif
}

}  // namespace nexa::bench
