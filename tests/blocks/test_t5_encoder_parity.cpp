// Parity with Hugging Face transformers' T5EncoderModel: Embedding + Stack<PreLNBlock<Attention,
// T5FFN<Act>>> loads transformers' own model.safetensors by name (no renaming) and reproduces its
// last_hidden_state in fp32, for T5 v1.0 (relu) and v1.1 (gated-gelu) feed-forwards, on a padded
// batch. The fixtures in tests/fixtures/t5 are written by make_t5_encoder_fixture.py (2 layers,
// d_model 32, 4 heads of 8, d_ff 64, vocab 64, 32 buckets up to 128, 2 x 20 tokens, the second
// sequence padded after 13). FullAttention matches on every position, padding included;
// FlashAttention<> and LocalGlobalAttention<W> with W >= 2S, swapped in by one template argument,
// match on the non-padding positions (each checked when its header is in the tree).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "nexa/attention/flash_attention.hpp"
#include "nexa/attention/full_attention.hpp"
#include "nexa/attention/local_global_attention.hpp"
#include "nexa/blocks/pre_ln_block.hpp"
#include "nexa/blocks/stack.hpp"
#include "nexa/io/safetensors.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/nn/embedding.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {

constexpr index_t kBatch = 2, kSeq = 20, kDModel = 32;
constexpr double kTolerance = 1e-5;

std::filesystem::path fixture(const std::string& name) { return std::filesystem::path(NEXA_T5_FIXTURE_DIR) / name; }

// transformers' T5EncoderModel: "shared" (the token embedding) and "encoder" (the stack).
template <class Attn, class Act>
struct T5Encoder {
  using Block = nexa::PreLNBlock<Attn, nexa::T5FFN<Act>>;
  nexa::Embedding<float> shared;
  nexa::Stack<Block> encoder;

  explicit T5Encoder(nexa::Rng& rng)
      : shared({.num_embeddings = 64, .embedding_dim = kDModel}, rng),
        encoder({.layers = 2,
                 .block = {.d_model = kDModel,
                           .heads = 4,
                           .head_dim = 8,
                           .norm_eps = 1e-6,
                           .attention_scale = false,
                           .ffn = {.d_model = kDModel, .d_ff = 64}},
                 .relative_buckets = 32,
                 .relative_max_distance = 128,
                 .final_norm = true},
                rng) {
    encoder.set_training(false);
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    shared.visit_params(f, nexa::join_name(prefix, "shared"));
    encoder.visit_params(f, nexa::join_name(prefix, "encoder"));
  }

  [[nodiscard]] Tensor<float> forward(const Tensor<std::int32_t>& ids, const Tensor<std::int32_t>& mask) {
    typename nexa::Stack<Block>::Cache cache;
    return encoder.forward(shared.apply(ids.cview()), mask.cview(), cache);
  }
};

Tensor<std::int32_t> ints(const nexa::TensorData& d) {
  REQUIRE(d.dtype == nexa::Dtype::I64);
  std::vector<std::int32_t> out(static_cast<std::size_t>(d.shape.numel()));
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::int64_t v = 0;
    std::memcpy(&v, d.bytes.data() + i * 8, 8);
    out[i] = static_cast<std::int32_t>(v);
  }
  return Tensor<std::int32_t>::from_host(d.shape, out);
}

// Max abs difference over the positions (b, s) where mask is 1, or over all when mask is null.
double max_abs_error(const Tensor<float>& actual, const Tensor<float>& expected,
                     const Tensor<std::int32_t>* mask = nullptr) {
  REQUIRE(actual.shape() == expected.shape());
  REQUIRE(actual.shape() == nexa::Shape{kBatch, kSeq, kDModel});
  double err = 0;
  for (index_t t = 0; t < kBatch * kSeq; ++t) {
    if (mask && mask->data()[t] == 0) continue;
    for (index_t c = 0; c < kDModel; ++c) {
      const index_t i = t * kDModel + c;
      err = std::max(err, std::abs(double(actual.data()[i]) - double(expected.data()[i])));
    }
  }
  return err;
}

struct Reference {
  Tensor<std::int32_t> ids, mask;
  Tensor<float> hidden;
};

Reference read_reference(const std::string& variant) {
  const auto io = nexa::read_safetensors(fixture("t5_encoder_" + variant + "_io.safetensors"));
  Reference r{ints(io.tensors.at("input_ids")), ints(io.tensors.at("attention_mask")),
              io.tensors.at("last_hidden_state").to_tensor<float>()};
  REQUIRE(r.ids.shape() == nexa::Shape{kBatch, kSeq});
  REQUIRE(r.mask.shape() == nexa::Shape{kBatch, kSeq});
  // The second sequence is padded: the comparison covers masking.
  CHECK(std::count(r.mask.data(), r.mask.data() + r.mask.numel(), 0) > 0);
  return r;
}

// Builds the encoder, checks that its parameter names are exactly the checkpoint's, loads it
// (strict: a missing or unexpected tensor throws) and runs the reference batch.
template <class Attn, class Act>
Tensor<float> run_encoder(const std::string& variant, const Reference& r) {
  nexa::Rng rng(0);
  T5Encoder<Attn, Act> model(rng);
  const auto weights = fixture("t5_encoder_" + variant + ".safetensors");
  std::set<std::string> ours;
  model.visit_params([&](const std::string& name, auto&) { ours.insert(name); });
  const auto names = nexa::SafetensorsReader(weights).names();
  CHECK(ours == std::set<std::string>(names.begin(), names.end()));
  nexa::load_safetensors(model, weights);
  return model.forward(r.ids, r.mask);
}

template <class Act>
void check_parity(const std::string& variant) {
  const Reference r = read_reference(variant);

  const auto full = run_encoder<nexa::FullAttention<>, Act>(variant, r);
  const double full_all = max_abs_error(full, r.hidden);
  const double full_tokens = max_abs_error(full, r.hidden, &r.mask);
  MESSAGE(variant, ": FullAttention max abs error ", full_all, " (all positions), ", full_tokens, " (tokens)");
  CHECK(full_all < kTolerance);

  const auto flash = run_encoder<nexa::FlashAttention<>, Act>(variant, r);
  const double flash_tokens = max_abs_error(flash, r.hidden, &r.mask);
  MESSAGE(variant, ": FlashAttention<> max abs error ", flash_tokens, " (tokens), ",
          max_abs_error(flash, full, &r.mask), " from FullAttention");
  CHECK(flash_tokens < kTolerance);
  const auto local = run_encoder<nexa::LocalGlobalAttention<2 * kSeq>, Act>(variant, r);
  const double local_tokens = max_abs_error(local, r.hidden, &r.mask);
  MESSAGE(variant, ": LocalGlobalAttention<", 2 * kSeq, "> max abs error ", local_tokens, " (tokens), ",
          max_abs_error(local, full, &r.mask), " from FullAttention");
  CHECK(local_tokens < kTolerance);
}

}  // namespace

TEST_CASE("T5 v1.0 encoder (relu FFN): transformers' checkpoint loads by name and matches T5EncoderModel") {
  check_parity<nexa::Relu>("relu");
}

TEST_CASE("T5 v1.1 encoder (gated-gelu FFN): transformers' checkpoint loads by name and matches T5EncoderModel") {
  check_parity<nexa::GatedGelu>("gated_gelu");
}
