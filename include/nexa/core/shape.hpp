#pragma once
// Shape: the extents of a row-major tensor, with printing for error messages.
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <vector>

namespace nexa {

using index_t = std::int64_t;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<index_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<index_t> dims) : dims_(std::move(dims)) {}

  [[nodiscard]] index_t rank() const { return static_cast<index_t>(dims_.size()); }
  [[nodiscard]] index_t operator[](index_t axis) const { return dims_[static_cast<std::size_t>(axis)]; }
  [[nodiscard]] index_t& operator[](index_t axis) { return dims_[static_cast<std::size_t>(axis)]; }
  [[nodiscard]] const std::vector<index_t>& dims() const { return dims_; }

  [[nodiscard]] index_t numel() const {
    index_t n = 1;
    for (index_t d : dims_) n *= d;
    return n;
  }

  // Rows when viewed as a matrix: all leading axes folded, the last axis being the columns.
  // Multiplied out rather than numel() / cols(), which divides by zero when there are no columns.
  [[nodiscard]] index_t rows() const {
    index_t n = 1;
    for (std::size_t i = 0; i + 1 < dims_.size(); ++i) n *= dims_[i];
    return n;
  }
  [[nodiscard]] index_t cols() const { return dims_.empty() ? 1 : dims_.back(); }

  friend bool operator==(const Shape&, const Shape&) = default;

  friend std::ostream& operator<<(std::ostream& out, const Shape& s) {
    out << '[';
    for (std::size_t i = 0; i < s.dims_.size(); ++i) out << (i ? ", " : "") << s.dims_[i];
    return out << ']';
  }

 private:
  std::vector<index_t> dims_;
};

}  // namespace nexa
