#pragma once
// T5FFN's forward and backward written once over linears that the caller supplies, with an
// optional extra term on each linear. QuantizedExpert runs it over its quantised weights,
// LoRA<T5FFN<Act>> over the dense weights and LoRA<QuantizedExpert<...>> over the quantised ones,
// both with a LoRA adapter's term on each linear.
//   Linears (the base):  config(), dropout(),
//     apply_linear(which, in, out):                 out = in W^T             in [n, in], out [n, out]
//     backward_linear(which, in, dout, din, beta):  din = dout W + beta din, plus W's gradient
//                                                   (from in and dout) where W has one
//   Terms:  forward_add(which, in, out):            out += the term
//           backward_add(which, in, dout, din):     din += the term's input gradient (its own
//                                                   gradients accumulated)
// The pass keeps T5FFN<Act, T, D>'s Cache, so a wrapped expert's cache is its base's.
#include <concepts>
#include <utility>

#include "nexa/core/param.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/moe/config.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/nn/activation.hpp"
#include "nexa/nn/dropout.hpp"
#include "nexa/ops/gemm.hpp"

namespace nexa {

// A linear of a T5 expert: wi (wi_0 when gated), wi_1 (gated only), wo.
enum class T5Linear { wi, wi_1, wo };

namespace t5_pass {

// The activation of a T5FFN and whether it is gated.
template <class A>
struct ExpertAct {
  using type = A;
  static constexpr bool gated = false;
};
template <class A>
struct ExpertAct<Gated<A>> {
  using type = A;
  static constexpr bool gated = true;
};

// No extra terms: the plain expert.
struct NoTerms {
  template <class T, class D>
  void forward_add(T5Linear, TensorView<const T, D>, TensorView<T, D>) {}
  template <class T, class D>
  void backward_add(T5Linear, TensorView<const T, D>, TensorView<const T, D>, TensorView<T, D>) {}
};

// A dense T5FFN's weights as the pass's linears (gradients accumulated where trainable).
template <class Act, class T, class D>
struct DenseLinears {
  T5FFN<Act, T, D>& ffn;

  [[nodiscard]] const ExpertConfig& config() const { return ffn.config(); }
  [[nodiscard]] Dropout<T, D>& dropout() { return ffn.dropout(); }
  [[nodiscard]] Param<T, D>& weight(T5Linear which) {
    if constexpr (ExpertAct<Act>::gated) {
      if (which == T5Linear::wi) return ffn.wi_0;
      if (which == T5Linear::wi_1) return ffn.wi_1;
    } else {
      if (which == T5Linear::wi) return ffn.wi;
    }
    return ffn.wo;
  }
  void apply_linear(T5Linear which, TensorView<const T, D> in, TensorView<T, D> out) {
    ops::gemm(in, Trans::N, weight(which).value, Trans::T, out);
  }
  void backward_linear(T5Linear which, TensorView<const T, D> in, TensorView<const T, D> dout, TensorView<T, D> din,
                       T beta) {
    Param<T, D>& w = weight(which);
    if (w.trainable) ops::gemm(dout, Trans::T, in, Trans::N, w.grad, T(1), T(1));
    ops::gemm(dout, Trans::N, w.value, Trans::N, din, T(1), beta);
  }
};

template <class Act, class T, class D>
struct T5ExpertPass {
  static constexpr bool gated = ExpertAct<Act>::gated;
  using act = typename ExpertAct<Act>::type;
  using Cache = typename T5FFN<Act, T, D>::Cache;

  static void check_forward(const char* name, const ExpertConfig& config, const Tensor<T, D>& x, TensorView<T, D> y) {
    const index_t d = config.d_model;
    require(x.cols() == d, name, "input's last axis expected ", d, ", got shape ", x.shape());
    require(y.rows() == x.rows() && y.cols() == d, name, "output expected ", x.rows(), " x ", d, ", got ", y.shape());
  }

