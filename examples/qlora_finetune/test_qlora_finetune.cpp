// qlora-finetune's pieces on tiny models: the task's sequences and prompt masking; the QLoRA
// conversion of a NEXA-MOE LM (only the adapters train; the NF4 base, the copied weights and the
// source model stay bit for bit); adapters saved alone and reloaded give the same loss; memory.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../nexa_moe/test_tiny.hpp"
#include "nexa/train/adamw.hpp"
#include "qlora_lm.hpp"
#include "task.hpp"

namespace fs = std::filesystem;
using nexa::index_t;
using nexa::Tensor;

namespace {

// WordPiece ids: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, then words.
constexpr std::string_view kWordPieceVocab =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\ndog\n##s\nrun\n:\n.\na\nbig\n";

nexa::WordPieceTokenizer tiny_wordpiece() {
  const fs::path path = fs::temp_directory_path() / "nexa_test_qlora_finetune_vocab.txt";
  std::ofstream(path, std::ios::binary) << kWordPieceVocab;
  auto wp = nexa::WordPieceTokenizer::from_vocab_file(path);
  fs::remove(path);
  return wp;
}

const nexa_moe::LMConfig kTiny = nexa_moe::tiny::lm_config(/*d_ff=*/64);
using nexa_moe::tiny::Batch;
nexa::BertConfig tiny_bert() { return nexa_moe::tiny::bert_config(/*vocab=*/40, /*layers=*/1); }

template <class LM>
std::vector<std::vector<float>> frozen_values(LM& lm) {
  std::vector<std::vector<float>> out;
  lm.visit_params([&](const std::string& name, nexa::Param<float>& p) {
    if (!nexa::is_lora_param(name)) out.push_back(p.value.to_host());
  });
  return out;
}

}  // namespace

TEST_CASE("Task: [BOS] headword : definition [EOS], loss only on the definition and [EOS]") {
  const std::vector<lm_data::Sample> samples = {{"Cat", 1, "A big cat: the cats run."}, {"Dog", 1, "The dog."}};
  const lm_data::Vocab vocab = lm_data::Vocab::build(tiny_wordpiece(), samples);
  const qlora_task::TaskData data = qlora_task::make_task(vocab, samples, 64);
  REQUIRE(data.size() == 2);
  const std::int32_t cat = *vocab.id_of("cat"), colon = *vocab.id_of(":"), dog = *vocab.id_of("dog");
  CHECK(data.prompt_lengths[0] == 3);
  CHECK(std::vector<std::int32_t>(data.sequences[0].ids.begin(), data.sequences[0].ids.begin() + 3) ==
        std::vector<std::int32_t>{lm_data::kBos, cat, colon});
  CHECK(data.sequences[1].ids.back() == lm_data::kEos);
  CHECK(data.headwords[1] == "Dog");
  CHECK(qlora_task::prompts(data, std::vector<std::size_t>{1}).front() ==
        std::vector<std::int32_t>{lm_data::kBos, dog, colon});

  const std::vector<std::size_t> idx = {0, 1};
  const lm_data::Batch plain = lm_data::make_batch(data.sequences, idx);
  const lm_data::Batch b = qlora_task::task_batch(data, idx);
  const index_t S = b.ids.dim(1);
  for (std::size_t r = 0; r < 2; ++r) {
    const auto& ids = data.sequences[r].ids;
    for (std::size_t t = 0; t + 1 < ids.size(); ++t) {
      const std::int32_t target = b.targets.data()[static_cast<index_t>(r) * S + static_cast<index_t>(t)];
      CAPTURE(r);
      CAPTURE(t);
      // Positions 0 and 1 predict the headword and ':' (given); from ':' on, the definition.
      CHECK(target == (t + 1 < data.prompt_lengths[r] ? lm_data::kIgnore : ids[t + 1]));
    }
  }
  CHECK(b.target_tokens == plain.target_tokens - 4);

  // A long definition is cut, the prompt kept, and [EOS] stays last.
  const lm_data::Sample long_one{"Cat", 0, "the cat the cat the cat the cat the cat the cat the cat"};
  std::size_t prompt = 0;
  const lm_data::Sequence s = qlora_task::task_sequence(vocab, long_one, 8, prompt);
  CHECK(s.ids.size() == 8);
  CHECK(s.truncated);
  CHECK(prompt == 3);
  CHECK(s.ids.back() == lm_data::kEos);
  CHECK(qlora_task::spread(10, 4) == std::vector<std::size_t>{0, 2, 5, 7});
  CHECK(qlora_task::spread(3, 0).size() == 3);
}

