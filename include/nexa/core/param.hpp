#pragma once
// Param<T, Device>: a trainable (or frozen) tensor with its gradient. A frozen parameter holds no
// gradient storage at all, and modules skip computing its gradient.
#include <string>

#include "nexa/core/tensor.hpp"

namespace nexa {

template <class T, class D = cpu>
struct Param {
  Tensor<T, D> value;
  Tensor<T, D> grad;  // empty when frozen
  bool trainable = true;

  Param() = default;
  explicit Param(Tensor<T, D> v, bool is_trainable = true) : value(std::move(v)) { set_trainable(is_trainable); }

  void set_trainable(bool on) {
    trainable = on;
    grad = on ? Tensor<T, D>(value.shape()) : Tensor<T, D>();
  }
  void zero_grad() {
    if (trainable) grad.set_zero();
  }
  [[nodiscard]] index_t numel() const { return value.numel(); }
};

// Joins a prefix and a name with '.', as Hugging Face state dicts do.
inline std::string join_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

}  // namespace nexa
