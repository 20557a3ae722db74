#pragma once
// Elementwise activations as small functors (value and derivative), plus the Activation module.
// Gelu is the exact erf form (BERT); GeluNew the tanh approximation (T5 v1.1 "gelu_new").
// value/derivative are NEXA_HOST_DEVICE so that CUDA kernels evaluate the same formulas.
#include <cmath>
#include <numbers>

#include "nexa/backend/cpu/activation.hpp"
#include "nexa/core/host_device.hpp"
#include "nexa/core/parallel.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/activation_fwd.hpp"

namespace nexa {

struct Relu {
  static constexpr const char* name = "relu";
  template <class T>
  NEXA_HOST_DEVICE static T value(T x) {
    return x > T(0) ? x : T(0);
  }
  template <class T>
  NEXA_HOST_DEVICE static T derivative(T x) {
    return x > T(0) ? T(1) : T(0);
  }
};

struct Gelu {
  static constexpr const char* name = "gelu";
  template <class T>
  NEXA_HOST_DEVICE static T value(T x) {
    return T(0.5) * x * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
  }
  template <class T>
  NEXA_HOST_DEVICE static T derivative(T x) {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
    const T pdf = std::exp(T(-0.5) * x * x) * T(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
    return cdf + x * pdf;
  }
};

struct GeluNew {
  static constexpr const char* name = "gelu_new";
  static constexpr double c = 0.7978845608028654;  // sqrt(2 / pi)
  template <class T>
  NEXA_HOST_DEVICE static T value(T x) {
    return T(0.5) * x * (T(1) + std::tanh(T(c) * (x + T(0.044715) * x * x * x)));
  }
  template <class T>
  NEXA_HOST_DEVICE static T derivative(T x) {
    const T th = std::tanh(T(c) * (x + T(0.044715) * x * x * x));
    return T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * T(c) * (T(1) + T(3 * 0.044715) * x * x);
  }
};

struct Silu {
  static constexpr const char* name = "silu";
  template <class T>
  NEXA_HOST_DEVICE static T value(T x) {
    return x / (T(1) + std::exp(-x));
  }
  template <class T>
  NEXA_HOST_DEVICE static T derivative(T x) {
    const T s = T(1) / (T(1) + std::exp(-x));
    return s * (T(1) + x * (T(1) - s));
  }
};

// tanh (BERT's pooler). The derivative 1 - tanh(x)^2 is taken at the input x.
struct Tanh {
  static constexpr const char* name = "tanh";
  template <class T>
  NEXA_HOST_DEVICE static T value(T x) {
    return std::tanh(x);
  }
  template <class T>
  NEXA_HOST_DEVICE static T derivative(T x) {
    const T y = std::tanh(x);
    return T(1) - y * y;
  }
};

template <class A>
concept ActivationFn = requires(float x) {
  { A::value(x) } -> std::same_as<float>;
  { A::derivative(x) } -> std::same_as<float>;
};

namespace nn_detail {
// y[i] = Act(x[i]) in place.
template <ActivationFn Act, class T>
void apply_activation(T* x, index_t n) {
  NEXA_PARALLEL_FOR_IF(n > parallel_grain)
  for (index_t i = 0; i < n; ++i) x[i] = Act::value(x[i]);
}
}  // namespace nn_detail

// Activation module: y = Act(x); keeps x for the backward. Runs through ActivationKernel<D>.
template <ActivationFn Act, class T = float, class D = cpu>
class Activation {
 public:
  struct Cache {
    Tensor<T, D> input;
  };
  template <class T2, class D2>
  using rebind = Activation<Act, T2, D2>;

  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) const {
    cache.input = clone(x);
    auto y = Tensor<T, D>::uninitialized(x.shape());
    ActivationKernel<D>::template forward<Act>(y.numel(), cache.input.data(), y.data());
    return y;
  }

  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) const {
    require_shape(dy, cache.input.shape(), "Activation", "dy");
    auto dx = Tensor<T, D>::uninitialized(dy.shape());
    ActivationKernel<D>::template backward<Act>(dy.numel(), cache.input.data(), dy.data(), dx.data());
    return dx;
  }

  template <class F>
  void visit_params(F&&, const std::string& = "") {}
};

}  // namespace nexa
