// LongformContextManager: the chunk plan (coverage, alignment, every token at least overlap / 2
// from a cut), and the reassembled output of a long document equal to the unchunked output for
// an encoder whose receptive field fits in the overlap (local-window attention), but not for one
// whose does not (full attention); progress callback; bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "nexa/attention/full_attention.hpp"
#include "nexa/attention/local_global_attention.hpp"
#include "nexa/blocks/longform_context.hpp"
#include "nexa/blocks/pre_ln_block.hpp"
#include "nexa/blocks/stack.hpp"
#include "nexa/moe.hpp"
#include "nexa/nn/embedding.hpp"

using nexa::index_t;
using nexa::Tensor;

TEST_CASE("LongformContextManager plans overlapping chunks, each token far from a cut") {
  for (const auto [window, stride, length] : std::vector<std::array<index_t, 3>>{
           {16, 12, 50}, {64, 40, 300}, {8192, 6144, 20000}, {10, 10, 35}, {16, 4, 17}}) {
    CAPTURE(window);
    CAPTURE(stride);
    CAPTURE(length);
    const nexa::LongformContextManager manager({.window = window, .stride = stride});
    const nexa::ChunkPlan plan = manager.plan(length);
    REQUIRE(plan.chunks() >= 1);
    CHECK(plan.starts.front() == 0);
    CHECK(plan.starts.back() + plan.lengths.back() == length);  // the last chunk is aligned to the end
    for (index_t c = 0; c < plan.chunks(); ++c)
      CHECK(plan.lengths[static_cast<std::size_t>(c)] == std::min(window, length));
    const index_t overlap = window - stride;
    for (index_t t = 0; t < length; ++t) {
      const auto c = static_cast<std::size_t>(plan.source[static_cast<std::size_t>(t)]);
      const index_t begin = plan.starts[c], end = begin + plan.lengths[c];
      REQUIRE(begin <= t);
      REQUIRE(t < end);
      const index_t left = begin == 0 ? length : t - begin;
      const index_t right = end == length ? length : end - 1 - t;
      CHECK(std::min(left, right) >= (overlap - 1) / 2);
    }
  }
  // A document shorter than the window is one chunk.
  const auto short_plan = nexa::LongformContextManager({.window = 100, .stride = 50}).plan(30);
  CHECK(short_plan.starts == std::vector<index_t>{0});
  CHECK(short_plan.lengths == std::vector<index_t>{30});
}

namespace {

// Embedding followed by a T5-style stack with relative position bias (translation invariant, so a
// chunk sees the same positions as the whole document does around each token).
template <class Attn>
struct Encoder {
  using StackT = nexa::Stack<nexa::PreLNBlock<Attn, nexa::T5FFN<nexa::Relu>>>;
  nexa::Embedding<float> embed;
  StackT stack;

  explicit Encoder(nexa::Rng& rng)
      : embed({.num_embeddings = 50, .embedding_dim = 16}, rng),
        stack({.layers = 2,
               .block = {.d_model = 16, .heads = 2, .ffn = {.d_model = 16, .d_ff = 32}},
               .relative_buckets = 16,
               .relative_max_distance = 64,
               .final_norm = true},
              rng) {}

  // ids [len] -> [len, 16]
  Tensor<float> operator()(nexa::TensorView<const std::int32_t> ids) {
    const index_t len = ids.dim(0);
    typename nexa::Embedding<float>::Cache cache;
    Tensor<float> x = embed.forward(ids, cache);
    x.reshape({1, len, 16});
    Tensor<float> y = stack.apply(x.cview());
    y.reshape({len, 16});
    return y;
  }
};

Tensor<std::int32_t> document(index_t length, nexa::Rng& rng) {
  const nexa::RandomStream stream = rng.stream();
  Tensor<std::int32_t> ids({length});
  for (index_t t = 0; t < length; ++t)
    ids.data()[t] = static_cast<std::int32_t>(stream.uniform(static_cast<std::uint64_t>(t)) * 50);
  return ids;
}

double max_difference(const Tensor<float>& a, const Tensor<float>& b) {
  double out = 0;
  for (index_t i = 0; i < a.numel(); ++i) out = std::max(out, double(std::abs(a.data()[i] - b.data()[i])));
  return out;
}

}  // namespace

TEST_CASE("Chunked = unchunked when the receptive field fits in the overlap") {
  nexa::Rng rng(30);
  // Local window 8: each layer reaches 4 tokens each side, two layers 8; the overlap of 24 keeps
  // every token at least 11 tokens from a cut.
  Encoder<nexa::LocalGlobalAttention<8>> local(rng);
  const auto ids = document(300, rng);
  const nexa::LongformContextManager manager({.window = 64, .stride = 40});
  std::vector<index_t> progress;
  const Tensor<float> chunked =
      manager.run(ids.cview(), local, [&](index_t chunk, index_t chunks) { progress.push_back(chunk * 100 + chunks); });
  const Tensor<float> whole = local(ids.cview());
  REQUIRE(chunked.shape() == whole.shape());
  const double err = max_difference(chunked, whole);
  MESSAGE("local attention, 300 tokens in chunks of 64 every 40: max |chunked - whole| = ", err);
  CHECK(err < 1e-5);
  CHECK(progress == std::vector<index_t>{7, 107, 207, 307, 407, 507, 607});

  // Full attention reaches across the cuts: chunking changes the output, as it should.
  Encoder<nexa::FullAttention<>> full(rng);
  CHECK(max_difference(manager.run(ids.cview(), full), full(ids.cview())) > 1e-3);
}

TEST_CASE("LongformContextManager reports bad configs and encoders") {
  using nexa::Error;
  CHECK_THROWS_WITH_AS(nexa::LongformContextManager({.window = 8, .stride = 9}),
                       doctest::Contains("stride must be in [1, window = 8], got 9"), Error);
  CHECK_THROWS_WITH_AS(nexa::LongformContextManager({.window = 0, .stride = 1}),
                       doctest::Contains("window must be positive, got 0"), Error);
  const nexa::LongformContextManager manager({.window = 8, .stride = 4});
  CHECK_THROWS_WITH_AS((void)manager.plan(0), doctest::Contains("document length must be positive, got 0"), Error);
  const Tensor<std::int32_t> ids({20});
  CHECK_THROWS_WITH_AS((void)manager.run(ids.cview(),
                                         [](nexa::TensorView<const std::int32_t>) {
                                           return Tensor<float>({3, 2});
                                         }),
                       doctest::Contains("encode must return [8, d_out] for a chunk of 8 tokens, got [3, 2]"), Error);
}
