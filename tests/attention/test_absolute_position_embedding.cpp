// AbsolutePositionEmbedding: forward by definition (with an offset), gradient check in double,
// frozen weights get no gradient, bad input.
#include <doctest/doctest.h>

#include "nexa/attention/absolute_position_embedding.hpp"
#include "support/gradcheck.hpp"

using nexa::index_t;
using nexa::Tensor;

TEST_CASE("AbsolutePositionEmbedding adds the rows of its positions, from an offset") {
  nexa::Rng rng(40);
  nexa::AbsolutePositionEmbedding<double> positions({.max_positions = 10, .dim = 3}, rng);
  auto x = Tensor<double>::randn({2, 4, 3}, rng);
  decltype(positions)::Cache cache;
  const auto y = positions.forward(x.cview(), cache, 5);
  for (index_t b = 0; b < 2; ++b)
    for (index_t s = 0; s < 4; ++s)
      for (index_t c = 0; c < 3; ++c) CHECK(y(b, s, c) == x(b, s, c) + positions.weight.value(5 + s, c));

  const auto r = Tensor<double>::randn(x.shape(), rng);
  const auto dx = positions.backward(r.cview(), cache);
  CHECK(dx.to_host() == r.to_host());
  auto loss = [&] {
    decltype(positions)::Cache c;
    return nexa::testing::weighted_sum(positions.forward(x.cview(), c, 5), r);
  };
  CHECK(nexa::testing::gradient_error(loss, positions.weight.value.data(), positions.weight.numel(),
                                      positions.weight.grad.data()) < 1e-8);
  CHECK(positions.weight.grad(0, 0) == 0.0);  // rows outside 5 .. 8 untouched
}

TEST_CASE("AbsolutePositionEmbedding: frozen weights, bad input") {
  nexa::Rng rng(41);
  nexa::AbsolutePositionEmbedding<> positions({.max_positions = 4, .dim = 2}, rng);
  positions.weight.set_trainable(false);
  decltype(positions)::Cache cache;
  const auto x = Tensor<float>::randn({1, 4, 2}, rng);
  (void)positions.forward(x.cview(), cache);
  CHECK(positions.backward(x.cview(), cache).to_host() == x.to_host());
  CHECK_THROWS_WITH_AS((void)positions.forward(x.cview(), cache, 1),
                       doctest::Contains("positions 1 .. 4 expected within [0, max_positions = 4)"), nexa::Error);
  CHECK_THROWS_WITH_AS((void)positions.forward(Tensor<float>({1, 4, 3}).cview(), cache),
                       doctest::Contains("input shape expected [batch, seq, 2], got [1, 4, 3]"), nexa::Error);
}
