#pragma once
// data.hpp: the demo's data, built on examples/common/lm_data.hpp: the PHYS, BIO and MAT
// definitions of the GCIDE corpus (MED is kept for the extension example), the LM sequences
// (the tag kept on a share of the training sequences, never on evaluation ones) and, for each
// batch, the classifier's input: "[CLS] text [SEP]" in MiniLM's WordPiece ids with the domain
// labels.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "../common/lm_data.hpp"
#include "lm.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/moe/sequence_router.hpp"

namespace nexa_moe {

// An LM batch as the models' step takes it (views; the batch must outlive them).
inline TokenBatch token_batch(const lm_data::Batch& b) { return {b.ids.cview(), b.targets.cview(), b.mask.cview()}; }

inline constexpr std::int32_t kRoutedDomains = 3;  // PHYS, BIO, MAT: the experts, in that order

// The samples of the routed domains, in file order.
[[nodiscard]] inline std::vector<lm_data::Sample> routed_samples(const std::filesystem::path& split) {
  std::vector<lm_data::Sample> out;
  for (lm_data::Sample& s : lm_data::read_split(split))
    if (s.domain < kRoutedDomains) out.push_back(std::move(s));
  return out;
}

// Training sequences: sample i keeps its tag unless the (seed, i) draw falls below tag_dropout,
// so the LM learns to continue untagged text too, which is all evaluation shows it.
[[nodiscard]] inline std::vector<lm_data::Sequence> training_sequences(const lm_data::Vocab& vocab,
                                                                       std::span<const lm_data::Sample> samples,
                                                                       std::size_t max_len, double tag_dropout,
                                                                       std::uint64_t seed) {
  const nexa::RandomStream draws(seed, 0x7a6);
  std::vector<lm_data::Sequence> out;
  out.reserve(samples.size());
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const double u = draws.uniform(i);
    out.push_back(
        lm_data::make_sequence(vocab.encode(samples[i].text), samples[i].domain, {max_len, u >= tag_dropout}));
  }
  return out;
}

// The classifier's batch for texts: [CLS] text [SEP], cut to max_len WordPiece ids, padded to
// the longest; no labels or overrides (the caller adds them).
[[nodiscard]] inline nexa::SequenceBatch classifier_batch(const nexa::WordPieceTokenizer& wordpiece,
                                                          std::span<const std::string> texts, std::size_t max_len) {
  nexa::BatchEncoding enc = wordpiece.encode_batch(texts, nexa::EncodeOptions{.max_length = max_len});
  nexa::SequenceBatch out;
  out.ids = std::move(enc.input_ids);
  out.token_types = std::move(enc.token_type_ids);
  out.mask = std::move(enc.attention_mask);
  return out;
}

// The same for the samples at `indices`, with their domain labels when `with_labels` (training).
[[nodiscard]] inline nexa::SequenceBatch classifier_batch(const nexa::WordPieceTokenizer& wordpiece,
                                                          std::span<const lm_data::Sample> samples,
                                                          std::span<const std::size_t> indices, std::size_t max_len,
                                                          bool with_labels) {
  std::vector<std::string> texts;
  texts.reserve(indices.size());
  for (const std::size_t i : indices) texts.push_back(samples[i].text);
  nexa::SequenceBatch out = classifier_batch(wordpiece, texts, max_len);
  if (with_labels)
    for (const std::size_t i : indices) out.domain_labels.push_back(samples[i].domain);
  return out;
}

}  // namespace nexa_moe
