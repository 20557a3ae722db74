// ElementwiseKernel<cuda> against ElementwiseKernel<cpu>: every op on fresh random inputs, device
// outputs poisoned first; the column sums and the casts must match the CPU bit for bit.
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "nexa/core/half.hpp"
#include "support.hpp"

using namespace nexa_test;
using nexa::Tensor;

namespace {

template <class T>
DeviceTensor<T> on_device(const Tensor<T>& t) {
  return t.template to<nexa::cuda>();
}

template <class T>
void elementwise_suite(std::uint64_t seed) {
  nexa::Rng rng(seed);
  for (const index_t n : {index_t{1}, index_t{7}, index_t{1000}, index_t{70001}}) {
    CAPTURE(n);
    const auto x = Tensor<T>::randn({n}, rng);
    auto y_cpu = Tensor<T>::randn({n}, rng);
    auto y_gpu = on_device(y_cpu);
    nexa::ops::axpy(T(-0.75), x.cview(), y_cpu.view());
    nexa::ops::axpy(T(-0.75), on_device(x).cview(), y_gpu.view());
    CHECK(rel_error(y_gpu.to_host(), y_cpu.to_host()) < tolerance<T>());

    nexa::ops::scale(T(1.25), y_cpu.view());
    nexa::ops::scale(T(1.25), y_gpu.view());
    CHECK(rel_error(y_gpu.to_host(), y_cpu.to_host()) < tolerance<T>());

    auto filled = poisoned<T>({n});
    nexa::ops::fill(T(3.5), filled.view());
    CHECK(filled.to_host() == std::vector<T>(static_cast<std::size_t>(n), T(3.5)));

    auto copied = poisoned<T>({n});
    nexa::ops::copy(on_device(x).cview(), copied.view());
    CHECK(bitwise_equal(copied.to_host(), x.to_host()));
  }
}

template <class T>
void row_suite(std::uint64_t seed) {
  nexa::Rng rng(seed);
  for (const auto& [rows, cols] : std::vector<std::pair<index_t, index_t>>{{1, 1}, {5, 3}, {300, 17}, {3, 1025}}) {
    CAPTURE(rows);
    CAPTURE(cols);
    const auto row = Tensor<T>::randn({cols}, rng);
    const auto x = Tensor<T>::randn({rows, cols}, rng);

    auto b_cpu = Tensor<T>::randn({rows, cols}, rng);
    auto b_gpu = poisoned<T>({rows, cols});
    nexa::ops::broadcast_rows(row.cview(), b_cpu.view());
    nexa::ops::broadcast_rows(on_device(row).cview(), b_gpu.view());
    CHECK(bitwise_equal(b_gpu.to_host(), b_cpu.to_host()));

    auto a_cpu = x;
    auto a_gpu = on_device(x);
    nexa::ops::add_row(row.cview(), a_cpu.view());
    nexa::ops::add_row(on_device(row).cview(), a_gpu.view());
    CHECK(bitwise_equal(a_gpu.to_host(), a_cpu.to_host()));

    // Accumulates onto a non-zero start, rows in order: the CPU's additions exactly.
    auto s_cpu = row;
    auto s_gpu = on_device(row);
    nexa::ops::sum_rows(x.cview(), s_cpu.view());
    nexa::ops::sum_rows(on_device(x).cview(), s_gpu.view());
    CHECK(bitwise_equal(s_gpu.to_host(), s_cpu.to_host()));
  }
}

template <class From, class To>
void compare_cast(const std::vector<From>& values) {
  const index_t n = static_cast<index_t>(values.size());
  const auto src = Tensor<From>::from_host({n}, values);
  const auto want = nexa::ops::cast_to<To>(src.cview());
  // Poisoned through the bits (0xA5A5...), which no cast of these inputs produces everywhere.
  std::vector<To> poison(static_cast<std::size_t>(n));
  std::memset(static_cast<void*>(poison.data()), 0xA5, poison.size() * sizeof(To));
  auto got = DeviceTensor<To>::from_host({n}, poison);
  nexa::ops::cast(on_device(src).cview(), got.view());
  CHECK(bitwise_equal(got.to_host(), want.to_host()));
}

}  // namespace

TEST_CASE("cuda axpy, scale, fill and copy match the CPU") {
  elementwise_suite<float>(31);
  elementwise_suite<double>(32);
}

TEST_CASE("cuda broadcast_rows, add_row and sum_rows match the CPU bit for bit") {
  row_suite<float>(33);
  row_suite<double>(34);
}

TEST_CASE("cuda casts between float, double, bfloat16 and half round exactly as the CPU") {
  nexa::Rng rng(35);
  std::vector<float> values = random_normal<float>(5000, rng, 100.0);
  // Ties, overflow, subnormals, signed zeros and infinities.
  for (const float v :
       {0.0f, -0.0f, 1.0f + 0x1p-8f, 1.0f + 0x1p-11f, 65504.0f, 65520.0f, 1e6f, 0x1p-20f, 0x1p-25f, 0x1p-130f, 3.0e38f,
        -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()}) {
    values.push_back(v);
    values.push_back(-v);
  }
  compare_cast<float, nexa::bfloat16>(values);
  compare_cast<float, nexa::half>(values);
  compare_cast<float, double>(values);

  std::vector<nexa::bfloat16> bf(values.size());
  std::vector<nexa::half> hf(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    bf[i] = nexa::bfloat16(values[i]);
    hf[i] = nexa::half(values[i]);
  }
  compare_cast<nexa::bfloat16, float>(bf);
  compare_cast<nexa::half, float>(hf);
  compare_cast<double, float>(random_normal<double>(3000, rng, 1e3));
  compare_cast<double, nexa::bfloat16>(random_normal<double>(3000, rng));
}
