#pragma once
// CUDA routing kernels: the same functions and semantics as RoutingKernel<cpu>
// (backend/cpu/routing.hpp). All pointers are device pointers except `offsets` in
// group_by_expert, which is host memory (DispatchPlan::offsets). Work is queued on the current
// context's stream (context.hpp); only group_by_expert waits for it, to return the offsets.
//   softmax_topk          one warp per token: max, exp and sum by warp reduction, then k rounds
//                         of warp arg-max over (probability desc, index asc), so ties go to the
//                         lower index exactly as on the CPU.
//   group_by_expert       stable counting sort: histogram per (expert, tile), one exclusive scan
//                         (CUB) in expert-major order, then placement where one warp walks each
//                         tile in token order; no atomics decide a slot, so slots are the CPU's.
//   combines              each output element is summed by one thread (one warp for the
//                         dot products, reduced in a fixed tree) in a fixed order: no atomics on
//                         outputs, so results are bitwise reproducible from run to run.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/routing.hpp holds CUDA kernels: compile this file with nvcc"
#endif

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cub/device/device_scan.cuh>
#include <limits>
#include <vector>

#include "nexa/backend/cuda/buffer.hpp"
#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/launch.hpp"
#include "nexa/core/device.hpp"
#include "nexa/ops/routing_fwd.hpp"

