#pragma once
// Tensor<T, Device>: owning, contiguous, row-major storage with a checked shape.
// TensorView<T, Device>: a non-owning window (T may be const) that modules take as input;
// a Tensor converts to a view implicitly, so `forward(x)` accepts either.
// Copying a Tensor copies its elements (as Eigen matrices do); moving is free.
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "nexa/core/buffer.hpp"
#include "nexa/core/device.hpp"
#include "nexa/core/error.hpp"
#include "nexa/core/parallel.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/core/shape.hpp"

namespace nexa {

namespace detail {
// Host <-> device copies; the CPU ones are memcpy, the CUDA ones live in backend/cuda/buffer.hpp.
template <class D>
struct Transfer;

template <>
struct Transfer<cpu> {
  template <class T>
  static void to_host(T* dst, const T* src, std::size_t n) {
    if (n) std::memcpy(dst, src, n * sizeof(T));
  }
  template <class T>
  static void from_host(T* dst, const T* src, std::size_t n) {
    if (n) std::memcpy(dst, src, n * sizeof(T));
  }
  template <class T>
  static void fill_zero(T* dst, std::size_t n) {
    if (n) std::memset(static_cast<void*>(dst), 0, n * sizeof(T));
  }
  // Within the device.
  template <class T>
  static void copy(T* dst, const T* src, std::size_t n) {
    if (n) std::memcpy(dst, src, n * sizeof(T));
  }
};
}  // namespace detail

template <class T, class D = cpu>
class TensorView {
 public:
  using value_type = std::remove_const_t<T>;
  using device = D;

  TensorView() = default;
  TensorView(T* data, Shape shape) : data_(data), shape_(std::move(shape)) {}
  // A mutable view converts to a read-only one.
  template <class U>
  requires(std::is_const_v<T>&& std::same_as<U, std::remove_const_t<T>>) TensorView(const TensorView<U, D>& other)
      : data_(other.data()), shape_(other.shape()) {}

  [[nodiscard]] T* data() const { return data_; }
  [[nodiscard]] const Shape& shape() const { return shape_; }
  [[nodiscard]] index_t rank() const { return shape_.rank(); }
  [[nodiscard]] index_t dim(index_t axis) const { return shape_[axis]; }
  [[nodiscard]] index_t numel() const { return shape_.numel(); }
  [[nodiscard]] index_t rows() const { return shape_.rows(); }
  [[nodiscard]] index_t cols() const { return shape_.cols(); }
  [[nodiscard]] bool empty() const { return numel() == 0; }
  [[nodiscard]] TensorView<const T, D> cview() const { return *this; }

  // Rows [begin, end) along the first axis: still contiguous, so still a view.
  [[nodiscard]] TensorView slice_rows(index_t begin, index_t end) const {
    require(rank() >= 1 && 0 <= begin && begin <= end && end <= dim(0), "TensorView::slice_rows", "rows [", begin, ", ",
            end, ") out of range for shape ", shape_);
    Shape s = shape_;
    s[0] = end - begin;
    return TensorView(data_ + begin * (numel() / (dim(0) ? dim(0) : 1)), std::move(s));
  }

  // Same elements under another shape with the same number of elements.
  [[nodiscard]] TensorView reshaped(Shape s) const {
    require(s.numel() == numel(), "TensorView::reshaped", "cannot reshape ", shape_, " to ", s);
    return TensorView(data_, std::move(s));
  }

  // Element access, CPU only.
  template <class... I>
  requires(std::same_as<D, cpu> && (std::integral<I> && ...)) [[nodiscard]] T& operator()(I... idx) const {
    index_t offset = 0, axis = 0;
    ((offset = offset * shape_[axis++] + static_cast<index_t>(idx)), ...);
    return data_[offset];
  }

 private:
  T* data_ = nullptr;
  Shape shape_{0};  // a default tensor is empty, not a scalar
};

template <class T, class D = cpu>
class Tensor {
 public:
  using value_type = T;
  using device = D;

  Tensor() = default;
  // Zero-initialised; use uninitialized() in hot paths that overwrite every element.
  explicit Tensor(Shape shape) : Tensor(uninitialized(std::move(shape))) { set_zero(); }

