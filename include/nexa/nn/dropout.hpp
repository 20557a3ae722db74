#pragma once
// Dropout with counter-based masks: element i of call c is dropped iff Philox(seed, stream,
// c * 2^40 + i) says so, so the mask is the same whatever the thread count, and the backward
// regenerates it instead of storing it. The mask is drawn by DropoutKernel<D>
// (backend/cpu/dropout.hpp, backend/cuda/dropout.hpp): the same mask on every device.
#include <cstdint>
#include <limits>

#include "nexa/backend/cpu/dropout.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/dropout_fwd.hpp"

namespace nexa {

template <class T = float, class D = cpu>
class Dropout {
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
  // forward_inplace gives those elements of a call-long array. Serial on the CPU (callers
  // parallelise). Pointers here and in the *_inplace calls are device-D memory.
  void apply_range(T* x, index_t n, std::uint64_t first, const Cache& cache) const {
    if (!cache.applied) return;
    DropoutKernel<D>::apply_range(stream_, cache.call, threshold(), scale(), first, x, n);
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
    DropoutKernel<D>::apply(stream_, call, threshold(), scale(), x, n);
  }
  // Keep iff the 32-bit word >= p * 2^32; survivors are scaled by 1 / (1 - p).
  [[nodiscard]] std::uint64_t threshold() const { return static_cast<std::uint64_t>(p_ * 4294967296.0); }
  [[nodiscard]] T scale() const { return T(1.0 / (1.0 - p_)); }

  double p_ = 0.0;
  RandomStream stream_;
  bool training_ = true;
  std::uint64_t calls_ = 0;
};

}  // namespace nexa
