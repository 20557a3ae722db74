#include "nexa/nn/embedding.hpp"

#include <doctest/doctest.h>

#include <cstdint>

#include "support/gradcheck.hpp"

using nexa::Tensor;
using Ids = Tensor<std::int32_t>;

TEST_CASE("Embedding forward gathers weight rows for ids of any shape") {
  nexa::Rng rng(11);
  nexa::Embedding<double> emb({.num_embeddings = 5, .embedding_dim = 3}, rng);
  CHECK(emb.weight.value.shape() == nexa::Shape{5, 3});
  auto ids = Ids::from_host({2, 2}, {4, 0, 4, 2});
  nexa::Embedding<double>::Cache cache;
  auto y = emb.forward(ids, cache);
  REQUIRE(y.shape() == nexa::Shape{2, 2, 3});
  const int expect[2][2] = {{4, 0}, {4, 2}};
  for (int b = 0; b < 2; ++b)
    for (int s = 0; s < 2; ++s)
      for (int c = 0; c < 3; ++c) CHECK(y(b, s, c) == emb.weight.value(expect[b][s], c));
  // A one-dimensional ids tensor and a scalar one.
  CHECK(emb.apply(Ids::from_host({3}, {1, 2, 3})).shape() == nexa::Shape{3, 3});
  CHECK(emb.apply(Ids::from_host(nexa::Shape{}, {1})).shape() == nexa::Shape{3});
}

TEST_CASE("Embedding init is N(0, init_std) and names its parameter weight") {
  nexa::Rng rng(12);
  nexa::Embedding<double> emb({.num_embeddings = 200, .embedding_dim = 50, .init_std = 0.5}, rng);
  double sum = 0, sum2 = 0;
  const auto n = static_cast<double>(emb.weight.numel());
  for (double v : emb.weight.value.to_host()) {
    sum += v;
    sum2 += v * v;
  }
  CHECK(std::abs(sum / n) < 0.02);
  CHECK(std::sqrt(sum2 / n) == doctest::Approx(0.5).epsilon(0.03));
  std::vector<std::string> names;
  emb.visit_params([&](const std::string& name, nexa::Param<double>&) { names.push_back(name); }, "shared");
  CHECK(names == std::vector<std::string>{"shared.weight"});
}

TEST_CASE("Embedding weight gradient matches central differences, with repeated ids") {
  nexa::Rng rng(13);
  nexa::Embedding<double> emb({.num_embeddings = 6, .embedding_dim = 4}, rng);
  auto ids = Ids::from_host({2, 3}, {1, 5, 1, 0, 1, 5});
  auto r = Tensor<double>::randn({2, 3, 4}, rng);
  nexa::Embedding<double>::Cache cache;
  (void)emb.forward(ids, cache);
  emb.backward(r, cache);
  auto loss = [&] { return nexa::testing::weighted_sum(emb.apply(ids), r); };
  CHECK(nexa::testing::gradient_error(loss, emb.weight.value.data(), emb.weight.numel(), emb.weight.grad.data()) <
        1e-6);
  // Rows never looked up get no gradient; row 1 is the sum of its three upstream rows, in order.
  for (int c = 0; c < 4; ++c) {
    CHECK(emb.weight.grad(2, c) == 0.0);
    CHECK(emb.weight.grad(1, c) == (r(0, 0, c) + r(0, 2, c)) + r(1, 1, c));
  }
  // A second backward accumulates.
  emb.backward(r, cache);
  CHECK(emb.weight.grad(0, 0) == 2 * r(1, 0, 0));
}

TEST_CASE("Embedding backward is deterministic and exact on a large batch") {
  nexa::Rng rng(14);
  nexa::Embedding<float> emb({.num_embeddings = 17, .embedding_dim = 64}, rng);
  std::vector<std::int32_t> host(4096);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = static_cast<std::int32_t>((i * 7919) % 17);
  auto ids = Ids::from_host({64, 64}, host);
  auto dy = Tensor<float>::randn({64, 64, 64}, rng);
  nexa::Embedding<float>::Cache cache;
  (void)emb.forward(ids, cache);
  emb.backward(dy, cache);
  // Sequential reference in token order.
  std::vector<float> ref(17 * 64, 0.0f);
  for (std::size_t t = 0; t < host.size(); ++t)
    for (std::size_t c = 0; c < 64; ++c) ref[static_cast<std::size_t>(host[t]) * 64 + c] += dy.data()[t * 64 + c];
  CHECK(emb.weight.grad.to_host() == ref);
}

TEST_CASE("A frozen Embedding stores no gradient") {
  nexa::Rng rng(15);
  nexa::Embedding<float> emb({.num_embeddings = 4, .embedding_dim = 2}, rng);
  emb.weight.set_trainable(false);
  nexa::Embedding<float>::Cache cache;
  (void)emb.forward(Ids::from_host({2}, {0, 3}), cache);
  emb.backward(Tensor<float>::full({2, 2}, 1.0f), cache);
  CHECK(emb.weight.grad.empty());
}

TEST_CASE("Embedding rejects out-of-range ids, bad dy and bad configs") {
  nexa::Rng rng(16);
  nexa::Embedding<float> emb({.num_embeddings = 10, .embedding_dim = 2}, rng);
  nexa::Embedding<float>::Cache cache;
  CHECK_THROWS_WITH_AS((void)emb.forward(Ids::from_host({3}, {1, 10, 2}), cache),
                       doctest::Contains("token id 10 at position 1 is out of range for vocab size 10"), nexa::Error);
  CHECK_THROWS_WITH_AS((void)emb.apply(Ids::from_host({1}, {-1})), doctest::Contains("token id -1"), nexa::Error);
  (void)emb.forward(Ids::from_host({3}, {1, 2, 3}), cache);
  CHECK_THROWS_WITH_AS(emb.backward(Tensor<float>({3, 3}), cache), doctest::Contains("Embedding"), nexa::Error);
  CHECK_THROWS_AS(nexa::Embedding<float>({.num_embeddings = 0, .embedding_dim = 2}, rng), nexa::Error);
  CHECK_THROWS_AS(nexa::Embedding<float>({.num_embeddings = 3, .embedding_dim = 0}, rng), nexa::Error);
}
