#pragma once
// FlashAttentionKernel<cuda>: FlashAttention-2 (Dao 2023) forward and backward, the same
// math and layouts as the CPU FlashScores (padding mask, causal, additive [heads, 2S - 1] relative
// bias; a query that sees no key gets uniform weights over all keys and logsumexp +inf).
//
// Forward: one thread block per (query tile, batch * head). Q, the running output and each K/V tile
// sit in shared memory; the score tile is computed, the online softmax (running max and sum, the
// output rescaled by exp(m_old - m_new)) runs one row per thread, then O = O * rescale + P V. Only
// O and the row logsumexp are written: memory O(S).
// Backward, deterministic (no atomics, every output element summed by one thread in a fixed order):
//   1. D_i = rowsum(dO_i * O_i);
//   2. per key tile, a pass over the query tiles that see it: P = exp(S - L) recomputed,
//      dV += P^T dO, dS = P (dO V^T - D), dK += scale dS^T Q;
//   3. per query tile, a pass over the key tiles: dQ += scale dS K;
//   4. the bias gradient: one thread per (head, offset j - i) sums dS over batches and queries in
//      order, recomputing each dS entry (two dot products), so no [S, S] matrix is ever stored.
// Tiles are square, as large as fits in 48 KiB of shared memory for the head size (head_dim <= 128).
// Storage may be float, nexa::bfloat16 or nexa::half: tiles, softmax statistics and every sum are
// float (the logsumexp is float too); 16-bit inputs are widened on load and outputs rounded once.
// Dropout is not applied here (FlashAttentionArgs has none).
#if !defined(__CUDACC__)
#error "nexa/backend/cuda/flash_attention.hpp contains CUDA kernels and must be compiled by nvcc"
#endif

#include <cuda_runtime_api.h>
#include <math_constants.h>

#include <cstddef>
#include <type_traits>

#include "nexa/backend/cuda/buffer.hpp"
#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/data_type.hpp"
#include "nexa/backend/cuda/elementwise.hpp"
#include "nexa/core/error.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/ops/flash_attention_fwd.hpp"

