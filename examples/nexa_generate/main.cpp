// nexa-generate: inference with a nexa-moe checkpoint (issue 7). Routes each prompt with the BERT
// domain router (or --domain), then generates a continuation with the NEXA-MOE LM and a KV cache
// (greedy, temperature, top-k, top-p), for a batch of prompts.
//
//   nexa-generate --checkpoint DIR [--input FILE] [--domain TAG] [--int8] [--eval-file FILE] ...
//
// Input: JSON lines {"text": "..."} (standard input without --input); malformed lines are reported
// with their number and skipped (exit code 2). Output: one JSON line per prompt, {"line", "domain",
// "probs", "prompt", "continuation", "text", "tokens", "finished"}: "text" is the prompt's tokens
// and the continuation decoded together (a continuation may start inside the prompt's last word,
// e.g. "sulphur" + "##ic"), lower-cased as the vocabulary is. The prompt given to the LM is
// "[BOS] [TAG] text" with the routed domain's tag (NEXA-MOE's tag prefix; --no-tag leaves it out).
// --int8 exports the checkpoint with int8 weights (generate/int8_export.hpp; written once, next to
// the fp32 file) and generates with it; it reports the export's size against fp32, the weights'
// relative error and, with --eval-file (a nexa-gcide-corpus split), the validation loss of fp32
// and int8 side by side. The summary goes to standard error: tokens per second and the int8 figures.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "../common/jsonl_input.hpp"
#include "../common/threads.hpp"
#include "../nexa_moe/checkpoint.hpp"
#include "../nexa_moe/data.hpp"
#include "generator.hpp"
#include "nexa/generate/int8_export.hpp"

