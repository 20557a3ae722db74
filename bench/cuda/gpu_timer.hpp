#pragma once
// Timing on the GPU: CUDA events around repetitions on the current nexa stream, several rounds
// interleaved across the measured functions (so clock and thermal drift hit them alike), the
// median round per repetition reported.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <vector>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"

namespace nexa::bench {

// Seconds per call of each function: `warmup` untimed calls each, then `rounds` rounds of `reps`
// calls each, timed by events on the current stream; the median round.
inline std::vector<double> gpu_interleaved_seconds(const std::vector<std::function<void()>>& fns, int reps = 5,
                                                   int rounds = 5, int warmup = 2) {
  const cudaStream_t stream = cuda_backend::current_stream();
  for (const auto& fn : fns)
    for (int i = 0; i < warmup; ++i) fn();
  NEXA_CUDA_CHECK(cudaStreamSynchronize(stream));
  cudaEvent_t start = nullptr, stop = nullptr;
  NEXA_CUDA_CHECK(cudaEventCreate(&start));
  NEXA_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<std::vector<double>> samples(fns.size());
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t f = 0; f < fns.size(); ++f) {
      NEXA_CUDA_CHECK(cudaEventRecord(start, stream));
      for (int i = 0; i < reps; ++i) fns[f]();
      NEXA_CUDA_CHECK(cudaEventRecord(stop, stream));
      NEXA_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      NEXA_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      samples[f].push_back(static_cast<double>(ms) * 1e-3 / reps);
    }
  }
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  std::vector<double> median;
  for (auto& s : samples) {
    std::sort(s.begin(), s.end());
    median.push_back(s[s.size() / 2]);
  }
  return median;
}

// Whether a GPU can be used; prints why not to stderr.
inline bool gpu_available() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    std::fprintf(stderr, "--device cuda: no usable CUDA device (%s)\n",
                 status != cudaSuccess ? cudaGetErrorString(status) : "none found");
    return false;
  }
  return true;
}

}  // namespace nexa::bench