namespace nexa {

namespace cuda_backend::flash {

constexpr int threads = 128;
constexpr std::size_t shared_limit = 48 * 1024;  // what a kernel gets without opting in
constexpr index_t max_head_dim = 128;

// The problem as the kernels see it: 16-bit storage travels as its bits (raw_t, elementwise.hpp).
template <class T>
struct Problem {
  index_t batch, heads, seq, head_dim;
  const raw_t<T>* q;
  const raw_t<T>* k;
  const raw_t<T>* v;
  const std::int32_t* padding;
  const raw_t<T>* relative_bias;
  float scale;
  bool causal;
  index_t half_window;  // < 0: full attention; else local window + global tokens
  const std::int32_t* global;
};

template <class T>
Problem<T> problem(const FlashAttentionArgs<T>& a) {
  return {a.batch,
          a.heads,
          a.seq,
          a.head_dim,
          reinterpret_cast<const raw_t<T>*>(a.q),
          reinterpret_cast<const raw_t<T>*>(a.k),
          reinterpret_cast<const raw_t<T>*>(a.v),
          a.padding,
          reinterpret_cast<const raw_t<T>*>(a.relative_bias),
          static_cast<float>(a.scale),
          a.causal,
          a.half_window,
          a.global};
}

template <class T>
__device__ bool local_global(const Problem<T>& a) {
  return a.half_window >= 0;
}

template <class T>
__device__ bool sees(const Problem<T>& a, index_t b, index_t i, index_t j) {
  const index_t S = a.seq;
  if (a.padding && a.padding[b * S + j] == 0) return false;
  if (a.causal && j > i) return false;
  if (!local_global(a)) return true;
  if (a.padding && a.padding[b * S + i] == 0) return false;  // padding sees nothing
  const index_t distance = i > j ? i - j : j - i;
  return distance <= a.half_window || (a.global && (a.global[b * S + i] != 0 || a.global[b * S + j] != 0));
}

// scale * q . k + bias[h, j - i] (q and k are rows of head_dim floats).
template <class T>
__device__ float score(const Problem<T>& a, index_t h, index_t i, index_t j, const float* q, const float* k) {
  float dot = 0.f;
  for (index_t d = 0; d < a.head_dim; ++d) dot += q[d] * k[d];
  float s = a.scale * dot;
  if (a.relative_bias) s += decode<T>(a.relative_bias[h * (2 * a.seq - 1) + (j - i) + a.seq - 1]);
  return s;
}

// Loads rows [row0, row0 + n) of a [S, head_dim] head into shared memory, as floats.
template <class T>
__device__ void load_rows(const raw_t<T>* src, index_t row0, index_t n, index_t dh, float* dst) {
  for (index_t idx = threadIdx.x; idx < n * dh; idx += blockDim.x) dst[idx] = decode<T>(src[row0 * dh + idx]);
}

// Kernels are templates (here on the storage type): a plain __global__ function defined in a
// header would be defined once per translation unit that includes it.
template <class T>
__global__ void forward_kernel(Problem<T> a, int tile, raw_t<T>* out, float* logsumexp) {
  extern __shared__ float shared[];
  const index_t S = a.seq, dh = a.head_dim, bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
  const index_t i0 = static_cast<index_t>(blockIdx.x) * tile, nq = min(static_cast<index_t>(tile), S - i0);
  float* qs = shared;                 // [tile, dh]
  float* ks = qs + tile * dh;         // [tile, dh]
  float* vs = ks + tile * dh;         // [tile, dh]
  float* os = vs + tile * dh;         // [tile, dh], the unnormalised output
  float* ps = os + tile * dh;         // [tile, tile], scores then probabilities
  float* row_max = ps + tile * tile;  // [tile]
  float* row_sum = row_max + tile;    // [tile]
  float* rescale = row_sum + tile;    // [tile]
  const raw_t<T>*q = a.q + bh * S * dh, *k = a.k + bh * S * dh, *v = a.v + bh * S * dh;

  load_rows<T>(q, i0, nq, dh, qs);
  for (index_t idx = threadIdx.x; idx < nq * dh; idx += blockDim.x) os[idx] = 0.f;
  for (index_t r = threadIdx.x; r < nq; r += blockDim.x) {
    row_max[r] = -CUDART_INF_F;
    row_sum[r] = 0.f;
  }
  __syncthreads();
  // Causal: keys after the tile's last query are all future.
  const index_t key_end = a.causal ? i0 + nq : S;
  for (index_t j0 = 0; j0 < key_end; j0 += tile) {
    const index_t nk = min(static_cast<index_t>(tile), S - j0);
    load_rows<T>(k, j0, nk, dh, ks);
    load_rows<T>(v, j0, nk, dh, vs);
    __syncthreads();
    for (index_t idx = threadIdx.x; idx < nq * nk; idx += blockDim.x) {
      const index_t r = idx / nk, c = idx % nk;
      ps[r * tile + c] =
          sees(a, b, i0 + r, j0 + c) ? score(a, h, i0 + r, j0 + c, qs + r * dh, ks + c * dh) : -CUDART_INF_F;
    }
    __syncthreads();
    for (index_t r = threadIdx.x; r < nq; r += blockDim.x) {
      float* row = ps + r * tile;
      const float m_old = row_max[r];
      float m_new = m_old;
      for (index_t c = 0; c < nk; ++c) m_new = fmaxf(m_new, row[c]);
      // A row that has seen no key yet keeps a zero accumulator: shifting by 0 keeps -inf at -inf.
      const float shift = m_new == -CUDART_INF_F ? 0.f : m_new;
      const float factor = m_new == m_old ? 1.f : expf(m_old - shift);  // 0 while nothing was seen
      float sum = 0.f;
      for (index_t c = 0; c < nk; ++c) {
        const float p = row[c] == -CUDART_INF_F ? 0.f : expf(row[c] - shift);
        row[c] = p;
        sum += p;
      }
      row_sum[r] = factor * row_sum[r] + sum;
      row_max[r] = m_new;
      rescale[r] = factor;
    }
    __syncthreads();
    for (index_t idx = threadIdx.x; idx < nq * dh; idx += blockDim.x) {
      const index_t r = idx / dh, d = idx % dh;
      float acc = os[idx] * rescale[r];
      for (index_t c = 0; c < nk; ++c) acc += ps[r * tile + c] * vs[c * dh + d];
      os[idx] = acc;
    }
    __syncthreads();  // before the next tile overwrites ks, vs and ps
  }
  raw_t<T>* o = out + (bh * S + i0) * dh;
  for (index_t idx = threadIdx.x; idx < nq * dh; idx += blockDim.x) {
    const index_t r = idx / dh, d = idx % dh;
    if (row_max[r] == -CUDART_INF_F && local_global(a)) {  // a padding query: 0
      o[idx] = encode<T>(0.f);
    } else if (row_max[r] == -CUDART_INF_F) {  // sees no key: the mean of all S values
      float acc = 0.f;
      for (index_t j = 0; j < S; ++j) acc += decode<T>(v[j * dh + d]);
      o[idx] = encode<T>(acc / static_cast<float>(S));
    } else {
      o[idx] = encode<T>(os[idx] / row_sum[r]);
    }
  }
  for (index_t r = threadIdx.x; r < nq; r += blockDim.x) {
    logsumexp[bh * S + i0 + r] = row_max[r] == -CUDART_INF_F ? CUDART_INF_F : row_max[r] + logf(row_sum[r]);
  }
}

// D_i = dO_i . O_i for every row of every head.
template <class T>
__global__ void row_dot_kernel(const raw_t<T>* d_out, const raw_t<T>* out, index_t rows, index_t dh, float* row_dot) {
  for (index_t row = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < rows;
       row += static_cast<index_t>(gridDim.x) * blockDim.x) {
    float acc = 0.f;
    for (index_t d = 0; d < dh; ++d) acc += decode<T>(d_out[row * dh + d]) * decode<T>(out[row * dh + d]);
    row_dot[row] = acc;
  }
}

// P (into ps) and dS = P (dO V^T - D) (into ds) of query rows [i0, i0 + nq) against keys
// [j0, j0 + nk); qs, dos, ks, vs hold those rows, lse and dd the rows' logsumexp and D.
template <class T>
__device__ void probs_and_dscores(const Problem<T>& a, index_t b, index_t h, int tile, index_t i0, index_t nq,
                                  index_t j0, index_t nk, const float* qs, const float* dos, const float* ks,
                                  const float* vs, const float* lse, const float* dd, float* ps, float* ds) {
  const index_t dh = a.head_dim;
  for (index_t idx = threadIdx.x; idx < nq * nk; idx += blockDim.x) {
    const index_t r = idx / nk, c = idx % nk;
    float p = 0.f, dp = 0.f;
    // A query that sees no key has lse = +inf: no gradient reaches its scores.
    if (lse[r] != CUDART_INF_F && sees(a, b, i0 + r, j0 + c)) {
      p = expf(score(a, h, i0 + r, j0 + c, qs + r * dh, ks + c * dh) - lse[r]);
      for (index_t d = 0; d < dh; ++d) dp += dos[r * dh + d] * vs[c * dh + d];
    }
    ps[r * tile + c] = p;
    ds[r * tile + c] = p * (dp - dd[r]);
  }
}

template <class T>
__global__ void dkdv_kernel(Problem<T> a, int tile, const raw_t<T>* d_out, const float* logsumexp, const float* row_dot,
                            raw_t<T>* dk, raw_t<T>* dv) {
  extern __shared__ float shared[];
  const index_t S = a.seq, dh = a.head_dim, bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
  const index_t j0 = static_cast<index_t>(blockIdx.x) * tile, nk = min(static_cast<index_t>(tile), S - j0);
  float* ks = shared;             // [tile, dh]
  float* vs = ks + tile * dh;     // [tile, dh]
  float* dks = vs + tile * dh;    // [tile, dh]
  float* dvs = dks + tile * dh;   // [tile, dh]
  float* qs = dvs + tile * dh;    // [tile, dh]
  float* dos = qs + tile * dh;    // [tile, dh]
  float* ps = dos + tile * dh;    // [tile, tile]
  float* ds = ps + tile * tile;   // [tile, tile]
  float* lse = ds + tile * tile;  // [tile]
  float* dd = lse + tile;         // [tile]
  const index_t head = bh * S * dh;
  const raw_t<T>*q = a.q + head, *k = a.k + head, *v = a.v + head, *dout = d_out + head;

  load_rows<T>(k, j0, nk, dh, ks);
  load_rows<T>(v, j0, nk, dh, vs);
  for (index_t idx = threadIdx.x; idx < nk * dh; idx += blockDim.x) dks[idx] = dvs[idx] = 0.f;
  // Causal: queries before j0 see none of these keys (tiles are square, so start at this tile).
  for (index_t i0 = a.causal ? j0 : 0; i0 < S; i0 += tile) {
    const index_t nq = min(static_cast<index_t>(tile), S - i0);
    __syncthreads();  // the previous query tile is no longer read
    load_rows<T>(q, i0, nq, dh, qs);
    load_rows<T>(dout, i0, nq, dh, dos);
    for (index_t r = threadIdx.x; r < nq; r += blockDim.x) {
      lse[r] = logsumexp[bh * S + i0 + r];
      dd[r] = row_dot[bh * S + i0 + r];
    }
    __syncthreads();
    probs_and_dscores(a, b, h, tile, i0, nq, j0, nk, qs, dos, ks, vs, lse, dd, ps, ds);
    __syncthreads();
    for (index_t idx = threadIdx.x; idx < nk * dh; idx += blockDim.x) {
      const index_t c = idx / dh, d = idx % dh;
      float dv_acc = 0.f, dk_acc = 0.f;
      for (index_t r = 0; r < nq; ++r) {
        dv_acc += ps[r * tile + c] * dos[r * dh + d];
        dk_acc += ds[r * tile + c] * qs[r * dh + d];
      }
      dvs[idx] += dv_acc;
      dks[idx] += a.scale * dk_acc;
    }
  }
  __syncthreads();
  // Queries that see no key (a prefix of the rows) weigh every key 1 / S: dV += (1 / S) sum dO.
  // Under a local window those are padding queries, whose output is 0: they add nothing.
  for (index_t idx = threadIdx.x; idx < nk * dh; idx += blockDim.x) {
    const index_t d = idx % dh;
    float acc = 0.f;
    for (index_t i = 0; i < S && !local_global(a) && logsumexp[bh * S + i] == CUDART_INF_F; ++i)
      acc += decode<T>(dout[i * dh + d]);
    dv[head + j0 * dh + idx] = encode<T>(dvs[idx] + acc / static_cast<float>(S));
    dk[head + j0 * dh + idx] = encode<T>(dks[idx]);
  }
}

template <class T>
__global__ void dq_kernel(Problem<T> a, int tile, const raw_t<T>* d_out, const float* logsumexp, const float* row_dot,
                          raw_t<T>* dq) {
  extern __shared__ float shared[];
  const index_t S = a.seq, dh = a.head_dim, bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
  const index_t i0 = static_cast<index_t>(blockIdx.x) * tile, nq = min(static_cast<index_t>(tile), S - i0);
  float* qs = shared;             // [tile, dh]
  float* dos = qs + tile * dh;    // [tile, dh]
  float* dqs = dos + tile * dh;   // [tile, dh]
  float* ks = dqs + tile * dh;    // [tile, dh]
  float* vs = ks + tile * dh;     // [tile, dh]
  float* ps = vs + tile * dh;     // [tile, tile]
  float* ds = ps + tile * tile;   // [tile, tile]
  float* lse = ds + tile * tile;  // [tile]
  float* dd = lse + tile;         // [tile]
  const index_t head = bh * S * dh;
  const raw_t<T>*q = a.q + head, *k = a.k + head, *v = a.v + head, *dout = d_out + head;

  load_rows<T>(q, i0, nq, dh, qs);
  load_rows<T>(dout, i0, nq, dh, dos);
  for (index_t idx = threadIdx.x; idx < nq * dh; idx += blockDim.x) dqs[idx] = 0.f;
  for (index_t r = threadIdx.x; r < nq; r += blockDim.x) {
    lse[r] = logsumexp[bh * S + i0 + r];
    dd[r] = row_dot[bh * S + i0 + r];
  }
  const index_t key_end = a.causal ? i0 + nq : S;
  for (index_t j0 = 0; j0 < key_end; j0 += tile) {
    const index_t nk = min(static_cast<index_t>(tile), S - j0);
    __syncthreads();  // the previous key tile is no longer read
    load_rows<T>(k, j0, nk, dh, ks);
    load_rows<T>(v, j0, nk, dh, vs);
    __syncthreads();
    probs_and_dscores(a, b, h, tile, i0, nq, j0, nk, qs, dos, ks, vs, lse, dd, ps, ds);
    __syncthreads();
    for (index_t idx = threadIdx.x; idx < nq * dh; idx += blockDim.x) {
      const index_t r = idx / dh, d = idx % dh;
      float acc = 0.f;
      for (index_t c = 0; c < nk; ++c) acc += ds[r * tile + c] * ks[c * dh + d];
      dqs[idx] += a.scale * acc;
    }
  }
  __syncthreads();
  for (index_t idx = threadIdx.x; idx < nq * dh; idx += blockDim.x) dq[head + i0 * dh + idx] = encode<T>(dqs[idx]);
}

// d_bias[h, offset] += sum over batches, then queries, of dS[i, i + offset - (S - 1)].
template <class T>
__global__ void bias_grad_kernel(Problem<T> a, const raw_t<T>* d_out, const float* logsumexp, const float* row_dot,
                                 raw_t<T>* d_bias) {
  const index_t S = a.seq, R = 2 * S - 1, dh = a.head_dim;
  for (index_t t = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < a.heads * R;
       t += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t h = t / R, offset = t % R - (S - 1);  // j - i
    const index_t i_begin = offset < 0 ? -offset : 0, i_end = offset > 0 ? S - offset : S;
    float acc = 0.f;
    for (index_t b = 0; b < a.batch; ++b) {
      const index_t bh = b * a.heads + h, head = bh * S * dh;
      for (index_t i = i_begin; i < i_end; ++i) {
        const index_t j = i + offset;
        const float lse = logsumexp[bh * S + i];
        if (lse == CUDART_INF_F || !sees(a, b, i, j)) continue;
        float dot = 0.f, dp = 0.f;
        for (index_t d = 0; d < dh; ++d) {
          dot += decode<T>(a.q[head + i * dh + d]) * decode<T>(a.k[head + j * dh + d]);
          dp += decode<T>(d_out[head + i * dh + d]) * decode<T>(a.v[head + j * dh + d]);
        }
        float s = a.scale * dot;
        if (a.relative_bias) s += decode<T>(a.relative_bias[h * (2 * S - 1) + offset + S - 1]);
        const float p = expf(s - lse);
        acc += p * (dp - row_dot[bh * S + i]);
      }
    }
    d_bias[t] = encode<T>(decode<T>(d_bias[t]) + acc);
  }
}

// Floats of shared memory per kernel for a square tile.
inline std::size_t forward_shared(index_t tile, index_t dh) {
  return std::size_t(4 * tile * dh + tile * tile + 3 * tile);
}
inline std::size_t dkdv_shared(index_t tile, index_t dh) {
  return std::size_t(6 * tile * dh + 2 * tile * tile + 2 * tile);
}
inline std::size_t dq_shared(index_t tile, index_t dh) {
  return std::size_t(5 * tile * dh + 2 * tile * tile + 2 * tile);
}

// The largest tile of 64, 32, 16 or 8 whose shared memory fits.
template <class Need>
int pick_tile(index_t dh, Need need) {
  for (int tile : {64, 32, 16, 8})
    if (need(tile, dh) * sizeof(float) <= shared_limit) return tile;
  return 0;  // unreachable for head_dim <= max_head_dim
}

inline unsigned grid_for(index_t n) {
  const index_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);  // grid-stride beyond
}

}  // namespace cuda_backend::flash

