#pragma once
// CUDA dropout kernel: the mask of DropoutKernel<cpu> (ops/dropout_fwd.hpp), bit for bit. Each
// thread takes one group of four mask elements (one Philox4x32-10 call, the same arithmetic as
// core/rng.hpp) in a grid-stride loop; the kept values are x * scale, exactly as on the CPU.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/dropout.hpp holds CUDA kernels: compile this file with nvcc"
#endif

#include <cuda_runtime.h>

#include <cstdint>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/launch.hpp"
#include "nexa/ops/dropout_fwd.hpp"

namespace nexa {

namespace cuda_backend {

// Philox4x32-10 for counter (index, stream id) and key seed: detail::philox4x32_10 on the device.
struct PhiloxWords {
  std::uint32_t w[4];
};
__device__ inline PhiloxWords philox_bits(std::uint64_t seed, std::uint64_t id, std::uint64_t index) {
  std::uint32_t c0 = static_cast<std::uint32_t>(index), c1 = static_cast<std::uint32_t>(index >> 32);
  std::uint32_t c2 = static_cast<std::uint32_t>(id), c3 = static_cast<std::uint32_t>(id >> 32);
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
  constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t{m0} * c0;
    const std::uint64_t p1 = std::uint64_t{m1} * c2;
    const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n1 = static_cast<std::uint32_t>(p1);
    const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
    const std::uint32_t n3 = static_cast<std::uint32_t>(p0);
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += w0;
    k1 += w1;
  }
  return {{c0, c1, c2, c3}};
}

// x[e] gets mask element first + e, for e in [0, n).
template <class T>
__global__ void dropout_kernel(std::uint64_t seed, std::uint64_t id, std::uint64_t base, std::uint64_t threshold,
                               T scale, std::uint64_t first, T* x, index_t n) {
  const std::uint64_t first_group = first / 4;
  const std::uint64_t end = first + static_cast<std::uint64_t>(n);
  const std::uint64_t groups = (end + 3) / 4 - first_group;
  for (std::uint64_t g = static_cast<std::uint64_t>(launch::thread_index()); g < groups;
       g += static_cast<std::uint64_t>(launch::thread_stride())) {
    const std::uint64_t group = first_group + g;
    const PhiloxWords bits = philox_bits(seed, id, base + group);
    for (std::uint64_t lane = 0; lane < 4; ++lane) {
      const std::uint64_t index = group * 4 + lane;
      if (index < first || index >= end) continue;
      T& v = x[index - first];
      v = bits.w[lane] >= threshold ? v * scale : T(0);
    }
  }
}

}  // namespace cuda_backend

template <>
struct DropoutKernel<cuda> {
  template <class T>
  static void apply(const RandomStream& stream, std::uint64_t call, std::uint64_t threshold, T scale, T* x, index_t n) {
    apply_range(stream, call, threshold, scale, 0, x, n);
  }
  template <class T>
  static void apply_range(const RandomStream& stream, std::uint64_t call, std::uint64_t threshold, T scale,
                          std::uint64_t first, T* x, index_t n) {
    if (n <= 0) return;
    const index_t groups = n / 4 + 2;  // at most this many groups of four overlap [first, first + n)
    cuda_backend::dropout_kernel<<<cuda_backend::launch::blocks_for(groups), cuda_backend::launch::threads, 0,
                                   cuda_backend::current_stream()>>>(stream.seed(), stream.id(), call << 40, threshold,
                                                                     scale, first, x, n);
    cuda_backend::check_launch("dropout_kernel");
  }
};

}  // namespace nexa
