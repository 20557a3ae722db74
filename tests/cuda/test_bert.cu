// BERT's modules with D = cuda against the same modules on the CPU: AbsolutePositionEmbedding,
// BertEmbeddings (ids with pad tokens, token types given or not, input embeddings), BertPooler,
// BertLayer, BertEncoder and BertModel (padding in the attention mask, classifier head). Same
// seed, same (perturbed) parameters, gradients started at the same random values; forward,
// backward and every parameter gradient compared. Hidden dropout 0 and > 0 (the device draws
// the CPU's masks); attention dropout 0 (the device's FullScores does not apply it). Before each
// pass the caching allocator is handed poisoned blocks of the outputs' sizes, so an output
// element a kernel leaves unwritten shows up as an error.
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "module_support.hpp"
#include "nexa/attention/absolute_position_embedding.hpp"
#include "nexa/models/bert.hpp"

using namespace nexa_test;
using nexa::Tensor;

namespace {

nexa::BertConfig tiny_config(double dropout, index_t num_labels = 3) {
  return {.vocab_size = 37,
          .hidden = 32,
          .layers = 2,
          .heads = 4,
          .intermediate = 64,
          .max_position = 24,
          .type_vocab = 3,
          .layer_norm_eps = 1e-12,
          .dropout = dropout,
          .num_labels = num_labels,
          .attention_dropout = 0.0,
          .init_std = 0.2,
          .pad_token_id = 0};
}

// [B, S]: sequence 0 full, 1 trailing padding, 2 leading padding, 3 (when B > 3) one token only.
std::vector<std::int32_t> padding_flags(index_t B, index_t S) {
  std::vector<std::int32_t> flags(static_cast<std::size_t>(B * S), 1);
  for (index_t b = 1; b < B; ++b)
    for (index_t s = 0; s < S; ++s) {
      const bool pad = b % 4 == 1 ? s >= S - S / 3 : b % 4 == 2 ? s < S / 4 + 1 : b % 4 == 3 && s > 0;
      if (pad) flags[static_cast<std::size_t>(b * S + s)] = 0;
    }
  return flags;
}

// Token ids in [1, vocab) where the mask is 1, the pad id 0 where it is 0.
Tensor<std::int32_t> token_ids(const std::vector<std::int32_t>& flags, index_t B, index_t S, index_t vocab) {
  std::vector<std::int32_t> ids(flags.size());
  for (std::size_t t = 0; t < ids.size(); ++t)
    ids[t] = flags[t] ? static_cast<std::int32_t>(1 + (7 * t + 3) % static_cast<std::size_t>(vocab - 1)) : 0;
  return Tensor<std::int32_t>::from_host({B, S}, ids);
}

Tensor<std::int32_t> token_types(index_t B, index_t S, index_t type_vocab) {
  std::vector<std::int32_t> types(static_cast<std::size_t>(B * S));
  for (std::size_t t = 0; t < types.size(); ++t)
    types[t] = static_cast<std::int32_t>((t / 3) % static_cast<std::size_t>(type_vocab));
  return Tensor<std::int32_t>::from_host({B, S}, types);
}

template <class T>
void compare_position_embedding(index_t offset, std::uint64_t seed) {
  CAPTURE(offset);
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  nexa::AbsolutePositionEmbedding<T> cpu({.max_positions = 40, .dim = 24, .init_std = 0.5}, cpu_rng);
  nexa::AbsolutePositionEmbedding<T, nexa::cuda> gpu({.max_positions = 40, .dim = 24, .init_std = 0.5}, gpu_rng);
  CHECK(bitwise_equal(gpu.weight.value.to_host(), cpu.weight.value.to_host()));
  seed_grads<T>(cpu, gpu, rng);
  for (int pass = 0; pass < 2; ++pass) {  // the second pass accumulates
    const auto x = Tensor<T>::randn({3, 17, 24}, rng);
    const auto dy = Tensor<T>::randn({3, 17, 24}, rng);
    typename nexa::AbsolutePositionEmbedding<T>::Cache cpu_cache;
    typename nexa::AbsolutePositionEmbedding<T, nexa::cuda>::Cache gpu_cache;
    const auto y = cpu.forward(x.cview(), cpu_cache, offset);
    const auto y_gpu = gpu.forward(on_device(x).cview(), gpu_cache, offset);
    CHECK(y_gpu.shape() == y.shape());
    CHECK(bitwise_equal(y_gpu.to_host(), y.to_host()));
    poison_pool<T>({{3, 17, 24}});
    const auto dx = cpu.backward(dy.cview(), cpu_cache);
    const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
    CHECK(bitwise_equal(dx_gpu.to_host(), dx.to_host()));
  }
  // add_row and sum_rows make the CPU's additions in the CPU's order.
  CHECK(bitwise_equal(gpu.weight.grad.to_host(), cpu.weight.grad.to_host()));
}

template <class T>
void compare_embeddings(double dropout, bool with_types, bool embeds, std::uint64_t seed) {
  CAPTURE(dropout);
  CAPTURE(with_types);
  CAPTURE(embeds);
  const nexa::BertConfig config = tiny_config(dropout);
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  nexa::BertEmbeddings<T> cpu(config, cpu_rng);
  nexa::BertEmbeddings<T, nexa::cuda> gpu(config, gpu_rng);
  // The constructors zero the pad row on both devices.
  CHECK(bitwise_equal(gpu.word_embeddings.weight.value.to_host(), cpu.word_embeddings.weight.value.to_host()));
  perturb<T>(cpu, gpu, rng);
  seed_grads<T>(cpu, gpu, rng);
  const index_t B = 4, S = 11, H = config.hidden;
  const auto flags = padding_flags(B, S);
  const auto ids = token_ids(flags, B, S, config.vocab_size);
  const auto types = with_types ? token_types(B, S, config.type_vocab) : Tensor<std::int32_t>();
  const auto types_gpu = with_types ? on_device(types) : DeviceTensor<std::int32_t>();
  for (int pass = 0; pass < 2; ++pass) {  // the second pass draws new dropout masks and accumulates
    CAPTURE(pass);
    const auto inputs = Tensor<T>::randn({B, S, H}, rng);
    const auto dy = Tensor<T>::randn({B, S, H}, rng);
    typename nexa::BertEmbeddings<T>::Cache cpu_cache;
    typename nexa::BertEmbeddings<T, nexa::cuda>::Cache gpu_cache;
    poison_pool<T>({{B, S, H}, {B * S, H}});
    const auto y = embeds ? cpu.forward_embeds(inputs.cview(), types.cview(), cpu_cache)
                          : cpu.forward(ids.cview(), types.cview(), cpu_cache);
    const auto y_gpu = embeds ? gpu.forward_embeds(on_device(inputs).cview(), types_gpu.cview(), gpu_cache)
                              : gpu.forward(on_device(ids).cview(), types_gpu.cview(), gpu_cache);
    CHECK(y_gpu.shape() == y.shape());
    CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
    CHECK(gpu_cache.dropout.applied == cpu_cache.dropout.applied);
    poison_pool<T>({{B, S, H}});
    const auto dx = cpu.backward(dy.cview(), cpu_cache);
    const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
    CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
  }
  check_grads<T>(cpu, gpu, tolerance<T>());
  // The pad row of the word table got no gradient on either device: still the seeded value.
  const auto word_cpu = cpu.word_embeddings.weight.grad.to_host();
  const auto word_gpu = gpu.word_embeddings.weight.grad.to_host();
  CHECK(std::vector<T>(word_gpu.begin(), word_gpu.begin() + H) ==
        std::vector<T>(word_cpu.begin(), word_cpu.begin() + H));

  // Out-of-range ids and token types are rejected from the host copy.
  auto bad = ids.to_host();
  bad[5] = static_cast<std::int32_t>(config.vocab_size);
  typename nexa::BertEmbeddings<T, nexa::cuda>::Cache c;
  CHECK_THROWS_AS((void)gpu.forward(on_device(Tensor<std::int32_t>::from_host({B, S}, bad)).cview(), {}, c),
                  nexa::Error);
  auto bad_types = token_types(B, S, config.type_vocab).to_host();
  bad_types[3] = -1;
  CHECK_THROWS_AS((void)gpu.forward(on_device(ids).cview(),
                                    on_device(Tensor<std::int32_t>::from_host({B, S}, bad_types)).cview(), c),
                  nexa::Error);
}

template <class T>
void compare_pooler(std::uint64_t seed) {
  const nexa::BertConfig config = tiny_config(0.0);
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  nexa::BertPooler<T> cpu(config, cpu_rng);
  nexa::BertPooler<T, nexa::cuda> gpu(config, gpu_rng);
  perturb<T>(cpu, gpu, rng);
  seed_grads<T>(cpu, gpu, rng);
  const index_t H = config.hidden;
  for (const index_t S : {index_t{1}, index_t{9}}) {
    CAPTURE(S);
    const index_t B = 5;
    const auto hidden = Tensor<T>::randn({B, S, H}, rng);
    const auto dy = Tensor<T>::randn({B, H}, rng);
    typename nexa::BertPooler<T>::Cache cpu_cache;
    typename nexa::BertPooler<T, nexa::cuda>::Cache gpu_cache;
    poison_pool<T>({{B, H}, {B, H}});
    const auto y = cpu.forward(hidden.cview(), cpu_cache);
    const auto y_gpu = gpu.forward(on_device(hidden).cview(), gpu_cache);
    CHECK(y_gpu.shape() == y.shape());
    CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
    poison_pool<T>({{B, H}, {B, S, H}});
    const auto dh = cpu.backward(dy.cview(), cpu_cache);
    const auto dh_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
    CHECK(dh_gpu.shape() == dh.shape());
    CHECK(rel_error(dh_gpu.to_host(), dh.to_host()) < tolerance<T>());
  }
  check_grads<T>(cpu, gpu, tolerance<T>());
}

// BertLayer and BertEncoder on a padded batch: forward, backward (the encoder also from a
// lowest layer), every gradient; eval-mode apply against the CPU's.
void compare_layer_and_encoder(double dropout, std::uint64_t seed) {
  CAPTURE(dropout);
  using T = float;  // the device attention core (FlashAttention-2) stores float
  const nexa::BertConfig config = tiny_config(dropout);
  const index_t B = 4, S = 13, H = config.hidden;
  const auto mask = Tensor<std::int32_t>::from_host({B, S}, padding_flags(B, S));
  const auto mask_gpu = on_device(mask);
  {
    nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
    nexa::BertLayer<T> cpu(config, cpu_rng);
    nexa::BertLayer<T, nexa::cuda> gpu(config, gpu_rng);
    perturb<T>(cpu, gpu, rng);
    seed_grads<T>(cpu, gpu, rng);
    for (const bool padding : {true, false}) {
      CAPTURE(padding);
      const auto m = padding ? mask.cview() : nexa::TensorView<const std::int32_t>();
      const auto m_gpu = padding ? mask_gpu.cview() : nexa::TensorView<const std::int32_t, nexa::cuda>();
      const auto x = Tensor<T>::randn({B, S, H}, rng);
      const auto dy = Tensor<T>::randn({B, S, H}, rng);
      typename nexa::BertLayer<T>::Cache cpu_cache;
      typename nexa::BertLayer<T, nexa::cuda>::Cache gpu_cache;
      poison_pool<T>({{B, S, H}, {B, S, config.intermediate}});
      const auto y = cpu.forward(x.cview(), m, cpu_cache);
      const auto y_gpu = gpu.forward(on_device(x).cview(), m_gpu, gpu_cache);
      CHECK(y_gpu.shape() == y.shape());
      CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
      CHECK(rel_error(gpu_cache.intermediate_pre.to_host(), cpu_cache.intermediate_pre.to_host()) < tolerance<T>());
      poison_pool<T>({{B, S, H}, {B, S, config.intermediate}});
      const auto dx = cpu.backward(dy.cview(), cpu_cache);
      const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache);
      CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
    }
    check_grads<T>(cpu, gpu, tolerance<T>());
    cpu.set_training(false);
    gpu.set_training(false);
    const auto x = Tensor<T>::randn({B, S, H}, rng);
    CHECK(rel_error(gpu.apply(on_device(x).cview(), mask_gpu.cview()).to_host(),
                    cpu.apply(x.cview(), mask.cview()).to_host()) < tolerance<T>());
  }
  nexa::Rng cpu_rng(seed + 1), gpu_rng(seed + 1), rng(seed + 101);
  nexa::BertEncoder<T> cpu(config, cpu_rng);
  nexa::BertEncoder<T, nexa::cuda> gpu(config, gpu_rng);
  perturb<T>(cpu, gpu, rng);
  seed_grads<T>(cpu, gpu, rng);
  for (const std::size_t lowest : {std::size_t{0}, std::size_t{1}}) {
    CAPTURE(lowest);
    const auto x = Tensor<T>::randn({B, S, H}, rng);
    const auto dy = Tensor<T>::randn({B, S, H}, rng);
    typename nexa::BertEncoder<T>::Cache cpu_cache;
    typename nexa::BertEncoder<T, nexa::cuda>::Cache gpu_cache;
    const auto y = cpu.forward(x.cview(), mask.cview(), cpu_cache);
    const auto y_gpu = gpu.forward(on_device(x).cview(), mask_gpu.cview(), gpu_cache);
    CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
    poison_pool<T>({{B, S, H}});
    const auto dx = cpu.backward(dy.cview(), cpu_cache, lowest);
    const auto dx_gpu = gpu.backward(on_device(dy).cview(), gpu_cache, lowest);
    CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
  }
  check_grads<T>(cpu, gpu, tolerance<T>());
}

