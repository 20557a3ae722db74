#pragma once
// Sentence embeddings as sentence-transformers computes them for all-MiniLM-L6-v2 (Pooling with
// mean tokens, then Normalize):
//   pooled[b] = sum_s m[b, s] h[b, s] / max(sum_s m[b, s], 1e-9)
//   e[b]      = pooled[b] / max(||pooled[b]||_2, 1e-12)          (torch.nn.functional.normalize)
// hidden: [B, S, H] (BERT's last hidden state), mask: [B, S] int32 0/1 (empty: all ones).
//   auto e = bert_sentence_embedding(hidden, mask);                        // inference
//   SentenceEmbeddingCache<float> c; auto e = bert_sentence_embedding(hidden, mask, c);
//   auto dh = bert_sentence_embedding_backward(de, c);                     // d(hidden), [B, S, H]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "nexa/core/parallel.hpp"
#include "nexa/core/scalar.hpp"
#include "nexa/core/tensor.hpp"

namespace nexa {

template <class T = float, class D = cpu>
struct SentenceEmbeddingCache {
  Tensor<std::int32_t, D> mask;  // [B, S], all ones when none was given
  Tensor<T, D> embedding;        // [B, H], the output
  std::vector<acc_t<T>> count;   // max(sum_s m, 1e-9) per row
  std::vector<acc_t<T>> norm;    // max(||pooled||, 1e-12) per row
  index_t seq = 0;
};

namespace models_detail {

template <class T>
Tensor<T, cpu> sentence_embedding_impl(TensorView<const T, cpu> hidden, TensorView<const std::int32_t, cpu> mask,
                                       SentenceEmbeddingCache<T, cpu>& cache) {
  using A = acc_t<T>;
  require(hidden.rank() == 3 && hidden.dim(1) > 0 && hidden.dim(2) > 0, "bert_sentence_embedding",
          "hidden shape expected [batch, seq, hidden], got ", hidden.shape());
  const index_t B = hidden.dim(0), S = hidden.dim(1), H = hidden.dim(2);
  if (mask.empty()) {
    cache.mask = Tensor<std::int32_t, cpu>::full({B, S}, 1);
  } else {
    require_shape(mask, Shape{B, S}, "bert_sentence_embedding", "attention mask");
    for (index_t i = 0; i < mask.numel(); ++i)
      require(mask.data()[i] == 0 || mask.data()[i] == 1, "bert_sentence_embedding",
              "attention mask values must be 0 or 1, got ", mask.data()[i], " at flat index ", i);
    cache.mask = clone(mask);
  }
  cache.seq = S;
  cache.count.assign(static_cast<std::size_t>(B), A(0));
  cache.norm.assign(static_cast<std::size_t>(B), A(0));
  cache.embedding = Tensor<T, cpu>::uninitialized({B, H});
  const std::int32_t* m = cache.mask.data();
  const T* h = hidden.data();
  T* out = cache.embedding.data();
  NEXA_PARALLEL_FOR_IF(B > 1 && hidden.numel() > parallel_grain)
  for (index_t b = 0; b < B; ++b) {
    std::vector<A> sum(static_cast<std::size_t>(H), A(0));
    A count = 0;
    for (index_t s = 0; s < S; ++s) {
      if (!m[b * S + s]) continue;
      count += A(1);
      for (index_t c = 0; c < H; ++c) sum[static_cast<std::size_t>(c)] += A(h[(b * S + s) * H + c]);
    }
    count = std::max(count, A(1e-9));
    A sq = 0;
    for (index_t c = 0; c < H; ++c) {
      sum[static_cast<std::size_t>(c)] /= count;
      sq += sum[static_cast<std::size_t>(c)] * sum[static_cast<std::size_t>(c)];
    }
    const A norm = std::max(std::sqrt(sq), A(1e-12));
    for (index_t c = 0; c < H; ++c) out[b * H + c] = static_cast<T>(sum[static_cast<std::size_t>(c)] / norm);
    cache.count[static_cast<std::size_t>(b)] = count;
    cache.norm[static_cast<std::size_t>(b)] = norm;
  }
  return clone(cache.embedding.cview());
}

}  // namespace models_detail

// hidden and mask may each be a Tensor or a TensorView.
template <class H, class M>
[[nodiscard]] auto bert_sentence_embedding(const H& hidden, const M& mask,
                                           SentenceEmbeddingCache<typename read_view_t<H>::value_type>& cache) {
  return models_detail::sentence_embedding_impl(read_view(hidden), read_view(mask), cache);
}
template <class H, class M>
[[nodiscard]] auto bert_sentence_embedding(const H& hidden, const M& mask) {
  SentenceEmbeddingCache<typename read_view_t<H>::value_type> cache;
  return models_detail::sentence_embedding_impl(read_view(hidden), read_view(mask), cache);
}
// Without a mask: every token counts.
template <class H>
[[nodiscard]] auto bert_sentence_embedding(const H& hidden) {
  return bert_sentence_embedding(hidden, TensorView<const std::int32_t, cpu>());
}

// d(embedding) [B, H] -> d(hidden) [B, S, H] (zero at masked tokens).
template <class T>
[[nodiscard]] Tensor<T, cpu> bert_sentence_embedding_backward(TensorView<const T, cpu> d_embedding,
                                                              const SentenceEmbeddingCache<T, cpu>& cache) {
  using A = acc_t<T>;
  require(!cache.embedding.empty(), "bert_sentence_embedding", "backward needs a forward's cache");
  require_shape(d_embedding, cache.embedding.shape(), "bert_sentence_embedding", "d_embedding");
  const index_t B = cache.embedding.dim(0), H = cache.embedding.dim(1), S = cache.seq;
  auto dh = Tensor<T, cpu>::zeros({B, S, H});
  const T* e = cache.embedding.data();
  const T* g = d_embedding.data();
  const std::int32_t* m = cache.mask.data();
  for (index_t b = 0; b < B; ++b) {
    // Through the normalisation: dp = (g - e <e, g>) / n when ||p|| > 1e-12, else g / 1e-12.
    const A norm = cache.norm[static_cast<std::size_t>(b)];
    A dot = 0;
    if (norm > A(1e-12))
      for (index_t c = 0; c < H; ++c) dot += A(e[b * H + c]) * A(g[b * H + c]);
    const A scale = A(1) / (norm * cache.count[static_cast<std::size_t>(b)]);
    for (index_t s = 0; s < S; ++s) {
      if (!m[b * S + s]) continue;
      T* row = dh.data() + (b * S + s) * H;
      for (index_t c = 0; c < H; ++c) row[c] = static_cast<T>((A(g[b * H + c]) - A(e[b * H + c]) * dot) * scale);
    }
  }
  return dh;
}
template <class T>
[[nodiscard]] Tensor<T, cpu> bert_sentence_embedding_backward(const Tensor<T, cpu>& d_embedding,
                                                              const SentenceEmbeddingCache<T, cpu>& cache) {
  return bert_sentence_embedding_backward(d_embedding.cview(), cache);
}

}  // namespace nexa
