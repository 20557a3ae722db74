#pragma once
// LoRA (Hu et al., 2021) as in Hugging Face peft:
//   y = W0 x + scale * B (A dropout(x)),  scale = alpha / r  (rsLoRA: alpha / sqrt(r)),
// A [r, in] ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform with a = sqrt(5), peft's default),
// B [out, r] = 0, so a fresh adapter leaves the base's output unchanged, bit for bit.
//
//   LoRAConfig        {r, alpha, dropout, rslora}
//   LoRAAdapter<T, D> the pair (lora_A, lora_B) with its dropout: adds its term to an output
//                     and its gradient to an input gradient; merges into a dense weight.
//   LoRA<Base, T, D>  a linear-like Base (Linear<>, rebound to T and D) under an adapter. The
//                     base is frozen on construction: no gradient, no optimizer state, and an
//                     optimizer step leaves it untouched. Parameters are visited as the base's
//                     own ("weight", "bias") plus "lora_A.weight" [r, in] and "lora_B.weight"
//                     [out, r], peft's names and layouts.
// What LoRA<Base> needs from Base (kept small so a quantised base can come later): rebind,
// Config with in_features/out_features, apply(x) (forward without cache), visit_params, and
// either backward_input(dy) or a dense `weight` [out, in]; merge/unmerge need the dense weight.
#include <cmath>
#include <concepts>
#include <string>
#include <utility>

#include "nexa/core/param.hpp"
#include "nexa/nn/dropout.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/ops/gemm.hpp"

namespace nexa {

struct LoRAConfig {
  index_t r = 8;
  double alpha = 8.0;    // peft's lora_alpha
  double dropout = 0.0;  // on the adapter's input only
  bool rslora = false;   // scale alpha / sqrt(r) instead of alpha / r
  [[nodiscard]] double scale() const {
    return rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
  }
};

namespace lora_detail {
inline void check_config(const LoRAConfig& c) {
  require(c.r > 0, "LoRA", "r must be positive, got ", c.r);
  require(std::isfinite(c.alpha), "LoRA", "alpha must be finite, got ", c.alpha);
  require(0.0 <= c.dropout && c.dropout < 1.0, "LoRA", "dropout must be in [0, 1), got ", c.dropout);
}
// Freezes every parameter of a module (set_trainable(false) drops its gradient storage).
template <class Module>
void freeze(Module& m) {
  m.visit_params([](const std::string&, auto& p) { p.set_trainable(false); });
}
}  // namespace lora_detail

// One adapter: the low-rank update B A with its scale and input dropout, for a linear map
// in -> out whose weight W0 is [out, in].
template <class T = float, class D = cpu>
class LoRAAdapter {
 public:
  struct Cache {
    Tensor<T, D> dropped;  // dropout(x), kept only when the dropout is active
    Tensor<T, D> z;        // [n, r] = dropout(x) A^T
    typename Dropout<T, D>::Cache dropout;
  };

  Param<T, D> lora_A;  // [r, in]
  Param<T, D> lora_B;  // [out, r]

  LoRAAdapter() = default;
  LoRAAdapter(index_t in, index_t out, const LoRAConfig& config, Rng& rng) : config_(config) {
    lora_detail::check_config(config);
    require(in > 0 && out > 0, "LoRA", "in and out features must be positive, got ", in, " and ", out);
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    lora_A = Param<T, D>(Tensor<T, D>::uniform({config.r, in}, rng, -bound, bound));
    lora_B = Param<T, D>(Tensor<T, D>({out, config.r}));
    dropout_ = Dropout<T, D>({config.dropout}, rng);
  }

  [[nodiscard]] const LoRAConfig& config() const { return config_; }
  [[nodiscard]] index_t r() const { return config_.r; }
  [[nodiscard]] index_t in_features() const { return lora_A.value.cols(); }
  [[nodiscard]] index_t out_features() const { return lora_B.value.rows(); }
  [[nodiscard]] T scale() const { return static_cast<T>(config_.scale()); }
  void set_training(bool on) { dropout_.set_training(on); }
  [[nodiscard]] Dropout<T, D>& dropout() { return dropout_; }