// BertModel with the classifier head on a padded batch with token types: all three outputs, the
// backward from all three upstream gradients, every parameter gradient; forward_embeds; the
// eval-mode apply; a bad mask value rejected from the host copy.
void compare_model(double dropout, std::uint64_t seed) {
  CAPTURE(dropout);
  using T = float;
  const nexa::BertConfig config = tiny_config(dropout);
  const index_t B = 4, S = 12, H = config.hidden, L = config.num_labels;
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  nexa::BertModel<T> cpu(config, cpu_rng);
  nexa::BertModel<T, nexa::cuda> gpu(config, gpu_rng);
  perturb<T>(cpu, gpu, rng);
  seed_grads<T>(cpu, gpu, rng);
  const auto flags = padding_flags(B, S);
  const auto mask = Tensor<std::int32_t>::from_host({B, S}, flags);
  const auto mask_gpu = on_device(mask);
  const auto ids = token_ids(flags, B, S, config.vocab_size);
  const auto ids_gpu = on_device(ids);
  const auto types = token_types(B, S, config.type_vocab);
  const auto types_gpu = on_device(types);
  for (const bool embeds : {false, true}) {
    CAPTURE(embeds);
    const auto inputs = Tensor<T>::randn({B, S, H}, rng);
    const auto d_last = Tensor<T>::randn({B, S, H}, rng);
    const auto d_pool = Tensor<T>::randn({B, H}, rng);
    const auto d_logits = Tensor<T>::randn({B, L}, rng);
    const auto d_last_gpu = on_device(d_last), d_pool_gpu = on_device(d_pool), d_logits_gpu = on_device(d_logits);
    typename nexa::BertModel<T>::Cache cpu_cache;
    typename nexa::BertModel<T, nexa::cuda>::Cache gpu_cache;
    poison_pool<T>({{B, S, H}, {B, H}, {B, L}});
    const auto out = embeds ? cpu.forward_embeds(inputs.cview(), types.cview(), mask.cview(), cpu_cache)
                            : cpu.forward(ids.cview(), types.cview(), mask.cview(), cpu_cache);
    const auto out_gpu =
        embeds ? gpu.forward_embeds(on_device(inputs).cview(), types_gpu.cview(), mask_gpu.cview(), gpu_cache)
               : gpu.forward(ids_gpu.cview(), types_gpu.cview(), mask_gpu.cview(), gpu_cache);
    CHECK(rel_error(out_gpu.last_hidden_state.to_host(), out.last_hidden_state.to_host()) < tolerance<T>());
    CHECK(rel_error(out_gpu.pooler_output.to_host(), out.pooler_output.to_host()) < tolerance<T>());
    CHECK(rel_error(out_gpu.logits.to_host(), out.logits.to_host()) < tolerance<T>());
    poison_pool<T>({{B, S, H}, {B, H}});
    const auto dx = cpu.backward({d_last.cview(), d_pool.cview(), d_logits.cview()}, cpu_cache);
    const auto dx_gpu = gpu.backward({d_last_gpu.cview(), d_pool_gpu.cview(), d_logits_gpu.cview()}, gpu_cache);
    CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < tolerance<T>());
  }
  check_grads<T>(cpu, gpu, tolerance<T>());

  cpu.set_training(false);
  gpu.set_training(false);
  const auto out = cpu.apply(ids.cview(), types.cview(), mask.cview());
  const auto out_gpu = gpu.apply(ids_gpu.cview(), types_gpu.cview(), mask_gpu.cview());
  CHECK(rel_error(out_gpu.last_hidden_state.to_host(), out.last_hidden_state.to_host()) < tolerance<T>());
  CHECK(rel_error(out_gpu.pooler_output.to_host(), out.pooler_output.to_host()) < tolerance<T>());
  CHECK(rel_error(out_gpu.logits.to_host(), out.logits.to_host()) < tolerance<T>());

  auto bad = flags;
  bad[7] = 2;
  typename nexa::BertModel<T, nexa::cuda>::Cache c;
  CHECK_THROWS_AS((void)gpu.forward(ids_gpu.cview(), types_gpu.cview(),
                                    on_device(Tensor<std::int32_t>::from_host({B, S}, bad)).cview(), c),
                  nexa::Error);
}

}  // namespace