  // x [n, d_model] -> y [n, d_model]; the input is kept in the cache.
  template <class Linears, class Terms>
  static void forward_into(const char* name, Linears&& base, Terms&& terms, Tensor<T, D>&& x, Cache& c,
                           TensorView<T, D> y) {
    check_forward(name, base.config(), x, y);
    const index_t d = base.config().d_model, d_ff = base.config().d_ff;
    c.input = std::move(x);
    const index_t n = c.input.rows();
    const TensorView<const T, D> in(c.input.data(), {n, d});
    auto linear = [&](T5Linear which, TensorView<const T, D> from, TensorView<T, D> to) {
      base.apply_linear(which, from, to);
      terms.forward_add(which, from, to);
    };
    if constexpr (gated) {
      c.gate = Tensor<T, D>::uninitialized({n, d_ff});
      c.linear = Tensor<T, D>::uninitialized({n, d_ff});
    }
    c.hidden = Tensor<T, D>::uninitialized({n, d_ff});
    if (n == 0) return;
    if constexpr (gated) {
      linear(T5Linear::wi, in, c.gate.view());
      linear(T5Linear::wi_1, in, c.linear.view());
      ActivationKernel<D>::template gated_forward<act>(c.hidden.numel(), c.gate.data(), c.linear.data(),
                                                       c.hidden.data());
    } else {
      linear(T5Linear::wi, in, c.hidden.view());
      if constexpr (!std::same_as<Act, Relu>) c.pre = c.hidden;
      ActivationKernel<D>::template forward<Act>(c.hidden.numel(), c.hidden.data(), c.hidden.data());
    }
    base.dropout().forward_inplace(c.hidden.data(), c.hidden.numel(), c.dropout);
    linear(T5Linear::wo, c.hidden.cview(), y);
  }

  // dx from dy; gradients accumulated by the linears and terms that have any.
  template <class Linears, class Terms>
  static void backward_into(const char* name, Linears&& base, Terms&& terms, TensorView<const T, D> dy, Cache& c,
                            TensorView<T, D> dx) {
    const index_t n = c.input.rows(), d = base.config().d_model, d_ff = base.config().d_ff;
    require(dy.rows() == n && dy.cols() == d, name, "dy expected ", n, " x ", d, ", got ", dy.shape());
    require(dx.rows() == n && dx.cols() == d, name, "dx expected ", n, " x ", d, ", got ", dx.shape());
    if (n == 0) return;
    const TensorView<const T, D> in(c.input.data(), {n, d});
    auto dh = Tensor<T, D>::uninitialized({n, d_ff});
    base.backward_linear(T5Linear::wo, c.hidden.cview(), dy, dh.view(), T(0));
    terms.backward_add(T5Linear::wo, c.hidden.cview(), dy, dh.view());
    base.dropout().backward_inplace(dh.data(), dh.numel(), c.dropout);
    if constexpr (gated) {
      auto d_linear = Tensor<T, D>::uninitialized({n, d_ff});
      ActivationKernel<D>::template gated_backward<act>(dh.numel(), c.gate.data(), c.linear.data(), dh.data(),
                                                        d_linear.data());
      base.backward_linear(T5Linear::wi, in, dh.cview(), dx, T(0));
      base.backward_linear(T5Linear::wi_1, in, d_linear.cview(), dx, T(1));
      terms.backward_add(T5Linear::wi, in, dh.cview(), dx);
      terms.backward_add(T5Linear::wi_1, in, d_linear.cview(), dx);
    } else {
      if constexpr (std::same_as<Act, Relu>) {
        // relu'(a) = [hidden > 0] wherever dropout kept the unit; dropped units have g = 0.
        ActivationKernel<D>::relu_backward_from_output(dh.numel(), c.hidden.data(), dh.data());
      } else {
        ActivationKernel<D>::template backward<Act>(dh.numel(), c.pre.data(), dh.data(), dh.data());
      }
      base.backward_linear(T5Linear::wi, in, dh.cview(), dx, T(0));
      terms.backward_add(T5Linear::wi, in, dh.cview(), dx);
    }
  }
};

}  // namespace t5_pass
}  // namespace nexa