namespace nexa {

namespace cuda_backend {

// Launch shapes and warp reductions come from launch.hpp; these int views suit the index arithmetic here.
inline constexpr int warp_size = static_cast<int>(launch::warp);
inline constexpr int block_threads = static_cast<int>(launch::threads);
inline constexpr int warps_per_block = static_cast<int>(launch::warps_per_block);
using launch::blocks_for;
using launch::device_exp;
using launch::full_mask;
using launch::threads_for_row;
using launch::warp_max;
using launch::warp_sum;

template <class A>
__global__ void softmax_topk_kernel(const A* logits, index_t tokens, int num_experts, int k, bool renormalize, A* probs,
                                    std::int32_t* experts, A* weights) {
  const int lane = static_cast<int>(threadIdx.x % warp_size);
  for (index_t t = launch::warp_index(); t < tokens; t += launch::warp_stride()) {
    const A* z = logits + t * num_experts;
    A* p = probs + t * num_experts;
    A zmax = -static_cast<A>(INFINITY);
    for (int e = lane; e < num_experts; e += warp_size) zmax = z[e] > zmax ? z[e] : zmax;
    zmax = warp_max(zmax);
    A sum = 0;
    for (int e = lane; e < num_experts; e += warp_size) {
      const A v = device_exp(z[e] - zmax);
      p[e] = v;
      sum += v;
    }
    sum = warp_sum(sum);
    for (int e = lane; e < num_experts; e += warp_size) p[e] /= sum;
    __syncwarp();  // lane 0 reads other lanes' probabilities below

    // Round j picks the largest element in the order (probability desc, index asc) that comes
    // after round j-1's pick: the CPU's repeated scan, without marking what was taken. NaN
    // probabilities sort last, so every round finds a valid index.
    A prev_key = 0;
    int prev = -1;
    std::int32_t* idx = experts + t * k;
    A* w = weights + t * k;
    for (int j = 0; j < k; ++j) {
      A best_key = 0;
      int best = -1;
      for (int e = lane; e < num_experts; e += warp_size) {
        const A key = p[e] == p[e] ? p[e] : -static_cast<A>(INFINITY);
        const bool eligible = prev < 0 || key < prev_key || (key == prev_key && e > prev);
        if (eligible && (best < 0 || key > best_key)) {
          best_key = key;
          best = e;
        }
      }
      for (int offset = warp_size / 2; offset > 0; offset /= 2) {
        const A other_key = __shfl_xor_sync(full_mask, best_key, offset);
        const int other = __shfl_xor_sync(full_mask, best, offset);
        if (other >= 0 && (best < 0 || other_key > best_key || (other_key == best_key && other < best))) {
          best_key = other_key;
          best = other;
        }
      }
      prev_key = best_key;
      prev = best;
      if (lane == 0) {
        idx[j] = best;
        w[j] = p[best];
      }
    }
    if (renormalize && lane == 0) {
      A s = 0;
      for (int j = 0; j < k; ++j) s += w[j];
      for (int j = 0; j < k; ++j) w[j] /= s;
    }
  }
}

template <class A>
__global__ void softmax_topk_backward_kernel(const A* probs, const std::int32_t* experts, const A* weights,
                                             const A* d_weights, const A* d_probs, index_t tokens, int num_experts,
                                             int k, bool renormalize, A* d_logits) {
  const int lane = static_cast<int>(threadIdx.x % warp_size);
  for (index_t t = launch::warp_index(); t < tokens; t += launch::warp_stride()) {
    const A* p = probs + t * num_experts;
    const std::int32_t* idx = experts + t * k;
    const A* w = weights + t * k;
    const A* dw = d_weights + t * k;
    A* dz = d_logits + t * num_experts;
    // w_j = p_j / s with s = sum over the k chosen: dp_j = (dw_j - sum_i dw_i w_i) / s.
    A s = 0, wdot = 0;
    if (renormalize) {
      for (int j = 0; j < k; ++j) s += p[idx[j]];
      for (int j = 0; j < k; ++j) wdot += dw[j] * w[j];
    }
    A dot = 0;
    for (int e = lane; e < num_experts; e += warp_size) {
      A g = d_probs ? d_probs[t * num_experts + e] : A(0);  // dL/dp_e, summed in j order as on the CPU
      for (int j = 0; j < k; ++j) {
        if (idx[j] == e) g += renormalize ? (dw[j] - wdot) / s : dw[j];
      }
      dz[e] = g;
      dot += p[e] * g;
    }
    dot = warp_sum(dot);
    for (int e = lane; e < num_experts; e += warp_size) dz[e] = p[e] * (dz[e] - dot);
  }
}

// group_by_expert, step 1: counts[e * tiles + tile] = assignments of expert e in the tile; the
// lowest out-of-range assignment goes to *first_bad.
template <class Unused = void>
__global__ void group_count_kernel(const std::int32_t* experts, index_t count, int num_experts, index_t tile,
                                   index_t tiles, int* counts, unsigned long long* first_bad) {
  for (index_t a = launch::thread_index(); a < count; a += launch::thread_stride()) {
    const int e = experts[a];
    if (e < 0 || e >= num_experts)
      atomicMin(first_bad, static_cast<unsigned long long>(a));
    else
      atomicAdd(counts + e * tiles + a / tile, 1);
  }
}

// Step 3: after the exclusive scan, info[e] = offsets[e] (the first slot of expert e, i.e. of its
// tile 0), info[E] = count, info[E + 1] = the first bad assignment or -1.
template <class Unused = void>
__global__ void group_offsets_kernel(const int* cursor, int num_experts, index_t tiles, index_t count,
                                     const unsigned long long* first_bad, index_t* info) {
  for (index_t e = launch::thread_index(); e <= num_experts + 1; e += launch::thread_stride()) {
    if (e < num_experts)
      info[e] = cursor[e * tiles];
    else if (e == num_experts)
      info[e] = count;
    else
      info[e] = *first_bad == ~0ull ? index_t{-1} : static_cast<index_t>(*first_bad);
  }
}

// Step 4: one warp per tile walks it 32 assignments at a time, in order. Lanes with the same
// expert rank themselves by lane; the lowest of them advances that expert's cursor for the tile.
// Only this warp touches the tile's cursors, so placement is stable and free of races.
template <class Unused = void>
__global__ void group_place_kernel(const std::int32_t* experts, index_t count, int k, int num_experts, index_t tile,
                                   index_t tiles, int* cursor, std::int32_t* slot_token,
                                   std::int32_t* assignment_slot) {
  const int lane = static_cast<int>(threadIdx.x % warp_size);
  const unsigned lower_lanes = (1u << lane) - 1u;
  for (index_t tl = launch::warp_index(); tl < tiles; tl += launch::warp_stride()) {
    const index_t end = (tl + 1) * tile < count ? (tl + 1) * tile : count;
    for (index_t base = tl * tile; base < end; base += warp_size) {
      const index_t a = base + lane;
      int e = -1;  // out of range or past the end: placed nowhere
      if (a < end) {
        e = experts[a];
        if (e < 0 || e >= num_experts) e = -1;
      }
      const unsigned peers = __match_any_sync(full_mask, e);
      const int leader = __ffs(static_cast<int>(peers)) - 1;
      int first = 0;
      if (lane == leader && e >= 0) {
        int* c = cursor + e * tiles + tl;
        first = *c;
        *c = first + __popc(peers);
      }
      first = __shfl_sync(full_mask, first, leader);
      if (e >= 0) {
        const int slot = first + __popc(peers & lower_lanes);
        slot_token[slot] = static_cast<std::int32_t>(a / k);
        assignment_slot[a] = slot;
      }
      __syncwarp();  // the next group's leader reads the cursors written above
    }
  }
}

template <class T>
__global__ void gather_rows_kernel(const T* src, const std::int32_t* index, index_t count, index_t width, T* dst) {
  for (index_t s = blockIdx.x; s < count; s += gridDim.x) {
    const T* row = src + static_cast<index_t>(index[s]) * width;
    for (index_t c = threadIdx.x; c < width; c += blockDim.x) dst[s * width + c] = row[c];
  }
}

template <class T, class W>
__global__ void weighted_combine_kernel(const T* src, const std::int32_t* assignment_slot, const W* weights,
                                        index_t tokens, index_t k, index_t width, T beta, T* dst) {
  for (index_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    for (index_t c = threadIdx.x; c < width; c += blockDim.x) {
      T out = beta == T(0) ? T(0) : beta == T(1) ? dst[t * width + c] : beta * dst[t * width + c];
      for (index_t j = 0; j < k; ++j) {
        const index_t slot = assignment_slot[t * k + j];
        if (slot < 0) continue;  // dropped by the capacity limit
        const T w = weights ? static_cast<T>(weights[t * k + j]) : T(1);
        out += w * src[slot * width + c];
      }
      dst[t * width + c] = out;
    }
  }
}

template <class T, class W>
__global__ void scatter_weighted_kernel(const T* src, const std::int32_t* assignment_slot, const W* weights,
                                        index_t tokens, index_t k, index_t width, T* dst) {
  for (index_t r = blockIdx.x; r < tokens * k; r += gridDim.x) {  // r = t * k + j
    const index_t t = r / k;
    if (assignment_slot[r] < 0) continue;
    T* out = dst + static_cast<index_t>(assignment_slot[r]) * width;
    const T w = static_cast<T>(weights[r]);
    for (index_t c = threadIdx.x; c < width; c += blockDim.x) out[c] = w * src[t * width + c];
  }
}

template <class T, class W>
__global__ void combine_weight_grad_kernel(const T* dy, const T* expert_out, const std::int32_t* assignment_slot,
                                           index_t tokens, index_t k, index_t width, W* d_weights) {
  const int lane = static_cast<int>(threadIdx.x % warp_size);
  for (index_t r = launch::warp_index(); r < tokens * k; r += launch::warp_stride()) {  // r = t * k + j
    const T* y = dy + (r / k) * width;
    if (assignment_slot[r] < 0) {  // the whole warp takes this branch: r is per warp
      if (lane == 0) d_weights[r] = W(0);
      continue;
    }
    const T* row = expert_out + static_cast<index_t>(assignment_slot[r]) * width;
    W dot = 0;
    for (index_t c = lane; c < width; c += warp_size) dot += static_cast<W>(y[c]) * static_cast<W>(row[c]);
    dot = warp_sum(dot);
    if (lane == 0) d_weights[r] = dot;
  }
}

}  // namespace cuda_backend

template <>
struct RoutingKernel<cuda> {
  template <class A>
  static void softmax_topk(const A* logits, index_t tokens, index_t num_experts, index_t k, bool renormalize, A* probs,
                           std::int32_t* experts, A* weights) {
    using namespace cuda_backend;
    if (tokens == 0) return;
    require(num_experts <= std::numeric_limits<int>::max(), "softmax_topk", "at most 2^31 - 1 experts, got ",
            num_experts);
    softmax_topk_kernel<A><<<blocks_for(tokens, warps_per_block), block_threads, 0, current_stream()>>>(
        logits, tokens, static_cast<int>(num_experts), static_cast<int>(k), renormalize, probs, experts, weights);
    check_launch("softmax_topk_kernel");
  }

