#include <doctest/doctest.h>

#include "nexa/core/tensor.hpp"

using nexa::Shape;
using nexa::Tensor;

TEST_CASE("Tensor is zero-initialised, row-major and shape-checked") {
  Tensor<float> t({2, 3});
  CHECK(t.numel() == 6);
  CHECK(t.rows() == 2);
  CHECK(t.cols() == 3);
  for (float v : t.to_host()) CHECK(v == 0.0f);
  t(1, 2) = 5.0f;
  CHECK(t.data()[5] == 5.0f);
  CHECK_THROWS_AS(t.reshape({4, 2}), nexa::Error);
  t.reshape({3, 2});
  CHECK(t(2, 1) == 5.0f);
}

TEST_CASE("Views slice rows without copying, and copies are deep") {
  auto t = Tensor<float>::from_host({3, 2}, {0, 1, 2, 3, 4, 5});
  auto rows = t.view().slice_rows(1, 3);
  CHECK(rows.shape() == Shape{2, 2});
  CHECK(rows.data() == t.data() + 2);
  CHECK(rows(1, 1) == 5.0f);
  CHECK_THROWS_AS((void)t.view().slice_rows(2, 4), nexa::Error);
  Tensor<float> copy = t;
  copy(0, 0) = 42;
  CHECK(t(0, 0) == 0.0f);
  auto c = nexa::clone(t.cview());
  CHECK(c.to_host() == t.to_host());
}

TEST_CASE("Bad shapes raise nexa::Error naming the module and both values") {
  try {
    (void)Tensor<float>::from_host({2, 2}, {1, 2, 3});
    FAIL("expected an error");
  } catch (const nexa::Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("Tensor::from_host") != std::string::npos);
    CHECK(msg.find("[2, 2]") != std::string::npos);
    CHECK(msg.find("got 3") != std::string::npos);
  }
}