  // y += scale * dropout(x) A^T B^T. x: [n, in], y: [n, out].
  void forward_add(TensorView<const T, D> x, Cache& cache, TensorView<T, D> y) {
    require(x.cols() == in_features() && y.cols() == out_features() && x.rows() == y.rows(), "LoRA",
            "adapter expects input [n, ", in_features(), "] and output [n, ", out_features(), "], got ", x.shape(),
            " and ", y.shape());
    TensorView<const T, D> xd = x;
    if (dropout_.active()) {
      cache.dropped = clone(x);
      dropout_.forward_inplace(cache.dropped.data(), cache.dropped.numel(), cache.dropout);
      xd = cache.dropped.cview();
    } else {
      cache.dropped = Tensor<T, D>();
      cache.dropout = {};
    }
    cache.z = Tensor<T, D>::uninitialized({x.rows(), r()});
    if (x.rows() == 0) return;
    ops::gemm(xd, Trans::N, lora_A.value, Trans::T, cache.z);
    ops::gemm(cache.z, Trans::N, lora_B.value, Trans::T, y, scale(), T(1));
  }

  // Accumulates dA and dB (when trainable) and adds the adapter's part of dL/dx to dx.
  // x is the input forward_add saw.
  void backward_add(TensorView<const T, D> x, TensorView<const T, D> dy, Cache& cache, TensorView<T, D> dx) {
    require(dy.rows() == x.rows() && dy.cols() == out_features() && dx.rows() == x.rows() && dx.cols() == in_features(),
            "LoRA", "adapter backward expects dy [", x.rows(), ", ", out_features(), "] and dx [", x.rows(), ", ",
            in_features(), "], got ", dy.shape(), " and ", dx.shape());
    require(cache.z.rows() == x.rows(), "LoRA", "backward without a matching forward (cache holds ", cache.z.rows(),
            " rows, input ", x.rows(), ")");
    if (x.rows() == 0) return;
    const TensorView<const T, D> xd = cache.dropout.applied ? cache.dropped.cview() : x;
    if (lora_B.trainable) ops::gemm(dy, Trans::T, cache.z, Trans::N, lora_B.grad, scale(), T(1));
    auto dz = Tensor<T, D>::uninitialized({x.rows(), r()});
    ops::gemm(dy, Trans::N, lora_B.value, Trans::N, dz, scale(), T(0));
    if (lora_A.trainable) ops::gemm(dz, Trans::T, xd, Trans::N, lora_A.grad, T(1), T(1));
    if (cache.dropout.applied) {
      auto dxd = Tensor<T, D>::uninitialized({x.rows(), in_features()});
      ops::gemm(dz, Trans::N, lora_A.value, Trans::N, dxd);
      dropout_.backward_inplace(dxd.data(), dxd.numel(), cache.dropout);
      T* out = dx.data();
      const T* g = dxd.data();
      const index_t count = dxd.numel();
      for (index_t i = 0; i < count; ++i) out[i] += g[i];
    } else {
      ops::gemm(dz, Trans::N, lora_A.value, Trans::N, dx, T(1), T(1));
    }
  }

  // W += sign * scale * B A for a dense weight W [out, in].
  void add_to(Tensor<T, D>& weight, T sign) const {
    require(weight.rows() == out_features() && weight.cols() == in_features(), "LoRA", "merge expects a weight [",
            out_features(), ", ", in_features(), "], got ", weight.shape());
    ops::gemm(lora_B.value, Trans::N, lora_A.value, Trans::N, weight, static_cast<T>(sign * scale()), T(1));
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "lora_A.weight"), lora_A);
    f(join_name(prefix, "lora_B.weight"), lora_B);
  }

 private:
  LoRAConfig config_;
  Dropout<T, D> dropout_;
};

// A linear-like base under a LoRA adapter. Named unbound, e.g. LoRA<Linear<>>; Base is rebound
// to T and D.
template <class Base, class T = float, class D = cpu>
class LoRA {
 public:
  using BaseT = typename Base::template rebind<T, D>;
  struct Config {
    typename BaseT::Config base;
    LoRAConfig lora;
  };
  struct Cache {
    Tensor<T, D> input;  // [..., in]
    typename LoRAAdapter<T, D>::Cache adapter;
    bool merged = false;
  };
  template <class T2, class D2>
  using rebind = LoRA<Base, T2, D2>;

