#include <doctest/doctest.h>

#include "nexa/nn/dropout.hpp"

using nexa::Tensor;

TEST_CASE("Dropout drops about p of the elements and rescales the rest by 1 / (1 - p)") {
  nexa::Rng rng(80);
  nexa::Dropout<double> dropout({.p = 0.25}, rng);
  auto x = Tensor<double>::full({200, 500}, 1.0);
  nexa::Dropout<double>::Cache cache;
  auto y = dropout.forward(x, cache);
  nexa::index_t dropped = 0;
  for (double v : y.to_host()) {
    if (v == 0.0)
      ++dropped;
    else
      CHECK(v == doctest::Approx(1.0 / 0.75));
  }
  CHECK(static_cast<double>(dropped) / 100000.0 == doctest::Approx(0.25).epsilon(0.02));
  // The backward applies the same mask.
  auto dx = dropout.backward(x, cache);
  CHECK(dx.to_host() == y.to_host());
}

TEST_CASE("Dropout masks differ per call, replay after rewind, and vanish in eval mode") {
  nexa::Rng rng(81);
  nexa::Dropout<float> dropout({.p = 0.5}, rng);
  auto x = Tensor<float>::full({64, 64}, 1.0f);
  nexa::Dropout<float>::Cache c0, c1, c2;
  auto first = dropout.forward(x, c0).to_host();
  auto second = dropout.forward(x, c1).to_host();
  CHECK(first != second);
  dropout.rewind(0);
  CHECK(dropout.forward(x, c2).to_host() == first);
  dropout.set_training(false);
  nexa::Dropout<float>::Cache c3;
  CHECK(dropout.forward(x, c3).to_host() == x.to_host());
  CHECK_THROWS_AS(nexa::Dropout<float>({.p = 1.0}, rng), nexa::Error);
}
