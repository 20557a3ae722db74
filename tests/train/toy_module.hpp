#pragma once
// A tiny module with three named parameters for the optimizer and clipping tests.
#include <string>

#include "nexa/core/param.hpp"

namespace nexa::testing {

template <class T>
struct Toy {
  Param<T> weight;  // "dense.weight"
  Param<T> bias;    // "dense.bias"
  Param<T> frozen;  // "embed.weight", not trainable

  Toy(std::vector<T> w, std::vector<T> b, std::vector<T> f)
      : weight(Tensor<T>::from_host({static_cast<index_t>(w.size())}, w)),
        bias(Tensor<T>::from_host({static_cast<index_t>(b.size())}, b)),
        frozen(Tensor<T>::from_host({static_cast<index_t>(f.size())}, f), false) {}

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "dense.weight"), weight);
    f(join_name(prefix, "dense.bias"), bias);
    f(join_name(prefix, "embed.weight"), frozen);
  }
};

template <class T>
void set_grad(Param<T>& p, const std::vector<T>& g) {
  p.grad = Tensor<T>::from_host(p.value.shape(), g);
}

}  // namespace nexa::testing
