#pragma once
// Conditional<Inner>: NEXA-CoT's conditional CoT processor. A module (typically a Stack of
// local-global attention blocks) engaged per sequence by a `reasoning_required` flag: flagged
// sequences go through it, the others pass through unchanged, at no cost (no compute, nothing
// kept for the backward). A batch may mix both: the flagged sequences are gathered into one
// smaller batch, run, and scattered back.
//   Conditional<Stack<PreLNBlock<LocalGlobalAttention<64>, T5FFN<Relu>>>> cot(config, rng);
//   y = cot.forward(x, reasoning_required, mask, cache);
// Parameter names are the inner module's. On CUDA the [B] flags are read from a host copy and
// the sequences are gathered and scattered by device copies, one per engaged sequence.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nexa/core/tensor.hpp"

namespace nexa {

template <class Inner, class T = float, class D = cpu>
class Conditional {
 public:
  using InnerT = typename Inner::template rebind<T, D>;
  using Config = typename InnerT::Config;

  struct Cache {
    std::vector<index_t> engaged;  // the flagged sequences, in batch order
    typename InnerT::Cache inner;  // for the engaged sub-batch only
    Shape shape;                   // of the whole input
    [[nodiscard]] double aux_loss() const {
      if constexpr (requires { inner.aux_loss(); })
        return engaged.empty() ? 0.0 : inner.aux_loss();
      else
        return 0.0;
    }
  };
  template <class T2, class D2>
  using rebind = Conditional<Inner, T2, D2>;

  InnerT inner;

  Conditional() = default;
  Conditional(const Config& config, Rng& rng) : inner(config, rng) {}

  [[nodiscard]] const Config& config() const { return inner.config(); }
  void set_training(bool on) { inner.set_training(on); }
  template <class F>
  void visit_dropouts(F&& f) {
    inner.visit_dropouts(f);
  }

  // x: [B, S, d]; reasoning_required: [B] of 0/1; mask, global: [B, S] or empty.
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, TensorView<const std::int32_t, D> reasoning_required,
                                     TensorView<const std::int32_t, D> mask, Cache& cache,
                                     TensorView<const std::int32_t, D> global = {}) {
    require(x.rank() == 3, "Conditional", "input shape expected [batch, seq, d], got ", x.shape());
    const index_t B = x.dim(0);
    require_shape(reasoning_required, Shape{B}, "Conditional", "reasoning_required");
    cache.shape = x.shape();
    cache.engaged.clear();
    std::vector<std::int32_t> flags(static_cast<std::size_t>(B));
    detail::Transfer<D>::to_host(flags.data(), reasoning_required.data(), flags.size());
    for (index_t b = 0; b < B; ++b) {
      const std::int32_t flag = flags[static_cast<std::size_t>(b)];
      require(flag == 0 || flag == 1, "Conditional", "reasoning_required values must be 0 or 1, got ", flag,
              " at sequence ", b);
      if (flag) cache.engaged.push_back(b);
    }
    cache.inner = {};
    if (cache.engaged.empty()) return std::move(x);
    if (static_cast<index_t>(cache.engaged.size()) == B) return inner.forward(std::move(x), mask, cache.inner, global);
    Tensor<T, D> y = inner.forward(gather(x.cview(), cache.engaged), gather(mask, cache.engaged).cview(), cache.inner,
                                   gather(global, cache.engaged).cview());
    scatter(y.cview(), cache.engaged, x.view());
    return std::move(x);
  }
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, TensorView<const std::int32_t, D> reasoning_required,
                                     TensorView<const std::int32_t, D> mask, Cache& cache,
                                     TensorView<const std::int32_t, D> global = {}) {
    return forward(clone(x), reasoning_required, mask, cache, global);
  }

  // dy: [B, S, d]. Sequences that skipped the processor pass dy through unchanged.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    require(cache.shape.rank() == 3, "Conditional", "backward needs a forward's cache");
    require_shape(dy, cache.shape, "Conditional", "dy");
    const index_t B = cache.shape[0];
    if (cache.engaged.empty()) return clone(dy);
    if (static_cast<index_t>(cache.engaged.size()) == B) return inner.backward(dy, cache.inner);
    Tensor<T, D> dx = clone(dy);
    scatter(inner.backward(gather(dy, cache.engaged).cview(), cache.inner).cview(), cache.engaged, dx.view());
    return dx;
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    inner.visit_params(f, prefix);
  }

 private:
  // Rows `rows` of a [B, ...] tensor, stacked (empty in, empty out).
  template <class U>
  static Tensor<U, D> gather(TensorView<const U, D> x, const std::vector<index_t>& rows) {
    if (x.empty()) return {};
    Shape shape = x.shape();
    const index_t row = x.numel() / shape[0];
    shape[0] = static_cast<index_t>(rows.size());
    auto out = Tensor<U, D>::uninitialized(shape);
    for (std::size_t r = 0; r < rows.size(); ++r)
      copy_row(x.data() + rows[r] * row, row, out.data() + static_cast<index_t>(r) * row);
    return out;
  }
  static void scatter(TensorView<const T, D> sub, const std::vector<index_t>& rows, TensorView<T, D> x) {
    const index_t row = x.numel() / x.dim(0);
    for (std::size_t r = 0; r < rows.size(); ++r)
      copy_row(sub.data() + static_cast<index_t>(r) * row, row, x.data() + rows[r] * row);
  }
  template <class U>
  static void copy_row(const U* src, index_t n, U* dst) {
    if constexpr (std::same_as<D, cpu>)
      std::copy_n(src, n, dst);
    else
      detail::Transfer<D>::copy(dst, src, static_cast<std::size_t>(n));
  }
};

}  // namespace nexa