TEST_CASE("QLoRA model: only adapters train; NF4 base, copied weights and source model stay; reload is exact") {
  nexa::Rng rng(3);
  nexa_moe::NexaMoeLM trained(kTiny, nexa::BertModel<>(tiny_bert(), rng), 0.0, rng);
  trained.router->set_training_scope(nexa::RouterTraining::Frozen);
  const nexa::LoRAConfig lora{.r = 2, .alpha = 4};
  nexa::Rng adapter_rng(7);
  qlora_lm::QLoraLM q = qlora_lm::make_qlora(trained, lora, adapter_rng);
  qlora_lm::FullLM& full = trained;
  const Batch b;

  // Fresh adapters: the NF4 model, close to the fp32 one (4-bit weights, not equal).
  const double dense_loss = qlora_lm::routed_step(full, b.route(), b.tokens(), false).lm;
  const double nf4_loss = qlora_lm::routed_step(q, b.route(), b.tokens(), false).lm;
  CHECK(std::isfinite(nf4_loss));
  CHECK(nf4_loss == doctest::Approx(dense_loss).epsilon(0.05));

  const qlora_lm::Memory m = qlora_lm::memory_of(q);
  const index_t d = kTiny.d_model, f = kTiny.d_ff;
  CHECK(m.trainable == kTiny.layers * kTiny.experts * 2 * lora.r * (d + f));
  CHECK(m.expert_parameters == kTiny.layers * kTiny.experts * 2 * d * f);
  CHECK(m.expert_bytes < static_cast<std::size_t>(m.expert_parameters));  // about half a byte each
  const qlora_lm::Memory mf = qlora_lm::memory_of(full);
  CHECK(mf.trainable == m.frozen + m.expert_parameters);  // everything the LM has, experts dense

  const auto q_frozen = frozen_values(q);
  const auto source = frozen_values(full);
  const auto codes = q.stack.blocks[1].ffn.experts[2].base.wo().codes;
  nexa::train::AdamW opt(q, {.lr = 1e-2, .weight_decay = 0.0});
  for (const auto& name : opt.param_names()) CHECK(nexa::is_lora_param(name));
  CHECK(opt.num_elements() == m.trainable);
  double first = 0, last = 0;
  for (int step = 0; step < 8; ++step) {
    last = qlora_lm::routed_step(q, b.route(), b.tokens(), true).lm;
    if (step == 0) first = last;
    opt.step();
    opt.zero_grad();
  }
  CHECK(last < first);
  CHECK(frozen_values(q) == q_frozen);
  CHECK(frozen_values(full) == source);
  CHECK(q.stack.blocks[1].ffn.experts[2].base.wo().codes == codes);

  const double trained_loss = qlora_lm::routed_step(q, b.route(), b.tokens(), false).lm;
  const fs::path path = fs::temp_directory_path() / "nexa_test_qlora_finetune_adapters.safetensors";
  nexa::save_adapters(q, path, "base_model.model");
  std::size_t saved = 0;
  q.visit_params([&](const std::string& name, auto&) { saved += nexa::is_lora_param(name) ? 1 : 0; });
  CHECK(saved == static_cast<std::size_t>(kTiny.layers * kTiny.experts * 4));
  nexa::Rng other(99);
  qlora_lm::QLoraLM fresh = qlora_lm::make_qlora(trained, lora, other);
  CHECK(qlora_lm::routed_step(fresh, b.route(), b.tokens(), false).lm != trained_loss);
  nexa::load_adapters(fresh, path, "base_model.model");
  CHECK(qlora_lm::routed_step(fresh, b.route(), b.tokens(), false).lm == trained_loss);
  fs::remove(path);
}
