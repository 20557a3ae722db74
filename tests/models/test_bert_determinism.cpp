// BERT's forward and backward give bitwise identical results with 1 and 2 threads (work is split
// by index only; dropout masks are counter-based).
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nexa/models/bert.hpp"
#include "support/threads.hpp"

namespace {

using nexa::testing::set_threads;

struct Run {
  std::vector<float> hidden, logits, dx, grads;
};

Run run_model(int threads) {
  using namespace nexa;
  set_threads(threads);
  Rng rng(70);
  BertModel<> model({.vocab_size = 100,
                     .hidden = 64,
                     .layers = 2,
                     .heads = 4,
                     .intermediate = 128,
                     .max_position = 64,
                     .dropout = 0.1,
                     .num_labels = 2,
                     .attention_dropout = 0.1},
                    rng);
  const index_t B = 8, S = 48;
  std::vector<std::int32_t> ids(B * S), mask(B * S);
  const RandomStream s(71, 0);
  for (index_t i = 0; i < B * S; ++i) {
    ids[std::size_t(i)] = 1 + std::int32_t(s.uniform(std::uint64_t(i)) * 98);
    mask[std::size_t(i)] = (i % S) < S - (i / S) * 5 ? 1 : 0;  // sequence b has 5b padding tokens
  }
  const auto ids_t = Tensor<std::int32_t>::from_host({B, S}, ids);
  const auto mask_t = Tensor<std::int32_t>::from_host({B, S}, mask);
  BertModel<>::Cache cache;
  const auto out = model.forward(ids_t, {}, mask_t, cache);
  const auto dh = Tensor<float>::randn(out.last_hidden_state.shape(), rng);
  const auto dl = Tensor<float>::randn(out.logits.shape(), rng);
  Run run;
  run.hidden = out.last_hidden_state.to_host();
  run.logits = out.logits.to_host();
  run.dx = model.backward({.last_hidden_state = dh, .logits = dl}, cache).to_host();
  model.visit_params([&](const std::string&, auto& p) {
    const auto g = p.grad.to_host();
    run.grads.insert(run.grads.end(), g.begin(), g.end());
  });
  return run;
}

}  // namespace

TEST_CASE("BertModel forward and backward are bitwise identical with 1 and 2 threads (dropout on, padding)") {
  const Run one = run_model(1);
  const Run two = run_model(2);
  set_threads(2);
  CHECK(one.hidden == two.hidden);
  CHECK(one.logits == two.logits);
  CHECK(one.dx == two.dx);
  CHECK(one.grads == two.grads);
}
