#pragma once
// Dropout with counter-based masks: element i of call c is dropped iff Philox(seed, stream,
// c * 2^40 + i) says so, so the mask is the same whatever the thread count, and the backward
// regenerates it instead of storing it.
#include <array>
#include <cstdint>
#include <limits>

#include "nexa/core/parallel.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa {

template <class T = float, class D = cpu>
class Dropout {
  static_assert(std::same_as<D, cpu>, "Dropout: only the CPU backend implements dropout yet");

 public:
  struct Config {
    double p = 0.0;
  };
  struct Cache {
    std::uint64_t call = 0;
    bool applied = false;
  };
  template <class T2, class D2>
  using rebind = Dropout<T2, D2>;

  Dropout() = default;
  Dropout(const Config& config, Rng& rng) : p_(config.p), stream_(rng.stream()) {
    require(0.0 <= config.p && config.p < 1.0, "Dropout", "p must be in [0, 1), got ", config.p);
  }

  void set_training(bool on) { training_ = on; }
  [[nodiscard]] bool training() const { return training_; }
  [[nodiscard]] double p() const { return p_; }
  [[nodiscard]] bool active() const { return training_ && p_ > 0.0; }
  // The next forward draws the mask of call `next`: lets a recomputation (gradient checkpointing,
  // gradient checks) replay a forward exactly.
  void rewind(std::uint64_t next = 0) { calls_ = next; }
  // The call the next forward will draw (what `rewind` takes to replay it).
  [[nodiscard]] std::uint64_t next_call() const { return calls_; }

  // Reserves one call for a caller that applies its mask piecewise (tiled attention applies the
  // mask of a virtual [B, heads, S, S] matrix tile by tile, never materialising it).
  [[nodiscard]] Cache reserve_call() {
    Cache cache;
    cache.applied = active();
    if (cache.applied) cache.call = calls_++;
    return cache;
  }
  // Applies elements [first, first + n) of the mask of `cache`'s call to x[0..n): the same values
  // forward_inplace gives those elements of a call-long array. Serial (callers parallelise).
  void apply_range(T* x, index_t n, std::uint64_t first, const Cache& cache) const {
    if (!cache.applied) return;
    const auto threshold = static_cast<std::uint64_t>(p_ * 4294967296.0);
    const T scale = T(1.0 / (1.0 - p_));
    const std::uint64_t base = cache.call << 40;
    std::uint64_t group = ~std::uint64_t(0);
    std::array<std::uint32_t, 4> bits{};
    for (index_t e = 0; e < n; ++e) {
      const std::uint64_t index = first + static_cast<std::uint64_t>(e);
      if (index / 4 != group) {
        group = index / 4;
        bits = stream_.bits(base + group);
      }
      x[e] = bits[static_cast<std::size_t>(index % 4)] >= threshold ? x[e] * scale : T(0);
    }
  }

  // Drops and rescales x in place (a no-op in eval mode or with p = 0).
  void forward_inplace(T* x, index_t n, Cache& cache) {
    cache.applied = active();
    if (!cache.applied) return;
    cache.call = calls_++;
    apply_mask(x, n, cache.call);
  }
  // The same mask and scale applied to the gradient.
  void backward_inplace(T* dy, index_t n, const Cache& cache) const {
    if (cache.applied) apply_mask(dy, n, cache.call);
  }

  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) {
    Tensor<T, D> y = clone(x);
    forward_inplace(y.data(), y.numel(), cache);
    return y;
  }
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) const {
    Tensor<T, D> dx = clone(dy);
    backward_inplace(dx.data(), dx.numel(), cache);
    return dx;
  }
  template <class F>
  void visit_params(F&&, const std::string& = "") {}

 private:
  void apply_mask(T* x, index_t n, std::uint64_t call) const {
    // Keep iff the 32-bit word >= p * 2^32; survivors are scaled by 1 / (1 - p).
    const auto threshold = static_cast<std::uint64_t>(p_ * 4294967296.0);
    const T scale = T(1.0 / (1.0 - p_));
    const std::uint64_t base = call << 40;
    const index_t groups = (n + 3) / 4;
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t g = 0; g < groups; ++g) {
      const auto bits = stream_.bits(base + static_cast<std::uint64_t>(g));
      for (index_t lane = 0; lane < 4 && g * 4 + lane < n; ++lane) {
        T& v = x[g * 4 + lane];
        v = bits[static_cast<std::size_t>(lane)] >= threshold ? v * scale : T(0);
      }
    }
  }

  double p_ = 0.0;
  RandomStream stream_;
  bool training_ = true;
  std::uint64_t calls_ = 0;
};

}  // namespace nexa
