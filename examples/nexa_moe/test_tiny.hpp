#pragma once
// Tiny NEXA-MOE models and one batch for the examples' unit tests (nexa-moe, qlora-finetune,
// nexus-shared-expert): small enough to run in milliseconds, shaped like the real ones.
#include <cstdint>

#include "lm.hpp"
#include "nexa/models/bert_config.hpp"

namespace nexa_moe::tiny {

// A 2-layer LM with 3 experts over a 30-token vocabulary.
inline LMConfig lm_config(nexa::index_t d_ff = 24) {
  return {.vocab = 30, .d_model = 16, .heads = 2, .layers = 2, .d_ff = d_ff, .experts = 3, .relative_buckets = 8};
}

// A BERT router with one label per expert, without dropout (so forward passes are repeatable).
inline nexa::BertConfig bert_config(nexa::index_t vocab = 40, nexa::index_t layers = 2) {
  nexa::BertConfig c;
  c.vocab_size = vocab;
  c.hidden = 8;
  c.layers = layers;
  c.heads = 2;
  c.intermediate = 16;
  c.max_position = 16;
  c.num_labels = 3;
  c.dropout = 0.0;
  c.attention_dropout = 0.0;
  return c;
}

// Two sequences of 5 LM tokens (the second padded) and their classifier inputs.
struct Batch {
  nexa::Tensor<std::int32_t> ids = nexa::Tensor<std::int32_t>::from_host({2, 5}, {2, 9, 11, 12, 3, 2, 15, 3, 0, 0});
  nexa::Tensor<std::int32_t> targets =
      nexa::Tensor<std::int32_t>::from_host({2, 5}, {9, 11, 12, 3, -100, 15, 3, -100, -100, -100});
  nexa::Tensor<std::int32_t> mask = nexa::Tensor<std::int32_t>::from_host({2, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  [[nodiscard]] nexa::SequenceBatch route() const {
    nexa::SequenceBatch r;
    r.ids = nexa::Tensor<std::int32_t>::from_host({2, 4}, {1, 7, 8, 2, 1, 30, 2, 0});
    r.mask = nexa::Tensor<std::int32_t>::from_host({2, 4}, {1, 1, 1, 1, 1, 1, 1, 0});
    r.domain_labels = {1, 2};
    return r;
  }
  [[nodiscard]] TokenBatch tokens() const { return {ids.cview(), targets.cview(), mask.cview()}; }
};

}  // namespace nexa_moe::tiny
