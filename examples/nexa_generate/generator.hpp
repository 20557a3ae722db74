#pragma once
// generator.hpp: batched text generation with a KV cache for the demo's LMs (nexa_moe/lm.hpp).
// Prompts of different lengths are padded on the left, so every row's next position is the
// same column; the prompt runs through Stack::decode at once, then one position per step.
// NEXA-MOE's router classifies the batch once (nexa::SequenceBatch, with per-prompt overrides),
// and every decode step's MoE layers route by that classification.
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "../common/lm_data.hpp"
#include "../nexa_moe/lm.hpp"
#include "nexa/generate/sampling.hpp"

namespace nexa_generate {

using nexa::index_t;

struct Options {
  nexa::generate::SamplingConfig sampling;
  index_t max_new_tokens = 40;
  std::uint64_t seed = 1;
};

struct Generation {
  std::vector<std::int32_t> tokens;  // generated ids, without the final [EOS]
  bool finished = false;             // ended with [EOS] (else: max_new_tokens)
};

// The next-token logits [B, vocab] of the rows' last positions: h is [B, n, d].
template <class LM>
nexa::Tensor<float> last_logits(LM& model, const nexa::Tensor<float>& h) {
  const index_t B = h.dim(0), n = h.dim(1), d = h.dim(2);
  auto last = nexa::Tensor<float>::uninitialized({B, d});
  for (index_t b = 0; b < B; ++b) std::copy_n(h.data() + (b * n + n - 1) * d, d, last.data() + b * d);
  return model.head.apply(last.cview());
}

// Generates for every prompt (compact ids, "[BOS] ..." as the LM was trained). A NexaMoeLM must
// have classified the batch (model.router->classify) before the call. Sampling draws element
// (step) of RandomStream(seed, row id), so a prompt's text does not depend on its batch.
template <class LM>
std::vector<Generation> generate(LM& model, const std::vector<std::vector<std::int32_t>>& prompts,
                                 std::span<const std::uint64_t> row_ids, const Options& options) {
  const index_t B = static_cast<index_t>(prompts.size());
  nexa::require(B > 0, "nexa-generate", "no prompts");
  index_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, static_cast<index_t>(p.size()));
  // Left padding: ids and the key mask over every position so far.
  std::vector<std::int32_t> ids(static_cast<std::size_t>(B * longest), lm_data::kPad);
  std::vector<std::int32_t> mask(static_cast<std::size_t>(B * longest), 0);
  for (index_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<std::size_t>(b)];
    const index_t pad = longest - static_cast<index_t>(p.size());
    for (std::size_t i = 0; i < p.size(); ++i) {
      ids[static_cast<std::size_t>(b * longest + pad) + i] = p[i];
      mask[static_cast<std::size_t>(b * longest + pad) + i] = 1;
    }
  }
  std::vector<nexa::KVCache<float>> kv;
  nexa::Tensor<float> x = model.embed.apply(nexa::Tensor<std::int32_t>::from_host({B, longest}, ids).cview());
  index_t length = longest;
  nexa::Tensor<float> h =
      model.stack.decode(x.cview(), kv, nexa::Tensor<std::int32_t>::from_host({B, length}, mask).cview());

  std::vector<Generation> out(static_cast<std::size_t>(B));
  const index_t vocab = model.config().vocab;
  for (index_t step = 0; step < options.max_new_tokens; ++step) {
    const nexa::Tensor<float> logits = last_logits(model, h);
    std::vector<std::int32_t> next(static_cast<std::size_t>(B), lm_data::kPad);
    bool all_done = true;
    for (index_t b = 0; b < B; ++b) {
      Generation& g = out[static_cast<std::size_t>(b)];
      if (g.finished) continue;
      const std::span<const float> row(logits.data() + b * vocab, static_cast<std::size_t>(vocab));
      const nexa::RandomStream stream(options.seed, row_ids[static_cast<std::size_t>(b)]);
      const auto token = static_cast<std::int32_t>(
          nexa::generate::sample_token(row, options.sampling, stream, static_cast<std::uint64_t>(step)));
      if (token == lm_data::kEos) {
        g.finished = true;
      } else {
        g.tokens.push_back(token);
        all_done = false;
      }
      next[static_cast<std::size_t>(b)] = token;
    }
    if (all_done || step + 1 == options.max_new_tokens) break;
    // Every row takes one more position (finished rows too: their output is ignored).
    std::vector<std::int32_t> grown(static_cast<std::size_t>(B * (length + 1)));
    for (index_t b = 0; b < B; ++b) {
      std::copy_n(mask.data() + b * length, length, grown.data() + b * (length + 1));
      grown[static_cast<std::size_t>(b * (length + 1) + length)] = 1;
    }
    mask = std::move(grown);
    ++length;
    x = model.embed.apply(nexa::Tensor<std::int32_t>::from_host({B, 1}, next).cview());
    h = model.stack.decode(x.cview(), kv, nexa::Tensor<std::int32_t>::from_host({B, length}, mask).cview());
  }
  return out;
}

}  // namespace nexa_generate