template <>
struct FlashAttentionKernel<cuda> {
  template <class T>
  static void forward(const FlashAttentionArgs<T>& a, T* out, acc_t<T>* logsumexp) {
    static_assert(supported<T>, "FlashAttentionKernel<cuda> stores float, nexa::bfloat16 or nexa::half");
    namespace fl = cuda_backend::flash;
    if (!check(a)) return;
    const cudaStream_t stream = cuda_backend::current_stream();
    const int tile = fl::pick_tile(a.head_dim, fl::forward_shared);
    const dim3 grid(static_cast<unsigned>((a.seq + tile - 1) / tile), static_cast<unsigned>(a.batch * a.heads));
    fl::forward_kernel<T><<<grid, fl::threads, fl::forward_shared(tile, a.head_dim) * sizeof(float), stream>>>(
        fl::problem(a), tile, raw(out), logsumexp);
    cuda_backend::check_launch("flash attention forward_kernel");
  }

  template <class T>
  static void backward(const FlashAttentionArgs<T>& a, const T* out, const acc_t<T>* logsumexp, const T* d_out, T* dq,
                       T* dk, T* dv, T* d_relative_bias) {
    static_assert(supported<T>, "FlashAttentionKernel<cuda> stores float, nexa::bfloat16 or nexa::half");
    namespace fl = cuda_backend::flash;
    if (!check(a)) return;
    const cudaStream_t stream = cuda_backend::current_stream();
    const index_t rows = a.batch * a.heads * a.seq, dh = a.head_dim;
    const fl::Problem<T> p = fl::problem(a);
    Buffer<float, cuda> row_dot(static_cast<std::size_t>(rows));
    fl::row_dot_kernel<T>
        <<<fl::grid_for(rows), fl::threads, 0, stream>>>(raw(d_out), raw(out), rows, dh, row_dot.data());
    cuda_backend::check_launch("flash attention row_dot_kernel");

    const int kv_tile = fl::pick_tile(dh, fl::dkdv_shared);
    const dim3 kv_grid(static_cast<unsigned>((a.seq + kv_tile - 1) / kv_tile),
                       static_cast<unsigned>(a.batch * a.heads));
    fl::dkdv_kernel<T><<<kv_grid, fl::threads, fl::dkdv_shared(kv_tile, dh) * sizeof(float), stream>>>(
        p, kv_tile, raw(d_out), logsumexp, row_dot.data(), raw(dk), raw(dv));
    cuda_backend::check_launch("flash attention dkdv_kernel");

    const int q_tile = fl::pick_tile(dh, fl::dq_shared);
    const dim3 q_grid(static_cast<unsigned>((a.seq + q_tile - 1) / q_tile), static_cast<unsigned>(a.batch * a.heads));
    fl::dq_kernel<T><<<q_grid, fl::threads, fl::dq_shared(q_tile, dh) * sizeof(float), stream>>>(
        p, q_tile, raw(d_out), logsumexp, row_dot.data(), raw(dq));
    cuda_backend::check_launch("flash attention dq_kernel");

    if (d_relative_bias) {  // the gradient of the bias, or of a zero bias when there is none
      const index_t outputs = a.heads * (2 * a.seq - 1);
      fl::bias_grad_kernel<T><<<fl::grid_for(outputs), fl::threads, 0, stream>>>(p, raw(d_out), logsumexp,
                                                                                 row_dot.data(), raw(d_relative_bias));
      cuda_backend::check_launch("flash attention bias_grad_kernel");
    }
  }