  template <class A>
  static void softmax_topk_backward(const A* probs, const std::int32_t* experts, const A* weights, const A* d_weights,
                                    const A* d_probs, index_t tokens, index_t num_experts, index_t k, bool renormalize,
                                    A* d_logits) {
    using namespace cuda_backend;
    if (tokens == 0 || num_experts == 0) return;
    require(num_experts <= std::numeric_limits<int>::max(), "softmax_topk_backward", "at most 2^31 - 1 experts, got ",
            num_experts);
    softmax_topk_backward_kernel<A><<<blocks_for(tokens, warps_per_block), block_threads, 0, current_stream()>>>(
        probs, experts, weights, d_weights, d_probs, tokens, static_cast<int>(num_experts), static_cast<int>(k),
        renormalize, d_logits);
    check_launch("softmax_topk_backward_kernel");
  }

  // Also checks the expert indices (the CPU front end does that on the host): an index outside
  // [0, num_experts) raises nexa::Error naming the first such assignment. Waits for the stream.
  static void group_by_expert(const std::int32_t* experts, index_t tokens, index_t k, index_t num_experts,
                              index_t* offsets, std::int32_t* slot_token, std::int32_t* assignment_slot) {
    using namespace cuda_backend;
    const index_t count = tokens * k;
    std::fill(offsets, offsets + num_experts + 1, index_t{0});
    if (count == 0) return;
    require(count <= std::numeric_limits<std::int32_t>::max(), "group_by_expert", "at most 2^31 - 1 assignments, got ",
            count);
    require(num_experts >= 0 && num_experts <= std::numeric_limits<int>::max(), "group_by_expert",
            "number of experts must be in [0, 2^31 - 1], got ", num_experts);
    const cudaStream_t stream = current_stream();
    // Tiles of whole warps' worth of assignments, larger with more experts so that the
    // [experts x tiles] count table stays about the size of the input.
    const index_t tile = warp_size * std::clamp<index_t>((num_experts + warp_size - 1) / warp_size, 8, 256);
    const index_t tiles = (count + tile - 1) / tile;
    const index_t cells = num_experts * tiles;
    require(cells <= std::numeric_limits<std::int32_t>::max(), "group_by_expert", "too many experts (", num_experts,
            ") for ", count, " assignments");

    // One scratch allocation: [cells] int counts (scanned in place), [E + 2] info, the bad flag,
    // then CUB's temporary storage.
    std::size_t scan_bytes = 0;
    if (cells > 0)
      NEXA_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, static_cast<int*>(nullptr), cells, stream));
    const auto align = [](std::size_t bytes) { return (bytes + 255) / 256 * 256; };
    const std::size_t counts_bytes = align(static_cast<std::size_t>(cells) * sizeof(int));
    const std::size_t info_bytes = align(static_cast<std::size_t>(num_experts + 2) * sizeof(index_t));
    const std::size_t bad_bytes = align(sizeof(unsigned long long));
    Buffer<unsigned char, cuda> scratch(counts_bytes + info_bytes + bad_bytes + scan_bytes);
    unsigned char* base = scratch.data();
    int* counts = reinterpret_cast<int*>(base);
    index_t* info = reinterpret_cast<index_t*>(base + counts_bytes);
    auto* first_bad = reinterpret_cast<unsigned long long*>(base + counts_bytes + info_bytes);
    void* scan_storage = base + counts_bytes + info_bytes + bad_bytes;

