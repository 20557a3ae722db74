#pragma once
// task.hpp: the fine-tuning task, built from the GCIDE corpus: given a headword, write its
// definition. Each sample becomes
//   [BOS] headword : definition [EOS]
// in the checkpoint's compact vocabulary; the prompt ("[BOS] headword :") is given, so only the
// definition's tokens and the final [EOS] are predicted (the prompt's next-token targets are
// kIgnore). The router sees what a user would give: the headword alone.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "../common/lm_data.hpp"

namespace qlora_task {

inline constexpr std::string_view kModule = "qlora-task";

// A split laid out for the task; entry i of every vector is sample i.
struct TaskData {
  std::vector<lm_data::Sequence> sequences;  // [BOS] headword : definition [EOS]
  std::vector<std::size_t> prompt_lengths;   // ids of "[BOS] headword :"
  std::vector<std::string> headwords;        // the router's input
  [[nodiscard]] std::size_t size() const { return sequences.size(); }
};

// One task sequence from a sample; max_len bounds the whole sequence. The headword keeps at most
// half of it; the definition is cut so that the sequence still ends with [EOS].
[[nodiscard]] inline lm_data::Sequence task_sequence(const lm_data::Vocab& vocab, const lm_data::Sample& sample,
                                                     std::size_t max_len, std::size_t& prompt_length) {
  nexa::require(max_len >= 6, kModule, "max_len ", max_len, " is too short for a prompt and a definition");
  std::vector<std::int32_t> prompt = vocab.encode(sample.headword);
  prompt.resize(std::min(prompt.size(), max_len / 2 - 2));
  const std::vector<std::int32_t> colon = vocab.encode(":");
  nexa::require(colon.size() == 1, kModule, "the vocabulary has no single token for ':'");
  prompt.push_back(colon.front());
  const std::vector<std::int32_t> definition = vocab.encode(sample.text);
  lm_data::Sequence s;
  s.domain = sample.domain;
  s.ids.push_back(lm_data::kBos);
  s.ids.insert(s.ids.end(), prompt.begin(), prompt.end());
  prompt_length = s.ids.size();
  const std::size_t room = max_len - prompt_length - 1;
  s.truncated = definition.size() > room;
  s.ids.insert(s.ids.end(), definition.begin(),
               definition.begin() + static_cast<std::ptrdiff_t>(std::min(room, definition.size())));
  s.ids.push_back(lm_data::kEos);
  return s;
}

[[nodiscard]] inline TaskData make_task(const lm_data::Vocab& vocab, std::span<const lm_data::Sample> samples,
                                        std::size_t max_len) {
  TaskData out;
  for (const lm_data::Sample& s : samples) {
    std::size_t prompt = 0;
    out.sequences.push_back(task_sequence(vocab, s, max_len, prompt));
    out.prompt_lengths.push_back(prompt);
    out.headwords.push_back(s.headword);
  }
  return out;
}

// Masks the prompt out of a batch made from data.sequences: a target at position t predicts id
// t + 1, which is part of the prompt while t + 1 < prompt length.
inline void mask_prompts(lm_data::Batch& batch, const TaskData& data) {
  const nexa::index_t S = batch.ids.dim(1);
  std::int32_t* targets = batch.targets.data();
  for (std::size_t r = 0; r < batch.size(); ++r) {
    const std::size_t prompt = data.prompt_lengths[batch.indices[r]];
    for (std::size_t t = 0; t + 1 < prompt; ++t) {
      std::int32_t& target = targets[static_cast<nexa::index_t>(r) * S + static_cast<nexa::index_t>(t)];
      if (target != lm_data::kIgnore) --batch.target_tokens;
      target = lm_data::kIgnore;
    }
  }
}

// The batch of data.sequences[indices] with the prompts masked out.
[[nodiscard]] inline lm_data::Batch task_batch(const TaskData& data, std::span<const std::size_t> indices) {
  lm_data::Batch b = lm_data::make_batch(data.sequences, indices);
  mask_prompts(b, data);
  return b;
}

// The prompts' ids ("[BOS] headword :") of data.sequences[indices], for generation.
[[nodiscard]] inline std::vector<std::vector<std::int32_t>> prompts(const TaskData& data,
                                                                    std::span<const std::size_t> indices) {
  std::vector<std::vector<std::int32_t>> out;
  for (const std::size_t i : indices) {
    const auto& ids = data.sequences[i].ids;
    out.emplace_back(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(data.prompt_lengths[i]));
  }
  return out;
}

// `count` indices spread evenly over [0, n) (all of them when count is 0 or at least n): a
// validation subset that covers the whole alphabet of headwords.
[[nodiscard]] inline std::vector<std::size_t> spread(std::size_t n, std::size_t count) {
  std::vector<std::size_t> out;
  if (count == 0 || count >= n) count = n;
  for (std::size_t i = 0; i < count; ++i) out.push_back(i * n / count);
  return out;
}

}  // namespace qlora_task
