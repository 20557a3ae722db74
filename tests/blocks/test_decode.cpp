// Incremental decoding with a KV cache (Attention::decode, PreLNBlock::decode, Stack::decode):
// a prompt decoded at once and then token by token gives the rows of one causal forward over the
// whole sequence, with T5's relative position bias, dense or MoE FFNs, and left-padded prompts.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "nexa/moe.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {

template <class FFN>
using DecoderStack = nexa::Stack<nexa::PreLNBlock<nexa::FullAttention<>, FFN>, double>;

template <class FFN>
DecoderStack<FFN> make_decoder(const typename DecoderStack<FFN>::BlockT::FFNT::Config& ffn, std::uint64_t seed) {
  typename DecoderStack<FFN>::Config c;
  c.layers = 2;
  c.relative_buckets = 8;
  c.relative_max_distance = 16;
  c.final_norm = true;
  c.block.d_model = 8;
  c.block.heads = 2;
  c.block.causal = true;
  c.block.ffn = ffn;
  nexa::Rng rng(seed);
  return DecoderStack<FFN>(c, rng);
}

// Row s of a [B, S, d] tensor for batch b.
double max_row_diff(const Tensor<double>& a, index_t ab, index_t as, const Tensor<double>& b, index_t bb, index_t bs) {
  const index_t d = a.dim(2);
  double m = 0;
  for (index_t c = 0; c < d; ++c)
    m = std::max(m, std::abs(a.data()[(ab * a.dim(1) + as) * d + c] - b.data()[(bb * b.dim(1) + bs) * d + c]));
  return m;
}

template <class FFN>
void check_decode_matches_forward(DecoderStack<FFN> stack) {
  nexa::Rng rng(3);
  const index_t B = 2, S = 7, prompt = 3;
  const auto x = Tensor<double>::randn({B, S, 8}, rng);
  const Tensor<double> full = stack.apply(x);
  std::vector<nexa::KVCache<double>> kv;
  // The prompt at once, then one position at a time.
  auto first = Tensor<double>::uninitialized({B, prompt, 8});
  for (index_t b = 0; b < B; ++b) std::copy_n(x.data() + b * S * 8, prompt * 8, first.data() + b * prompt * 8);
  const Tensor<double> head = stack.decode(first, kv);
  for (index_t b = 0; b < B; ++b)
    for (index_t s = 0; s < prompt; ++s) CHECK(max_row_diff(head, b, s, full, b, s) < 1e-12);
  for (index_t s = prompt; s < S; ++s) {
    auto step = Tensor<double>::uninitialized({B, 1, 8});
    for (index_t b = 0; b < B; ++b) std::copy_n(x.data() + (b * S + s) * 8, 8, step.data() + b * 8);
    const Tensor<double> y = stack.decode(step, kv);
    for (index_t b = 0; b < B; ++b) CHECK(max_row_diff(y, b, 0, full, b, s) < 1e-12);
  }
  CHECK(kv.front().length == S);
  CHECK(kv.front().capacity() >= S);
}

}  // namespace

TEST_CASE("Stack::decode with a KV cache equals the causal forward (dense FFN, relative bias)") {
  check_decode_matches_forward<nexa::T5FFN<nexa::Relu>>(make_decoder<nexa::T5FFN<nexa::Relu>>({8, 12}, 1));
}

TEST_CASE("Stack::decode with a KV cache equals the causal forward (top-1 MoE FFN)") {
  using MoE = nexa::MoELayer<nexa::TopKRouter<1>, nexa::T5FFN<nexa::Relu>>;
  check_decode_matches_forward<MoE>(make_decoder<MoE>({.d_model = 8, .d_ff = 12, .num_experts = 3}, 2));
}

TEST_CASE("Left-padded prompts decode as if unpadded") {
  auto stack = make_decoder<nexa::T5FFN<nexa::Relu>>({8, 12}, 4);
  nexa::Rng rng(5);
  // Sequence 0 has 5 positions; sequence 1 has 3, padded on the left by 2.
  const auto x = Tensor<double>::randn({2, 5, 8}, rng);
  const auto mask = Tensor<std::int32_t>::from_host({2, 5}, {1, 1, 1, 1, 1, 0, 0, 1, 1, 1});
  std::vector<nexa::KVCache<double>> kv;
  const Tensor<double> y = stack.decode(x, kv, mask);
  auto alone = Tensor<double>::uninitialized({1, 3, 8});
  std::copy_n(x.data() + (5 + 2) * 8, 3 * 8, alone.data());
  const Tensor<double> reference = stack.apply(alone);
  for (index_t s = 0; s < 3; ++s) CHECK(max_row_diff(y, 1, s + 2, reference, 0, s) < 1e-12);
  // One more step: the mask grows by one column.
  const auto next = Tensor<double>::randn({2, 1, 8}, rng);
  const auto mask6 = Tensor<std::int32_t>::from_host({2, 6}, {1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1});
  const Tensor<double> y6 = stack.decode(next, kv, mask6);
  auto alone4 = Tensor<double>::uninitialized({1, 4, 8});
  std::copy_n(alone.data(), 3 * 8, alone4.data());
  std::copy_n(next.data() + 8, 8, alone4.data() + 3 * 8);
  CHECK(max_row_diff(y6, 1, 0, stack.apply(alone4), 0, 3) < 1e-12);
}

TEST_CASE("decode reports misuse") {
  auto stack = make_decoder<nexa::T5FFN<nexa::Relu>>({8, 12}, 6);
  std::vector<nexa::KVCache<double>> kv;
  (void)stack.decode(Tensor<double>({2, 3, 8}), kv);
  CHECK_THROWS_WITH_AS((void)stack.decode(Tensor<double>({3, 1, 8}), kv), doctest::Contains("the cached batch"),
                       nexa::Error);
  CHECK_THROWS_WITH_AS((void)stack.decode(Tensor<double>({2, 1, 8}), kv, Tensor<std::int32_t>({2, 3})),
                       doctest::Contains("key mask"), nexa::Error);
  auto mixed = kv;
  mixed.back().length -= 1;
  CHECK_THROWS_WITH_AS((void)stack.decode(Tensor<double>({2, 1, 8}), mixed), doctest::Contains("same positions"),
                       nexa::Error);
  nexa::Rng rng(7);
  nexa::FullAttention<double> bidirectional({.hidden = 8, .heads = 2}, rng);
  nexa::KVCache<double> one;
  CHECK_THROWS_WITH_AS((void)bidirectional.decode(Tensor<double>({1, 1, 8}), one), doctest::Contains("causal"),
                       nexa::Error);
}
