#pragma once
// NF4 4-bit quantisation exactly as bitsandbytes defines it (bitsandbytes 0.50, CPU path):
//   * the 16-value NF4 code (bitsandbytes.functional.get_4bit_type("nf4")); blocks of `blocksize`
//     (64) consecutive values of the flattened tensor share one absmax;
//   * each value is scaled by (1 / absmax) (a trailing partial block divides by its absmax),
//     clamped to [-1, 1] and mapped to the code whose decision interval holds it: the thresholds
//     are the float32 midpoints between neighbouring codes and a value on a threshold takes the
//     lower code (torch.bucketize(right=False) in backends/default/ops.py, the same ">" tests as
//     the CUDA dQuantizeNF4 tree);
//   * two codes per byte, the first element in the high nibble;
//   * double quantisation (compress_statistics=True): offset = mean(absmax), the absmax values
//     minus the offset are quantised with quantize_blockwise (blocks of 256, the signed dynamic
//     8-bit map create_dynamic_map(signed=True)), following csrc/cpu_ops.cpp quantize_cpu_impl:
//     the scaled value indexes a 65536-entry table over [-1, 1] whose entries are the nearest
//     codes of the table's grid points (so a value within 1/65535 of a code midpoint can take
//     the other neighbour than the exact nearest code would).
// Blocks run over the flattened tensor, also when a row's length is not a multiple of the block
// size (bitsandbytes' scalar and default kernels; its AVX-512 dequantisation kernel indexes the
// absmax per row instead and disagrees with its own quantisation for such shapes).
// The offset is torch's float32 mean as its CPU kernel computes it (ATen/native/cpu/SumKernel.cpp
// cascade_sum with 8-lane float vectors, as torch 2.x runs it on x86, checked on an AVX-512
// machine; then a division by the count; see detail::torch_mean). torch sums more than 32768
// values (over 2M parameters at block size 64) in per-thread chunks, so for such tensors its
// offset depends on its thread count and can differ from nexa's in the last bit.
//
//   auto q = nexa::quant::nf4_quantize(w.cview(), /*double_quant=*/true);
//   Tensor<float> w2 = nexa::quant::nf4_dequantize(q);
//   nexa::quant::nf4_dequantize_rows(q, r0, r1, out);  // rows [r0, r1) of the [rows, cols] view
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/shape.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa::quant {

// bitsandbytes' NF4 code, ascending (index = 4-bit code).
inline constexpr std::array<float, 16> nf4_code = {-1.0f,
                                                   -0.6961928009986877f,
                                                   -0.5250730514526367f,
                                                   -0.39491748809814453f,
                                                   -0.28444138169288635f,
                                                   -0.18477343022823334f,
                                                   -0.09105003625154495f,
                                                   0.0f,
                                                   0.07958029955625534f,
                                                   0.16093020141124725f,
                                                   0.24611230194568634f,
                                                   0.33791524171829224f,
                                                   0.44070982933044434f,
                                                   0.5626170039176941f,
                                                   0.7229568362236023f,
                                                   1.0f};

// bitsandbytes.functional.create_dynamic_map(signed=True) (float32, sorted), bit for bit.
inline constexpr std::array<float, 256> dynamic_map_signed = {
    -0x1.fc6666p-1f,  -0x1.f53334p-1f,  -0x1.eep-1f,      -0x1.e6ccccp-1f,  -0x1.df999ap-1f,  -0x1.d86666p-1f,
    -0x1.d13334p-1f,  -0x1.cap-1f,      -0x1.c2ccccp-1f,  -0x1.bb999ap-1f,  -0x1.b46666p-1f,  -0x1.ad3334p-1f,
    -0x1.a6p-1f,      -0x1.9eccccp-1f,  -0x1.97999ap-1f,  -0x1.906666p-1f,  -0x1.893334p-1f,  -0x1.82p-1f,
    -0x1.7accccp-1f,  -0x1.73999ap-1f,  -0x1.6c6668p-1f,  -0x1.653334p-1f,  -0x1.5ep-1f,      -0x1.56ccccp-1f,
    -0x1.4f999ap-1f,  -0x1.486668p-1f,  -0x1.413334p-1f,  -0x1.3ap-1f,      -0x1.32ccccp-1f,  -0x1.2b999ap-1f,
    -0x1.246668p-1f,  -0x1.1d3334p-1f,  -0x1.16p-1f,      -0x1.0eccccp-1f,  -0x1.079998p-1f,  -0x1.006666p-1f,
    -0x1.f26664p-2f,  -0x1.e4p-2f,      -0x1.d59998p-2f,  -0x1.c73334p-2f,  -0x1.b8ccccp-2f,  -0x1.aa6666p-2f,
    -0x1.9cp-2f,      -0x1.8d9998p-2f,  -0x1.7f3334p-2f,  -0x1.70ccccp-2f,  -0x1.626666p-2f,  -0x1.54p-2f,
    -0x1.459998p-2f,  -0x1.373334p-2f,  -0x1.28ccccp-2f,  -0x1.1a6668p-2f,  -0x1.0cp-2f,      -0x1.fb3332p-3f,
    -0x1.de6666p-3f,  -0x1.c1999ap-3f,  -0x1.a4ccccp-3f,  -0x1.88p-3f,      -0x1.6b3334p-3f,  -0x1.4e6666p-3f,
    -0x1.31999ap-3f,  -0x1.14ccccp-3f,  -0x1.fp-4f,       -0x1.b66668p-4f,  -0x1.93d70ap-4f,  -0x1.8851eep-4f,
    -0x1.7ccccep-4f,  -0x1.7147aep-4f,  -0x1.65c29p-4f,   -0x1.5a3d7p-4f,   -0x1.4eb854p-4f,  -0x1.433334p-4f,
    -0x1.37ae14p-4f,  -0x1.2c28f6p-4f,  -0x1.20a3d6p-4f,  -0x1.151ebap-4f,  -0x1.09999ap-4f,  -0x1.fc28f6p-5f,
    -0x1.e51ebap-5f,  -0x1.ce147ap-5f,  -0x1.b70a3ep-5f,  -0x1.ap-5f,       -0x1.88f5c2p-5f,  -0x1.71eb86p-5f,
    -0x1.5ae146p-5f,  -0x1.43d70ap-5f,  -0x1.2ccccep-5f,  -0x1.15c29p-5f,   -0x1.fd70a4p-6f,  -0x1.cf5c2ap-6f,
    -0x1.a147aep-6f,  -0x1.733334p-6f,  -0x1.451ebap-6f,  -0x1.170a3ep-6f,  -0x1.d1eb86p-7f,  -0x1.75c29p-7f,
    -0x1.3e76c8p-7f,  -0x1.2c083p-7f,   -0x1.19999ap-7f,  -0x1.072b02p-7f,  -0x1.e978d4p-8f,  -0x1.c49ba6p-8f,
    -0x1.9fbe76p-8f,  -0x1.7ae148p-8f,  -0x1.56041ap-8f,  -0x1.3126e8p-8f,  -0x1.0c49bap-8f,  -0x1.ced914p-9f,
    -0x1.851eb8p-9f,  -0x1.3b645ap-9f,  -0x1.e353f8p-10f, -0x1.4fdf3ap-10f, -0x1.eecbfep-11f, -0x1.b3d07cp-11f,
    -0x1.78d5p-11f,   -0x1.3dd982p-11f, -0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
    -0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f, -0x1.040bfep-17f, -0x1.b43528p-19f,
    -0x1.27476ep-21f, 0x0p+0f,          0x1.27476ep-21f,  0x1.b43528p-19f,  0x1.040bfep-17f,  0x1.64840cp-16f,
    0x1.6f0068p-15f,  0x1.15df66p-14f,  0x1.743e96p-14f,  0x1.47ae16p-13f,  0x1.19ce0ap-12f,  0x1.8fc506p-12f,
    0x1.02de02p-11f,  0x1.3dd982p-11f,  0x1.78d5p-11f,    0x1.b3d07cp-11f,  0x1.eecbfep-11f,  0x1.4fdf3ap-10f,
    0x1.e353f8p-10f,  0x1.3b645ap-9f,   0x1.851eb8p-9f,   0x1.ced914p-9f,   0x1.0c49bap-8f,   0x1.3126e8p-8f,
    0x1.56041ap-8f,   0x1.7ae148p-8f,   0x1.9fbe76p-8f,   0x1.c49ba6p-8f,   0x1.e978d4p-8f,   0x1.072b02p-7f,
    0x1.19999ap-7f,   0x1.2c083p-7f,    0x1.3e76c8p-7f,   0x1.75c29p-7f,    0x1.d1eb86p-7f,   0x1.170a3ep-6f,
    0x1.451ebap-6f,   0x1.733334p-6f,   0x1.a147aep-6f,   0x1.cf5c2ap-6f,   0x1.fd70a4p-6f,   0x1.15c29p-5f,
    0x1.2ccccep-5f,   0x1.43d70ap-5f,   0x1.5ae146p-5f,   0x1.71eb86p-5f,   0x1.88f5c2p-5f,   0x1.ap-5f,
    0x1.b70a3ep-5f,   0x1.ce147ap-5f,   0x1.e51ebap-5f,   0x1.fc28f6p-5f,   0x1.09999ap-4f,   0x1.151ebap-4f,
    0x1.20a3d6p-4f,   0x1.2c28f6p-4f,   0x1.37ae14p-4f,   0x1.433334p-4f,   0x1.4eb854p-4f,   0x1.5a3d7p-4f,
    0x1.65c29p-4f,    0x1.7147aep-4f,   0x1.7ccccep-4f,   0x1.8851eep-4f,   0x1.93d70ap-4f,   0x1.b66668p-4f,
    0x1.fp-4f,        0x1.14ccccp-3f,   0x1.31999ap-3f,   0x1.4e6666p-3f,   0x1.6b3334p-3f,   0x1.88p-3f,
    0x1.a4ccccp-3f,   0x1.c1999ap-3f,   0x1.de6666p-3f,   0x1.fb3332p-3f,   0x1.0cp-2f,       0x1.1a6668p-2f,
    0x1.28ccccp-2f,   0x1.373334p-2f,   0x1.459998p-2f,   0x1.54p-2f,       0x1.626666p-2f,   0x1.70ccccp-2f,
    0x1.7f3334p-2f,   0x1.8d9998p-2f,   0x1.9cp-2f,       0x1.aa6666p-2f,   0x1.b8ccccp-2f,   0x1.c73334p-2f,
    0x1.d59998p-2f,   0x1.e4p-2f,       0x1.f26664p-2f,   0x1.006666p-1f,   0x1.079998p-1f,   0x1.0eccccp-1f,
    0x1.16p-1f,       0x1.1d3334p-1f,   0x1.246668p-1f,   0x1.2b999ap-1f,   0x1.32ccccp-1f,   0x1.3ap-1f,
    0x1.413334p-1f,   0x1.486668p-1f,   0x1.4f999ap-1f,   0x1.56ccccp-1f,   0x1.5ep-1f,       0x1.653334p-1f,
    0x1.6c6668p-1f,   0x1.73999ap-1f,   0x1.7accccp-1f,   0x1.82p-1f,       0x1.893334p-1f,   0x1.906666p-1f,
    0x1.97999ap-1f,   0x1.9eccccp-1f,   0x1.a6p-1f,       0x1.ad3334p-1f,   0x1.b46666p-1f,   0x1.bb999ap-1f,
    0x1.c2ccccp-1f,   0x1.cap-1f,       0x1.d13334p-1f,   0x1.d86666p-1f,   0x1.df999ap-1f,   0x1.e6ccccp-1f,
    0x1.eep-1f,       0x1.f53334p-1f,   0x1.fc6666p-1f,   0x1p+0f,
};

namespace detail {

// Forces a float result to be rounded on its own, so that -ffp-contract cannot fuse it with a
// following addition (bitsandbytes computes these steps as separate float operations).
inline float rounded(float v) {
  volatile float r = v;
  return r;
}

// torch.bucketize(s, midpoints of nf4_code, right=False): the number of thresholds below s.
inline std::uint8_t nf4_encode(float s) {
  std::uint8_t q = 0;
  for (std::size_t i = 0; i + 1 < nf4_code.size(); ++i) {
    const float mid = (nf4_code[i] + nf4_code[i + 1]) / 2.0f;
    q = static_cast<std::uint8_t>(q + (s > mid ? 1 : 0));
  }
  return q;
}

// csrc/cpu_ops.cpp: the code index the 65536-entry lookup table gives a value scaled to [-1, 1].
inline std::uint8_t dynamic_encode(float v) {
  v = std::clamp(v, -1.0f, 1.0f);
  const float t = rounded(rounded((v + 1.0f) * 0.5f) * 65535.0f);
  const auto idx = static_cast<std::uint16_t>(t + 0.5f);
  const float lv = -1.0f + (2.0f * static_cast<float>(idx)) / 65535.0f;
  // lut[idx] = the number of midpoints strictly below the table's value (at most 255)
  std::size_t lo = 0, hi = dynamic_map_signed.size() - 1;  // midpoints 0..254
  while (lo < hi) {
    const std::size_t mid = (lo + hi) / 2;
    const float m = 0.5f * (dynamic_map_signed[mid] + dynamic_map_signed[mid + 1]);
    if (m < lv) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return static_cast<std::uint8_t>(lo);
}

// ATen's utils::CeilLog2.
inline index_t torch_ceil_log2(index_t x) {
  if (x <= 2) return 1;
  index_t v = x - 1, last = 0;
  while (v >>= 1) ++last;
  return last + 1;
}

// ATen's multi_row_sum: `nrows` running sums over `size` rows, accumulated in up to four levels
// of chunks so that only partial sums of similar magnitude meet. load(i, k) gives row i, column k.
template <class Acc, int nrows, class Load>
std::array<Acc, nrows> torch_multi_row_sum(const Load& load, index_t size) {
  constexpr int num_levels = 4;
  const index_t level_power = std::max<index_t>(4, torch_ceil_log2(size) / num_levels);
  const index_t level_step = index_t{1} << level_power;
  const index_t level_mask = level_step - 1;
  std::array<std::array<Acc, nrows>, num_levels> acc{};
  index_t i = 0;
  while (i + level_step <= size) {
    for (index_t j = 0; j < level_step; ++j, ++i) {
      for (int k = 0; k < nrows; ++k) acc[0][std::size_t(k)] += load(i, k);
    }
    for (int j = 1; j < num_levels; ++j) {
      for (int k = 0; k < nrows; ++k) {
        acc[std::size_t(j)][std::size_t(k)] += acc[std::size_t(j - 1)][std::size_t(k)];
        acc[std::size_t(j - 1)][std::size_t(k)] = Acc{};
      }
      if ((i & (level_mask << (j * level_power))) != 0) break;
    }
  }
  for (; i < size; ++i) {
    for (int k = 0; k < nrows; ++k) acc[0][std::size_t(k)] += load(i, k);
  }
  for (int j = 1; j < num_levels; ++j) {
    for (int k = 0; k < nrows; ++k) acc[0][std::size_t(k)] += acc[std::size_t(j)][std::size_t(k)];
  }
  return acc[0];
}

// ATen's row_sum: four interleaved partial sums, the tail into the first, then combined.
template <class Acc, class Load>
Acc torch_row_sum(const Load& load, index_t size) {
  constexpr int ilp = 4;
  const index_t size_ilp = size / ilp;
  auto partial = torch_multi_row_sum<Acc, ilp>([&](index_t i, int k) { return load(i * ilp + k); }, size_ilp);
  for (index_t i = size_ilp * ilp; i < size; ++i) partial[0] += load(i);
  for (int k = 1; k < ilp; ++k) partial[0] += partial[std::size_t(k)];
  return partial[0];
}

template <int W>
struct Lanes {
  std::array<float, W> v{};
  Lanes& operator+=(const Lanes& o) {
    for (int k = 0; k < W; ++k) v[std::size_t(k)] = rounded(v[std::size_t(k)] + o.v[std::size_t(k)]);
    return *this;
  }
};

// torch.Tensor.mean() of a contiguous float32 vector on the CPU, single-threaded (n <= 32768):
// cascade_sum's vectorized_inner_sum with W-lane vectors (Vectorized<float>: 8 on x86), then / n.
template <int W = 8>
float torch_mean(const float* x, index_t n) {
  float sum = 0.0f;
  if (n >= W) {
    const index_t vec_size = n / W;
    const Lanes<W> acc = torch_row_sum<Lanes<W>>(
        [&](index_t i) {
          Lanes<W> l;
          for (int k = 0; k < W; ++k) l.v[std::size_t(k)] = x[i * W + k];
          return l;
        },
        vec_size);
    for (index_t k = vec_size * W; k < n; ++k) sum = rounded(sum + x[k]);
    for (int k = 0; k < W; ++k) sum = rounded(sum + acc.v[std::size_t(k)]);
  } else {
    sum = torch_row_sum<float>([&](index_t i) { return x[i]; }, n);
  }
  return sum / static_cast<float>(n);
}

}  // namespace detail

// bitsandbytes quantize_blockwise (8-bit, dynamic map) of n values.
struct Blockwise8 {
  std::vector<std::uint8_t> codes;
  std::vector<float> absmax;
  index_t blocksize = 256;

  [[nodiscard]] float value(index_t i) const {
    return dynamic_map_signed[codes[static_cast<std::size_t>(i)]] * absmax[static_cast<std::size_t>(i / blocksize)];
  }
};

[[nodiscard]] inline Blockwise8 blockwise8_quantize(const float* x, index_t n, index_t blocksize = 256) {
  require(blocksize > 0, "quant::blockwise8_quantize", "block size must be positive, got ", blocksize);
  require(n >= 0, "quant::blockwise8_quantize", "size must be non-negative, got ", n);
  Blockwise8 q;
  q.blocksize = blocksize;
  q.codes.assign(static_cast<std::size_t>(n), 0);
  q.absmax.assign(static_cast<std::size_t>((n + blocksize - 1) / blocksize), 0.0f);
  for (index_t b = 0; b * blocksize < n; ++b) {
    const index_t begin = b * blocksize, end = std::min(n, begin + blocksize);
    float am = 0.0f;
    for (index_t i = begin; i < end; ++i) am = std::max(am, std::fabs(x[i]));
    q.absmax[static_cast<std::size_t>(b)] = am;
    if (am == 0.0f) continue;
    const float inv = 1.0f / am;
    for (index_t i = begin; i < end; ++i) {
      q.codes[static_cast<std::size_t>(i)] = detail::dynamic_encode(detail::rounded(x[i] * inv));
    }
  }
  return q;
}

// An NF4-quantised tensor. Element i (row-major) has code nibble i (high nibble first) and
// block i / blocksize. Without double quantisation `absmax` holds one float per block; with it,
// `absmax_q` holds the 8-bit codes of (absmax - offset) and their own absmax per 256 blocks.
struct NF4Tensor {
  Shape shape;
  index_t blocksize = 64;
  std::vector<std::uint8_t> codes;  // (numel + 1) / 2 bytes
  std::vector<float> absmax;        // without double quantisation
  bool double_quant = false;
  Blockwise8 absmax_q;  // with double quantisation
  float offset = 0.0f;  // with double quantisation

  [[nodiscard]] index_t numel() const { return shape.numel(); }
  [[nodiscard]] index_t num_blocks() const { return (numel() + blocksize - 1) / blocksize; }
  // The absmax block b dequantises with: bitsandbytes' dequantize_blockwise(...) + offset.
  [[nodiscard]] float block_absmax(index_t b) const {
    if (!double_quant) return absmax[static_cast<std::size_t>(b)];
    return detail::rounded(absmax_q.value(b)) + offset;
  }
  [[nodiscard]] std::uint8_t code(index_t i) const {
    const std::uint8_t byte = codes[static_cast<std::size_t>(i / 2)];
    return static_cast<std::uint8_t>(i % 2 == 0 ? byte >> 4 : byte & 0x0F);
  }
  // Storage in bytes: packed codes plus the block statistics.
  [[nodiscard]] std::size_t bytes() const {
    std::size_t n = codes.size();
    if (double_quant) {
      n += absmax_q.codes.size() + absmax_q.absmax.size() * sizeof(float) + sizeof(float);
    } else {
      n += absmax.size() * sizeof(float);
    }
    return n;
  }
};

// bitsandbytes quantize_4bit(x, quant_type="nf4", blocksize, compress_statistics=double_quant).
[[nodiscard]] inline NF4Tensor nf4_quantize(TensorView<const float, cpu> x, bool double_quant = true,
                                            index_t blocksize = 64) {
  require(blocksize > 0 && blocksize % 2 == 0, "quant::nf4_quantize", "block size must be positive and even, got ",
          blocksize);
  NF4Tensor q;
  q.shape = x.shape();
  q.blocksize = blocksize;
  const index_t n = x.numel();
  const float* data = x.data();
  q.codes.assign(static_cast<std::size_t>((n + 1) / 2), 0);
  std::vector<float> absmax(static_cast<std::size_t>(q.num_blocks()));
  for (index_t b = 0; b < q.num_blocks(); ++b) {
    const index_t begin = b * blocksize, end = std::min(n, begin + blocksize);
    float am = 0.0f;
    for (index_t i = begin; i < end; ++i) am = std::max(am, std::fabs(data[i]));
    absmax[static_cast<std::size_t>(b)] = am;
    const float amc = std::max(am, 1e-38f);
    const bool full = end - begin == blocksize;
    const float inv = 1.0f / amc;
    for (index_t i = begin; i < end; ++i) {
      const float s = std::clamp(full ? data[i] * inv : data[i] / amc, -1.0f, 1.0f);
      const std::uint8_t c = detail::nf4_encode(s);
      std::uint8_t& byte = q.codes[static_cast<std::size_t>(i / 2)];
      byte = static_cast<std::uint8_t>(i % 2 == 0 ? (byte & 0x0F) | (c << 4) : (byte & 0xF0) | c);
    }
  }
  if (n % 2 != 0) {  // the padding element is a zero
    std::uint8_t& byte = q.codes.back();
    byte = static_cast<std::uint8_t>((byte & 0xF0) | detail::nf4_encode(0.0f));
  }
  q.double_quant = double_quant;
  if (!double_quant) {
    q.absmax = std::move(absmax);
    return q;
  }
  q.offset = absmax.empty() ? 0.0f : detail::torch_mean(absmax.data(), static_cast<index_t>(absmax.size()));
  for (float& a : absmax) a -= q.offset;
  q.absmax_q = blockwise8_quantize(absmax.data(), static_cast<index_t>(absmax.size()), 256);
  return q;
}

// Dequantises elements [begin, end) of the flattened tensor into out[0, end - begin).
inline void nf4_dequantize_range(const NF4Tensor& q, index_t begin, index_t end, float* out) {
  require(0 <= begin && begin <= end && end <= q.numel(), "quant::nf4_dequantize_range", "range [", begin, ", ", end,
          ") outside the tensor's ", q.numel(), " elements");
  index_t i = begin;
  while (i < end) {
    const index_t b = i / q.blocksize;
    const index_t stop = std::min(end, (b + 1) * q.blocksize);
    const float scale = q.block_absmax(b);
    for (; i < stop; ++i) *out++ = nf4_code[q.code(i)] * scale;
  }
}

// Rows [row_begin, row_end) of the tensor seen as [rows, cols] (cols = last extent), written
// contiguously to out: one tile of a GEMM at a time.
inline void nf4_dequantize_rows(const NF4Tensor& q, index_t row_begin, index_t row_end, float* out) {
  const index_t cols = q.shape.cols();
  require(0 <= row_begin && row_begin <= row_end && row_end <= q.shape.rows(), "quant::nf4_dequantize_rows", "rows [",
          row_begin, ", ", row_end, ") outside the tensor's ", q.shape.rows(), " rows");
  nf4_dequantize_range(q, row_begin * cols, row_end * cols, out);
}

// bitsandbytes dequantize_4bit: code value times the block's absmax, in float32.
[[nodiscard]] inline Tensor<float, cpu> nf4_dequantize(const NF4Tensor& q) {
  auto out = Tensor<float, cpu>::uninitialized(q.shape);
  nf4_dequantize_range(q, 0, q.numel(), out.data());
  return out;
}

}  // namespace nexa::quant