  BaseT base;
  LoRAAdapter<T, D> adapter;

  LoRA() = default;
  LoRA(const Config& config, Rng& rng) : LoRA(BaseT(config.base, rng), config.lora, rng) {}
  // Wraps an existing (e.g. pretrained) base, freezing it.
  LoRA(BaseT base_module, const LoRAConfig& lora, Rng& rng) : base(std::move(base_module)) {
    lora_detail::check_config(lora);
    adapter = LoRAAdapter<T, D>(in_features(), out_features(), lora, rng);
    lora_detail::freeze(base);
  }

  [[nodiscard]] index_t in_features() const { return base.config().in_features; }
  [[nodiscard]] index_t out_features() const { return base.config().out_features; }
  [[nodiscard]] const LoRAConfig& lora_config() const { return adapter.config(); }
  [[nodiscard]] bool merged() const { return merged_; }
  void set_training(bool on) { adapter.set_training(on); }
  template <class F>
  void visit_dropouts(F&& f) {
    f(adapter.dropout());
  }

  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) {
    check_input(x);
    return forward(clone(x), cache);
  }
  [[nodiscard]] Tensor<T, D> forward(Tensor<T, D>&& x, Cache& cache) {
    check_input(x.cview());
    cache.input = std::move(x);
    cache.merged = merged_;
    Tensor<T, D> y = base.apply(cache.input.cview());
    if (!merged_) {
      const index_t n = cache.input.rows();
      adapter.forward_add(cache.input.cview().reshaped({n, in_features()}), cache.adapter,
                          y.view().reshaped({n, out_features()}));
    }
    return y;
  }
  // Forward without keeping anything (inference; the dropout is skipped only in eval mode).
  [[nodiscard]] Tensor<T, D> apply(TensorView<const T, D> x) {
    Cache cache;
    return forward(x, cache);
  }

  // Accumulates the adapter's gradients (and the base's, only if someone unfroze it); returns dx.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    require(!cache.merged, "LoRA", "backward through merged adapters: unmerge() before training");
    const TensorView<const T, D> x = cache.input.cview();
    const index_t n = x.rows();
    require(dy.rows() == n && dy.cols() == out_features(), "LoRA", "dy shape expected ", n, " rows of ", out_features(),
            ", got ", dy.shape());
    std::vector<index_t> dims = dy.shape().dims();
    dims.back() = in_features();
    Tensor<T, D> dx;
    if constexpr (requires { base.backward_input(dy); }) {
      dx = base.backward_input(dy);
    } else {
      dx = Tensor<T, D>::uninitialized(Shape(dims));
      ops::gemm(dy, Trans::N, base.weight.value, Trans::N, dx);
      if (base.weight.trainable) ops::gemm(dy, Trans::T, x, Trans::N, base.weight.grad, T(1), T(1));
      if constexpr (requires { base.bias; }) {
        if (!base.bias.value.empty() && base.bias.trainable) {
          for (index_t row = 0; row < n; ++row)
            for (index_t c = 0; c < out_features(); ++c)
              base.bias.grad.data()[c] += dy.data()[row * out_features() + c];
        }
      }
    }
    adapter.backward_add(x.reshaped({n, in_features()}), dy.reshaped({n, out_features()}), cache.adapter,
                         dx.view().reshaped({n, in_features()}));
    return dx;
  }

  // W0 += scale * B A: the forward then skips the adapter (same output within rounding).
  void merge() {
    require(!merged_, "LoRA", "the adapter is already merged into the base weight");
    adapter.add_to(base.weight.value, T(1));
    merged_ = true;
  }
  // W0 -= scale * B A (restores W0 within rounding).
  void unmerge() {
    require(merged_, "LoRA", "unmerge of an adapter that is not merged");
    adapter.add_to(base.weight.value, T(-1));
    merged_ = false;
  }

  // The base's own names, then lora_A.weight and lora_B.weight (peft's).
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    base.visit_params(f, prefix);
    adapter.visit_params(f, prefix);
  }

 private:
  void check_input(TensorView<const T, D> x) const {
    require(x.rank() >= 1 && x.cols() == in_features(), "LoRA", "input's last axis expected ", in_features(),
            ", got shape ", x.shape());
  }

  bool merged_ = false;
};

}  // namespace nexa