TEST_CASE("cuda AbsolutePositionEmbedding matches the CPU bit for bit, with and without an offset") {
  compare_position_embedding<float>(0, 301);
  compare_position_embedding<float>(23, 302);
  compare_position_embedding<double>(5, 303);
}

TEST_CASE("cuda BertEmbeddings matches the CPU: pad ids, token types, input embeddings, dropout") {
  compare_embeddings<float>(0.0, true, false, 311);
  compare_embeddings<float>(0.0, false, false, 312);
  compare_embeddings<float>(0.0, true, true, 313);
  compare_embeddings<float>(0.2, true, false, 314);
  compare_embeddings<double>(0.1, false, false, 315);
  compare_embeddings<double>(0.0, true, true, 316);
}

TEST_CASE("cuda BertPooler matches the CPU, forward and backward") {
  compare_pooler<float>(321);
  compare_pooler<double>(322);
}

TEST_CASE("cuda BertLayer and BertEncoder match the CPU on a padded batch, hidden dropout 0 and 0.2") {
  compare_layer_and_encoder(0.0, 331);
  compare_layer_and_encoder(0.2, 332);
}

TEST_CASE("cuda BertModel matches the CPU: outputs, backward, every gradient, apply") {
  compare_model(0.0, 341);
  compare_model(0.15, 342);
}
