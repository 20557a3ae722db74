#pragma once
// Eigen maps over CPU tensor views: the bridge through which GEMM reaches Eigen (and, with
// EIGEN_USE_BLAS, the BLAS underneath). A view is read as a matrix of rows() x cols().
#include <Eigen/Core>
#include <type_traits>

#include "nexa/core/tensor.hpp"

namespace nexa::cpu_backend {

template <class T>
using RowMatrix = Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class T>
using MatrixMap = Eigen::Map<std::conditional_t<std::is_const_v<T>, const RowMatrix<T>, RowMatrix<T>>>;

template <class T>
MatrixMap<T> as_matrix(T* data, index_t rows, index_t cols) {
  return MatrixMap<T>(data, rows, cols);
}

template <class T>
MatrixMap<T> as_matrix(TensorView<T, cpu> v) {
  return MatrixMap<T>(v.data(), v.rows(), v.cols());
}

}  // namespace nexa::cpu_backend