 private:
  template <class T>
  static constexpr bool supported = std::is_same_v<T, float> || cuda_backend::is_16bit_float_v<T>;

  // 16-bit storage as its bits (cuda_backend::raw_t); float as itself.
  template <class T>
  static cuda_backend::raw_t<T>* raw(T* p) {
    return reinterpret_cast<cuda_backend::raw_t<T>*>(p);
  }
  template <class T>
  static const cuda_backend::raw_t<T>* raw(const T* p) {
    return reinterpret_cast<const cuda_backend::raw_t<T>*>(p);
  }

  // Validates the problem; false when it is empty (nothing to launch).
  template <class T>
  static bool check(const FlashAttentionArgs<T>& a) {
    require(a.batch >= 0 && a.heads >= 0 && a.seq >= 0, "FlashAttentionKernel<cuda>",
            "expected non-negative extents, got batch ", a.batch, ", heads ", a.heads, ", seq ", a.seq);
    require(1 <= a.head_dim && a.head_dim <= cuda_backend::flash::max_head_dim, "FlashAttentionKernel<cuda>",
            "expected head_dim in [1, ", cuda_backend::flash::max_head_dim, "], got ", a.head_dim);
    require(a.batch * a.heads <= 65535, "FlashAttentionKernel<cuda>",
            "expected batch * heads <= 65535 (one grid row each), got ", a.batch * a.heads);
    return a.batch > 0 && a.heads > 0 && a.seq > 0;
  }
};

}  // namespace nexa