    if (cells > 0) NEXA_CUDA_CHECK(cudaMemsetAsync(counts, 0, static_cast<std::size_t>(cells) * sizeof(int), stream));
    NEXA_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xff, sizeof(unsigned long long), stream));
    const int e_count = static_cast<int>(num_experts);
    group_count_kernel<><<<blocks_for(count, block_threads), block_threads, 0, stream>>>(experts, count, e_count, tile,
                                                                                         tiles, counts, first_bad);
    check_launch("group_count_kernel");
    if (cells > 0) NEXA_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(scan_storage, scan_bytes, counts, cells, stream));
    group_offsets_kernel<><<<blocks_for(num_experts + 2, block_threads), block_threads, 0, stream>>>(
        counts, e_count, tiles, count, first_bad, info);
    check_launch("group_offsets_kernel");
    group_place_kernel<><<<blocks_for(tiles, warps_per_block), block_threads, 0, stream>>>(
        experts, count, static_cast<int>(k), e_count, tile, tiles, counts, slot_token, assignment_slot);
    check_launch("group_place_kernel");

    std::vector<index_t> host(static_cast<std::size_t>(num_experts + 2));
    NEXA_CUDA_CHECK(cudaMemcpyAsync(host.data(), info, host.size() * sizeof(index_t), cudaMemcpyDeviceToHost, stream));
    NEXA_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (const index_t bad = host.back(); bad >= 0) {
      std::int32_t value = 0;
      NEXA_CUDA_CHECK(cudaMemcpyAsync(&value, experts + bad, sizeof value, cudaMemcpyDeviceToHost, stream));
      NEXA_CUDA_CHECK(cudaStreamSynchronize(stream));
      throw Error(detail::concat("group_by_expert: expert index ", value, " at assignment ", bad, " is outside [0, ",
                                 num_experts, ")"));
    }
    std::copy_n(host.begin(), num_experts + 1, offsets);
  }

  template <class T>
  static void gather_rows(const T* src, const std::int32_t* index, index_t count, index_t width, T* dst) {
    using namespace cuda_backend;
    if (count == 0 || width == 0) return;
    gather_rows_kernel<T>
        <<<blocks_for(count, 1), threads_for_row(width), 0, current_stream()>>>(src, index, count, width, dst);
    check_launch("gather_rows_kernel");
  }

  template <class T, class W>
  static void weighted_combine(const T* src, const std::int32_t* assignment_slot, const W* weights, index_t tokens,
                               index_t k, index_t width, T beta, T* dst) {
    using namespace cuda_backend;
    if (tokens == 0 || width == 0) return;
    weighted_combine_kernel<T, W><<<blocks_for(tokens, 1), threads_for_row(width), 0, current_stream()>>>(
        src, assignment_slot, weights, tokens, k, width, beta, dst);
    check_launch("weighted_combine_kernel");
  }

  template <class T, class W>
  static void scatter_weighted(const T* src, const std::int32_t* assignment_slot, const W* weights, index_t tokens,
                               index_t k, index_t width, T* dst) {
    using namespace cuda_backend;
    if (tokens * k == 0 || width == 0) return;
    scatter_weighted_kernel<T, W><<<blocks_for(tokens * k, 1), threads_for_row(width), 0, current_stream()>>>(
        src, assignment_slot, weights, tokens, k, width, dst);
    check_launch("scatter_weighted_kernel");
  }

  template <class T, class W>
  static void combine_weight_grad(const T* dy, const T* expert_out, const std::int32_t* assignment_slot, index_t tokens,
                                  index_t k, index_t width, W* d_weights) {
    using namespace cuda_backend;
    if (tokens * k == 0) return;
    combine_weight_grad_kernel<T, W><<<blocks_for(tokens * k, warps_per_block), block_threads, 0, current_stream()>>>(
        dy, expert_out, assignment_slot, tokens, k, width, d_weights);
    check_launch("combine_weight_grad_kernel");
  }
};

}  // namespace nexa