namespace {

namespace fs = std::filesystem;
using nexa::index_t;
using Clock = std::chrono::steady_clock;
constexpr const char* kProgram = "nexa-generate";

constexpr const char* kUsage =
    "usage: nexa-generate --checkpoint DIR [--input FILE] [--domain TAG] [--int8] [options]\n"
    "Routes each prompt (JSON lines {\"text\": ...}, standard input without --input) with a nexa-moe\n"
    "checkpoint's BERT router and continues it with the NEXA-MOE LM (KV cache).\n"
    "  --checkpoint DIR    a nexa-moe checkpoint (nexa-moe --out DIR writes DIR/checkpoint)\n"
    "  --domain TAG        route every prompt to TAG (PHYS, BIO, MAT or [PHYS]...)\n"
    "  --int8              generate with int8 weights (exported once to DIR/nexa_moe.int8.safetensors)\n"
    "  --eval-file FILE    a corpus split (valid.jsonl): report the validation loss (fp32, and int8)\n"
    "  --eval-limit N      definitions of --eval-file to use [300]\n"
    "  --max-new N         tokens to generate at most per prompt [40]\n"
    "  --greedy            argmax decoding (temperature, top-k and top-p are then ignored)\n"
    "  --temperature X --top-k N --top-p X   sampling [0.8 40 0.95]\n"
    "  --no-tag            leave the domain tag out of the prompt\n"
    "  --batch N           prompts per batch [8]\n"
    "  --seed N --threads N                  [1 0]\n";

struct Options {
  fs::path checkpoint;
  std::optional<fs::path> input, eval_file;
  std::optional<std::string> domain;
  bool int8 = false, greedy = false, no_tag = false;
  std::size_t eval_limit = 300, batch = 8;
  index_t max_new = 40, top_k = 40;
  double temperature = 0.8, top_p = 0.95;
  std::uint64_t seed = 1;
  int threads = 0;
};

struct Prompt {
  std::size_t line = 0;
  std::string text;
};

// Mean next-token loss of the model on untagged definitions, each routed by its classifier.
double eval_loss(nexa_moe::NexaMoeLM& model, const lm_data::Vocab& vocab, const nexa::WordPieceTokenizer& wordpiece,
                 const std::vector<lm_data::Sample>& samples, std::size_t classifier_len) {
  const lm_data::Batcher batcher(lm_data::make_sequences(vocab, samples, {.max_len = 64, .with_tag = false}),
                                 {.batch_size = 32, .shuffle = false});
  double sum = 0, targets = 0;
  for (const auto& indices : batcher.epoch(0)) {
    const lm_data::Batch b = batcher.batch(indices);
    const nexa::SequenceBatch route = nexa_moe::classifier_batch(wordpiece, samples, indices, classifier_len, false);
    const auto l =
        model.step(route, {b.ids.cview(), b.targets.cview(), b.mask.cview()}, false, [](std::size_t, auto&) {});
    sum += l.lm * static_cast<double>(l.targets);
    targets += static_cast<double>(l.targets);
  }
  return targets > 0 ? sum / targets : NAN;
}

std::vector<std::int32_t> joined(std::vector<std::int32_t> a, const std::vector<std::int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

int run(const Options& opt) {
  examples::set_threads(opt.threads);
  const nexa_moe::Checkpoint ckpt = nexa_moe::Checkpoint::open(opt.checkpoint);
  const auto& domains = ckpt.domains;
  const int forced = opt.domain ? ckpt.domain_index("--domain", *opt.domain) : -1;
  const nexa::WordPieceTokenizer wordpiece = ckpt.classifier_vocab();
  const lm_data::Vocab vocab = lm_data::Vocab::load(ckpt.dir / "vocab.txt", wordpiece);
  nexa::require(vocab.size() == ckpt.lm.vocab, "checkpoint", "vocab.txt holds ", vocab.size(),
                " tokens, config.json says ", ckpt.lm.vocab);

  nexa_moe::NexaMoeLM fp32 = ckpt.model();
  std::optional<nexa_moe::NexaMoeLM> int8;
  std::string int8_summary;
  if (opt.int8) {
    const fs::path int8_path = ckpt.dir / "nexa_moe.int8.safetensors";
    const nexa::generate::Int8ExportReport report = nexa::generate::save_int8_checkpoint(fp32, int8_path);
    int8.emplace(ckpt.model());  // its weights are then replaced by the int8 file's
    nexa::generate::load_int8_checkpoint(*int8, int8_path);
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "int8 export: %s, %.1f MB against %.1f MB in fp32 (%.3fx); %lld of %lld parameters in int8, "
                  "weights' relative error %.4f",
                  int8_path.string().c_str(), static_cast<double>(report.export_bytes) / 1e6,
                  static_cast<double>(report.fp32_bytes) / 1e6, report.ratio(),
                  static_cast<long long>(report.quantized_parameters), static_cast<long long>(report.parameters),
                  report.weight_rel_error());
    int8_summary = buf;
  }
  nexa_moe::NexaMoeLM& model = int8 ? *int8 : fp32;

  // Prompts.
  examples::InputLines input(opt.input);
  std::vector<Prompt> prompts;
  const std::size_t malformed =
      examples::for_each_text_line(input.stream(), kProgram, [&](const examples::TextLine& line, const auto&) {
        prompts.push_back({line.number, line.text});
      });

  nexa_generate::Options gen;
  gen.sampling = {.temperature = opt.temperature, .top_k = opt.top_k, .top_p = opt.top_p, .greedy = opt.greedy};
  gen.max_new_tokens = opt.max_new;
  gen.seed = opt.seed;
  std::size_t generated = 0;
  double seconds = 0;
  for (std::size_t start = 0; start < prompts.size(); start += opt.batch) {
    const std::size_t end = std::min(prompts.size(), start + opt.batch);
    std::vector<std::string> texts;
    std::vector<std::uint64_t> row_ids;
    for (std::size_t i = start; i < end; ++i) texts.push_back(prompts[i].text), row_ids.push_back(prompts[i].line);
    const auto t0 = Clock::now();
    // Route: the classifier once for the batch (with the override when given).
    nexa::SequenceBatch route = nexa_moe::classifier_batch(wordpiece, texts, ckpt.classifier_max_len);
    if (forced >= 0) route.domain_override.assign(texts.size(), forced);
    const auto& routing = model.router->classify(route);
    std::vector<std::vector<std::int32_t>> ids;
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const std::int32_t domain = routing.experts.data()[i];
      std::vector<std::int32_t> p{lm_data::kBos};
      if (!opt.no_tag) p.push_back(lm_data::tag_id(domain));
      for (const std::int32_t t : vocab.encode(texts[i])) p.push_back(t);
      ids.push_back(std::move(p));
    }
    const std::vector<nexa_generate::Generation> out = nexa_generate::generate(model, ids, row_ids, gen);
    seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const Prompt& p = prompts[start + i];
      const std::int32_t domain = routing.experts.data()[i];
      generated += out[i].tokens.size();
      std::cout << "{\"line\": " << p.line
                << ", \"domain\": " << nexa::json::quote(domains[static_cast<std::size_t>(domain)])
                << ", \"probs\": " << nexa_moe::probs_json(routing, static_cast<index_t>(i))
                << (forced >= 0 ? ", \"overridden\": true" : "") << ", \"prompt\": " << nexa::json::quote(p.text)
                << ", \"continuation\": " << nexa::json::quote(vocab.decode(out[i].tokens))
                << ", \"text\": " << nexa::json::quote(vocab.decode(joined(ids[i], out[i].tokens)))
                << ", \"tokens\": " << out[i].tokens.size()
                << ", \"finished\": " << (out[i].finished ? "true" : "false") << "}\n";
    }
    std::cout.flush();
  }

  std::fprintf(
      stderr, "%s: %zu prompts, %zu tokens generated in %.2f s: %.1f tokens/s (%s weights, batch %zu, %d threads)\n",
      kProgram, prompts.size(), generated, seconds, seconds > 0 ? static_cast<double>(generated) / seconds : 0.0,
      opt.int8 ? "int8" : "fp32", opt.batch, examples::threads_in_use());
  if (!int8_summary.empty()) std::fprintf(stderr, "%s: %s\n", kProgram, int8_summary.c_str());
  if (opt.eval_file) {
    std::vector<lm_data::Sample> samples = nexa_moe::routed_samples(*opt.eval_file);
    if (samples.size() > opt.eval_limit) samples.resize(opt.eval_limit);
    const double fp32_loss = eval_loss(fp32, vocab, wordpiece, samples, ckpt.classifier_max_len);
    std::fprintf(stderr, "%s: validation loss on %zu definitions of %s: fp32 %.4f (perplexity %.2f)", kProgram,
                 samples.size(), opt.eval_file->string().c_str(), fp32_loss, std::exp(fp32_loss));
    if (int8) {
      const double int8_loss = eval_loss(*int8, vocab, wordpiece, samples, ckpt.classifier_max_len);
      std::fprintf(stderr, ", int8 %.4f (perplexity %.2f, %+.2f%%)", int8_loss, std::exp(int8_loss),
                   100.0 * (std::exp(int8_loss) / std::exp(fp32_loss) - 1.0));
    }
    std::fprintf(stderr, "\n");
  }
  return malformed > 0 ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  cli::Parser p(kProgram, kUsage);
  p.value("--checkpoint", opt.checkpoint);
  p.value("--input", opt.input);
  p.value("--domain", opt.domain);
  p.value("--eval-file", opt.eval_file);
  p.number("--eval-limit", opt.eval_limit, {.min = 1});
  p.flag("--int8", opt.int8);
  p.flag("--greedy", opt.greedy);
  p.flag("--no-tag", opt.no_tag);
  p.number("--max-new", opt.max_new, {.min = 1});
  p.number("--temperature", opt.temperature);
  p.number("--top-k", opt.top_k, {.min = 0});
  p.number("--top-p", opt.top_p);
  p.number("--batch", opt.batch, {.min = 1});
  p.number("--seed", opt.seed);
  p.number("--threads", opt.threads, {.min = 0});
  p.required("--checkpoint", "--checkpoint DIR is required");
  return p.run(argc, argv, [&] { return run(opt); });
}
