// nexa_bench_bert: all-MiniLM-L6-v2 encoder throughput (eval, fp32) at batch 32 x length 128,
// and the cost of the sequence-classifier router (that encoder with a 3-way head) per token
// against an MoE layer's at the foundation bench shape (T = 4096 = 32 x 128 tokens, d_model 512,
// d_ff 2048, E = 3 domain experts, top-1).
//   nexa_bench_bert [--json] [checkpoint dir]
// Uses the real checkpoint when found ($NEXA_MINILM_DIR or ~/.cache/nexa/all-MiniLM-L6-v2),
// else random weights of the same shapes: the time does not depend on the values.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "bench_util.hpp"
#include "nexa/models/bert.hpp"
#include "nexa/moe.hpp"

namespace {

std::filesystem::path checkpoint_dir(const char* arg) {
  if (arg) return arg;
  if (const char* env = std::getenv("NEXA_MINILM_DIR"); env && *env) return env;
  if (const char* home = std::getenv("HOME")) return std::filesystem::path(home) / ".cache/nexa/all-MiniLM-L6-v2";
  return {};
}

nexa::Tensor<std::int32_t> random_ids(nexa::index_t b, nexa::index_t s) {
  nexa::RandomStream stream(7, 0);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(b * s));
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = 1000 + static_cast<std::int32_t>(stream.uniform(i) * 20000);
  return nexa::Tensor<std::int32_t>::from_host({b, s}, ids);
}

}  // namespace

int main(int argc, char** argv) try {
  bool json = false;
  const char* dir_arg = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0)
      json = true;
    else
      dir_arg = argv[i];
  }
  const auto dir = checkpoint_dir(dir_arg);
  const bool have = !dir.empty() && std::filesystem::exists(dir / "model.safetensors");
  nexa::BertConfig config{.vocab_size = 30522, .hidden = 384, .layers = 6, .heads = 12, .intermediate = 1536};
  if (have) config = nexa::BertConfig::from_json(dir);
  nexa::Rng rng(0);
  nexa::BertModel<> model(config, rng);
  if (have) (void)nexa::load_bert(model, dir);
  model.set_training(false);

  const nexa::index_t B = 32, S = 128;
  const auto ids = random_ids(B, S);
  const auto mask = nexa::Tensor<std::int32_t>::full({B, S}, 1);
  const double t_encoder = nexa::bench::median_seconds([&] { (void)model.apply(ids, {}, mask); }, 5, 3.0);

  // The router: the same encoder with a 3-way head routes each sequence; the layer's experts run
  // on its 4096 tokens.
  using Router = nexa::SequenceClassifierRouter<nexa::BertModel<>, 1>;
  using Layer = nexa::MoELayer<Router, nexa::T5FFN<nexa::Relu>>;
  Layer layer({.d_model = 512, .d_ff = 2048, .num_experts = 3}, rng);
  auto classifier_config = config;
  classifier_config.num_labels = 3;
  layer.router.set_classifier(nexa::BertModel<>(classifier_config, rng));
  layer.router.classifier.set_training(false);
  nexa::SequenceBatch batch{ids, {}, mask, {}, {}};
  auto x = nexa::Tensor<float>::randn({B * S, 512}, rng);
  Layer::Cache cache;
  const auto t = nexa::bench::interleaved_median_seconds({
      [&] { (void)layer.router.classify(batch); },
      [&] {
        (void)layer.router.classify(batch);
        (void)layer.forward(x, cache);
      },
  });
  const double per_token = 1e6 / static_cast<double>(B * S);
  if (json) {
    std::printf(
        "{\"name\": \"minilm_forward\", \"batch\": %lld, \"length\": %lld, \"checkpoint\": %s, \"seconds\": %.6f, "
        "\"sentences_per_second\": %.2f}\n",
        static_cast<long long>(B), static_cast<long long>(S), have ? "true" : "false", t_encoder,
        static_cast<double>(B) / t_encoder);
    std::printf(
        "{\"name\": \"router_sequence_classifier\", \"tokens\": %lld, \"router_us_per_token_fwd\": %.4f, "
        "\"layer_us_per_token_fwd\": %.4f, \"router_over_layer_fwd\": %.4f}\n",
        static_cast<long long>(B * S), t[0] * per_token, t[1] * per_token, t[0] / t[1]);
  } else {
    std::printf("MiniLM-L6 forward, batch %lld x length %lld%s: %.3f s, %.1f sentences/s\n", static_cast<long long>(B),
                static_cast<long long>(S), have ? "" : " (random weights)", t_encoder,
                static_cast<double>(B) / t_encoder);
    std::printf("sequence-classifier router: %.3f us/token, %.1f%% of the layer's forward (router + experts)\n",
                t[0] * per_token, 100 * t[0] / t[1]);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "nexa_bench_bert: %s\n", e.what());
  return 1;
}