  [[nodiscard]] static Tensor uninitialized(Shape shape) {
    Tensor t;
    for (index_t d : shape.dims()) require(d >= 0, "Tensor", "negative extent in shape ", shape);
    t.buffer_ = Buffer<T, D>(static_cast<std::size_t>(shape.numel()));
    t.shape_ = std::move(shape);
    return t;
  }
  [[nodiscard]] static Tensor zeros(Shape shape) { return Tensor(std::move(shape)); }
  [[nodiscard]] static Tensor full(Shape shape, T value) {
    std::vector<T> host(static_cast<std::size_t>(shape.numel()), value);
    return from_host(std::move(shape), host);
  }
  // Copies `values` (row-major, host memory) into a new tensor on D.
  [[nodiscard]] static Tensor from_host(Shape shape, const std::vector<T>& values) {
    require(static_cast<index_t>(values.size()) == shape.numel(), "Tensor::from_host", "shape ", shape, " needs ",
            shape.numel(), " values, got ", values.size());
    Tensor t = uninitialized(std::move(shape));
    detail::Transfer<D>::from_host(t.data(), values.data(), values.size());
    return t;
  }
  // Normal(mean, stddev) drawn from a fresh stream of `rng`; element i depends only on (seed, stream, i).
  [[nodiscard]] static Tensor randn(Shape shape, Rng& rng, double stddev = 1.0, double mean = 0.0) {
    const RandomStream s = rng.stream();
    std::vector<T> host(static_cast<std::size_t>(shape.numel()));
    const index_t n = shape.numel();
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t i = 0; i < n; ++i) host[std::size_t(i)] = static_cast<T>(mean + stddev * s.normal(std::uint64_t(i)));
    return from_host(std::move(shape), host);
  }
  // Uniform in (lo, hi].
  [[nodiscard]] static Tensor uniform(Shape shape, Rng& rng, double lo, double hi) {
    const RandomStream s = rng.stream();
    std::vector<T> host(static_cast<std::size_t>(shape.numel()));
    const index_t n = shape.numel();
    NEXA_PARALLEL_FOR_IF(n > parallel_grain)
    for (index_t i = 0; i < n; ++i) host[std::size_t(i)] = static_cast<T>(lo + (hi - lo) * s.uniform(std::uint64_t(i)));
    return from_host(std::move(shape), host);
  }

  [[nodiscard]] const Shape& shape() const { return shape_; }
  [[nodiscard]] index_t rank() const { return shape_.rank(); }
  [[nodiscard]] index_t dim(index_t axis) const { return shape_[axis]; }
  [[nodiscard]] index_t numel() const { return shape_.numel(); }
  [[nodiscard]] index_t rows() const { return shape_.rows(); }
  [[nodiscard]] index_t cols() const { return shape_.cols(); }
  [[nodiscard]] bool empty() const { return numel() == 0; }
  [[nodiscard]] T* data() { return buffer_.data(); }
  [[nodiscard]] const T* data() const { return buffer_.data(); }

  [[nodiscard]] TensorView<T, D> view() { return {data(), shape_}; }
  [[nodiscard]] TensorView<const T, D> view() const { return {data(), shape_}; }
  [[nodiscard]] TensorView<const T, D> cview() const { return {data(), shape_}; }
  operator TensorView<T, D>() { return view(); }
  operator TensorView<const T, D>() const { return view(); }

  template <class... I>
  requires(std::same_as<D, cpu> && (std::integral<I> && ...)) [[nodiscard]] T& operator()(I... idx) {
    return view()(idx...);
  }
  template <class... I>
  requires(std::same_as<D, cpu> && (std::integral<I> && ...)) [[nodiscard]] const T& operator()(I... idx) const {
    return view()(idx...);
  }

  // Changes the shape in place; the element count must stay the same.
  void reshape(Shape s) {
    require(s.numel() == numel(), "Tensor::reshape", "cannot reshape ", shape_, " to ", s);
    shape_ = std::move(s);
  }
  void set_zero() { detail::Transfer<D>::fill_zero(data(), static_cast<std::size_t>(numel())); }

  [[nodiscard]] std::vector<T> to_host() const {
    std::vector<T> host(static_cast<std::size_t>(numel()));
    detail::Transfer<D>::to_host(host.data(), data(), host.size());
    return host;
  }
  // A copy on another device (or the same one).
  template <class D2>
  [[nodiscard]] Tensor<T, D2> to() const {
    return Tensor<T, D2>::from_host(shape_, to_host());
  }

 private:
  Buffer<T, D> buffer_;
  Shape shape_{0};  // a default tensor is empty, not a scalar
};

// A new tensor holding a copy of the view's elements.
template <class T, class D>
[[nodiscard]] Tensor<std::remove_const_t<T>, D> clone(TensorView<T, D> v) {
  using U = std::remove_const_t<T>;
  auto t = Tensor<U, D>::uninitialized(v.shape());
  detail::Transfer<D>::copy(t.data(), v.data(), static_cast<std::size_t>(v.numel()));
  return t;
}

// Read-only and writable views of either a Tensor or a TensorView, so that op front ends can
// take both and still deduce T and D.
template <class T, class D>
TensorView<const T, D> read_view(const Tensor<T, D>& t) {
  return t.view();
}
template <class T, class D>
TensorView<const T, D> read_view(TensorView<T, D> v) {
  return v;
}
template <class T, class D>
TensorView<T, D> write_view(Tensor<T, D>& t) {
  return t.view();
}
template <class T, class D>
TensorView<T, D> write_view(TensorView<T, D> v) {
  return v;
}

template <class X>
using read_view_t = decltype(read_view(std::declval<const X&>()));

// Checks that `v` has exactly `expected` shape; `module` and `what` go into the message.
template <class V>
void require_shape(const V& v, const Shape& expected, std::string_view module, std::string_view what) {
  if (!(v.shape() == expected))
    throw Error(detail::concat(module, ": ", what, " shape expected ", expected, ", got ", v.shape()));
}

}  // namespace nexa
