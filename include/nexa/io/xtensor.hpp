#pragma once
// Interop with xtensor (CPU tensors only):
//   to_xarray(t)     -> xt::xarray<T>       (copy)
//   from_xarray(e)   -> Tensor<T, cpu>      (evaluates any xtensor expression, row-major)
//   xt_adapt(t)      -> an xtensor adaptor over the tensor's own memory (no copy); writes through
//                       it change the tensor, and it must not outlive the tensor.
#include <cstddef>
#include <type_traits>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xexpression.hpp>
#include <xtensor/xnoalias.hpp>

#include "nexa/core/error.hpp"
#include "nexa/core/shape.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa {

namespace detail {
inline std::vector<std::size_t> xt_shape(const Shape& s) {
  std::vector<std::size_t> out;
  out.reserve(s.dims().size());
  for (index_t d : s.dims()) out.push_back(static_cast<std::size_t>(d));
  return out;
}
}  // namespace detail

// A row-major xtensor adaptor over the view's elements; no copy. For a TensorView<const T>,
// the adaptor is read-only.
template <class T>
[[nodiscard]] auto xt_adapt(TensorView<T, cpu> v) {
  return xt::adapt(v.data(), static_cast<std::size_t>(v.numel()), xt::no_ownership(), detail::xt_shape(v.shape()));
}
template <class T>
[[nodiscard]] auto xt_adapt(Tensor<T, cpu>& t) {
  return xt_adapt(t.view());
}
template <class T>
[[nodiscard]] auto xt_adapt(const Tensor<T, cpu>& t) {
  return xt_adapt(t.view());
}
template <class T>
void xt_adapt(Tensor<T, cpu>&&) = delete;  // the adaptor would dangle

// A copy as an owning xt::xarray (row-major).
template <class T>
[[nodiscard]] xt::xarray<std::remove_const_t<T>> to_xarray(TensorView<T, cpu> v) {
  return xt::xarray<std::remove_const_t<T>>(xt_adapt(v));
}
template <class T>
[[nodiscard]] xt::xarray<T> to_xarray(const Tensor<T, cpu>& t) {
  return to_xarray(t.view());
}

// Evaluates any xtensor expression (an xarray, a view, a lazy expression, a column-major
// array) into a new row-major Tensor.
template <class E>
[[nodiscard]] Tensor<std::remove_const_t<typename E::value_type>, cpu> from_xarray(const xt::xexpression<E>& expr) {
  using T = std::remove_const_t<typename E::value_type>;
  const E& e = expr.derived_cast();
  std::vector<index_t> dims;
  for (const auto d : e.shape()) dims.push_back(static_cast<index_t>(d));
  auto t = Tensor<T, cpu>::uninitialized(Shape(std::move(dims)));
  if (t.numel() > 0) {
    auto dst = xt_adapt(t);
    xt::noalias(dst) = e;
  }
  return t;
}

}  // namespace nexa
