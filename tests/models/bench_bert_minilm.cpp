// Forward time of all-MiniLM-L6-v2 (eval, fp32) at batch 32 x length 128: sentences/s; then one
// training step's forward + backward at the same size.
// Not a test: build with `cmake --build <dir> --target bench_bert_minilm` and run
//   OMP_NUM_THREADS=2 <dir>/tests/models/bench_bert_minilm [checkpoint dir]
// Random weights (same shapes) are used when no checkpoint is found: the time does not depend on
// the values.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "nexa/models/bert.hpp"

int main(int argc, char** argv) {
  std::filesystem::path dir;
  if (argc > 1) {
    dir = argv[1];
  } else if (const char* env = std::getenv("NEXA_MINILM_DIR"); env && *env) {
    dir = env;
  } else if (const char* home = std::getenv("HOME")) {
    dir = std::filesystem::path(home) / ".cache/nexa/all-MiniLM-L6-v2";
  }
  const bool have = std::filesystem::exists(dir / "model.safetensors");
  nexa::BertConfig config{.vocab_size = 30522, .hidden = 384, .layers = 6, .heads = 12, .intermediate = 1536};
  if (have) config = nexa::BertConfig::from_json(dir);
  nexa::Rng rng(0);
  nexa::BertModel<> model(config, rng);
  if (have) (void)nexa::load_bert(model, dir);
  model.set_training(false);

  const nexa::index_t B = 32, S = 128;
  nexa::RandomStream s(7, 0);
  std::vector<std::int32_t> ids(B * S), mask(B * S, 1);
  for (nexa::index_t i = 0; i < B * S; ++i)
    ids[std::size_t(i)] = 1000 + std::int32_t(s.uniform(std::uint64_t(i)) * 20000);
  const auto ids_t = nexa::Tensor<std::int32_t>::from_host({B, S}, ids);
  const auto mask_t = nexa::Tensor<std::int32_t>::from_host({B, S}, mask);

  (void)model.apply(ids_t, {}, mask_t);  // warm-up
  const int reps = 3;
  double best = 1e30, total = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto out = model.apply(ids_t, {}, mask_t);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, sec);
    total += sec;
  }
  std::cout << "MiniLM-L6 forward, batch " << B << " x length " << S << (have ? "" : " (random weights)") << ": best "
            << best << " s, mean " << total / reps << " s, " << B / best << " sentences/s\n";

  // One training step's forward (with caches) + backward, dropout off, for scale.
  nexa::BertModel<>::Cache cache;
  const auto t0 = std::chrono::steady_clock::now();
  const auto out = model.forward(ids_t, {}, mask_t, cache);
  const auto t1 = std::chrono::steady_clock::now();
  const auto dy = nexa::Tensor<float>::full(out.last_hidden_state.shape(), 1e-3f);
  (void)model.backward({.last_hidden_state = dy}, cache);
  const double fwd = std::chrono::duration<double>(t1 - t0).count();
  const double bwd = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  std::cout << "training step: forward " << fwd << " s + backward " << bwd << " s\n";
  return 0;
}
