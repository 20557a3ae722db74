// bert_sentence_embedding: mean pooling over the attention mask then L2 normalisation
// (sentence-transformers), against a direct computation, its gradient check, edge cases, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

#include "nexa/models/sentence_embedding.hpp"
#include "support/gradcheck.hpp"

using nexa::index_t;
using nexa::Tensor;

TEST_CASE("bert_sentence_embedding: masked mean, unit norm, and its gradient checks") {
  nexa::Rng rng(20);
  auto h = Tensor<double>::randn({3, 4, 5}, rng);
  const auto mask = Tensor<std::int32_t>::from_host({3, 4}, {1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0});
  nexa::SentenceEmbeddingCache<double> cache;
  const auto e = nexa::bert_sentence_embedding(h, mask, cache);
  REQUIRE(e.shape() == nexa::Shape{3, 5});
  for (index_t b = 0; b < 3; ++b) {
    const index_t n = b == 0 ? 4 : b == 1 ? 2 : 1;
    double norm = 0;
    std::vector<double> mean(5, 0.0);
    for (index_t c = 0; c < 5; ++c) {
      for (index_t s = 0; s < n; ++s) mean[static_cast<std::size_t>(c)] += h(b, s, c) / double(n);
      norm += mean[static_cast<std::size_t>(c)] * mean[static_cast<std::size_t>(c)];
    }
    for (index_t c = 0; c < 5; ++c)
      CHECK(e(b, c) == doctest::Approx(mean[static_cast<std::size_t>(c)] / std::sqrt(norm)).epsilon(1e-12));
  }
  const auto r = Tensor<double>::randn({3, 5}, rng);
  const auto dh = nexa::bert_sentence_embedding_backward(r, cache);
  auto loss = [&] { return nexa::testing::weighted_sum(nexa::bert_sentence_embedding(h, mask), r); };
  CHECK(nexa::testing::gradient_error(loss, h.data(), h.numel(), dh.data()) < 1e-6);
  CHECK(dh(1, 3, 2) == 0.0);  // padding gets no gradient

  // No mask: every token counts.
  const auto all = nexa::bert_sentence_embedding(h);
  const auto ones = nexa::bert_sentence_embedding(h, Tensor<std::int32_t>::full({3, 4}, 1));
  for (index_t i = 0; i < all.numel(); ++i) CHECK(all.data()[i] == ones.data()[i]);
}

TEST_CASE("bert_sentence_embedding: an all-padding row is zero, not NaN; bad shapes are reported") {
  auto h = Tensor<float>::full({1, 3, 4}, 2.0f);
  const auto e = nexa::bert_sentence_embedding(h, Tensor<std::int32_t>({1, 3}));
  for (index_t i = 0; i < e.numel(); ++i) CHECK(e.data()[i] == 0.0f);
  CHECK_THROWS_WITH_AS((void)nexa::bert_sentence_embedding(h, Tensor<std::int32_t>({1, 4})),
                       doctest::Contains("attention mask shape expected [1, 3], got [1, 4]"), nexa::Error);
  CHECK_THROWS_WITH_AS((void)nexa::bert_sentence_embedding(Tensor<float>({3, 4})),
                       doctest::Contains("hidden shape expected [batch, seq, hidden], got [3, 4]"), nexa::Error);
  nexa::SentenceEmbeddingCache<float> cache;
  (void)nexa::bert_sentence_embedding(h, Tensor<std::int32_t>::full({1, 3}, 1), cache);
  CHECK_THROWS_WITH_AS((void)nexa::bert_sentence_embedding_backward(Tensor<float>({1, 5}), cache),
                       doctest::Contains("d_embedding shape expected [1, 4], got [1, 5]"), nexa::Error);
}
