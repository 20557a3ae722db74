// nexa-route: the routing CLI of issue 7. Loads the BERT domain router of a nexa-moe checkpoint
// and routes definitions to the domain experts.
//
//   nexa-route --checkpoint DIR [--input FILE] [--domain TAG] [--eval] [--output FILE]
//
// Input: JSON lines {"text": "..."} (standard input when no --input). Output: one JSON line per
// input, {"line": N, "domain": "BIO", "probs": [p_PHYS, p_BIO, p_MAT]} plus "overridden": true
// when --domain forces the domain (NEXA-MOE's tag override: the probabilities are still the
// classifier's), and "label" with --eval. A malformed line (not JSON, no string "text", an
// unknown "domain") is reported on standard error with its line number and skipped; the rest
// are routed, and the exit code is then 2.
// --eval: the lines must carry "domain" too; prints accuracy, per-domain accuracy and the
// confusion matrix (the JSON lines go to --output only, when given).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "../common/confusion.hpp"
#include "../common/jsonl_input.hpp"
#include "../common/threads.hpp"
#include "../nexa_moe/checkpoint.hpp"
#include "../nexa_moe/data.hpp"

namespace {

namespace fs = std::filesystem;
using nexa::index_t;
constexpr const char* kProgram = "nexa-route";

constexpr const char* kUsage =
    "usage: nexa-route --checkpoint DIR [--input FILE] [--domain TAG] [--eval] [--output FILE]\n"
    "Routes JSON lines {\"text\": ...} (standard input without --input) to the domain experts of a\n"
    "nexa-moe checkpoint and writes one JSON line per input: {\"line\", \"domain\", \"probs\"}.\n"
    "  --checkpoint DIR  a nexa-moe checkpoint (nexa-moe --out DIR writes DIR/checkpoint)\n"
    "  --domain TAG      route every line to TAG (PHYS, BIO or MAT; [PHYS] also accepted)\n"
    "  --eval            lines carry \"domain\": print accuracy, per-domain accuracy, confusion matrix\n"
    "  --output FILE     the JSON lines (default: standard output; with --eval, none unless given)\n"
    "  --batch N         definitions per classifier batch [32]\n"
    "  --threads N       CPU threads (0: all cores) [0]\n";

struct Options {
  fs::path checkpoint;
  std::optional<fs::path> input, output;
  std::optional<std::string> domain;
  bool eval = false;
  std::size_t batch = 32;
  int threads = 0;
};

struct Item {
  std::size_t line = 0;
  std::string text;
  int label = -1;
};

int run(const Options& opt) {
  examples::set_threads(opt.threads);
  const nexa_moe::Checkpoint ckpt = nexa_moe::Checkpoint::open(opt.checkpoint);
  const auto& domains = ckpt.domains;
  const int forced = opt.domain ? ckpt.domain_index("--domain", *opt.domain) : -1;
  nexa_moe::DomainRouter router = ckpt.router();
  const nexa::WordPieceTokenizer wordpiece = ckpt.classifier_vocab();

  examples::InputLines input(opt.input);
  std::ofstream out_file;
  if (opt.output) {
    out_file.open(*opt.output);
    nexa::require(out_file.is_open(), "--output", "cannot write ", opt.output->string());
  }
  std::ostream* out = opt.output ? &out_file : (opt.eval ? nullptr : &std::cout);

  examples::Confusion confusion(domains);
  std::size_t routed = 0;
  std::vector<Item> pending;
  const auto flush = [&] {
    if (pending.empty()) return;
    std::vector<std::string> texts;
    for (const Item& it : pending) texts.push_back(it.text);
    nexa::SequenceBatch batch = nexa_moe::classifier_batch(wordpiece, texts, ckpt.classifier_max_len);
    if (forced >= 0) batch.domain_override.assign(texts.size(), forced);
    const auto& routing = router.classify(batch);  // probabilities stay the classifier's under an override
    for (std::size_t b = 0; b < pending.size(); ++b) {
      const int chosen = routing.experts.data()[b];
      const Item& it = pending[b];
      if (it.label >= 0) confusion.add(static_cast<std::size_t>(it.label), static_cast<std::size_t>(chosen));
      ++routed;
      if (!out) continue;
      std::string line =
          nexa::detail::concat("{\"line\": ", it.line, ", \"domain\": \"", domains[static_cast<std::size_t>(chosen)],
                               "\", \"probs\": ", nexa_moe::probs_json(routing, static_cast<index_t>(b)));
      if (forced >= 0) line += ", \"overridden\": true";
      if (it.label >= 0)
        line += nexa::detail::concat(", \"label\": \"", domains[static_cast<std::size_t>(it.label)], "\"");
      *out << line << "}\n";
    }
    pending.clear();
  };

  const std::size_t malformed =
      examples::for_each_text_line(input.stream(), kProgram, [&](const examples::TextLine& line, const auto& object) {
        Item it{line.number, line.text, -1};
        if (opt.eval) {
          const nexa::json::Value* d = object.find("domain");
          nexa::require(d && d->is_string(), line.where, "--eval needs a string \"domain\" on every line");
          it.label = ckpt.domain_index(line.where, d->string);
        }
        pending.push_back(std::move(it));
        if (pending.size() == opt.batch) flush();
      });
  flush();
  if (out) out->flush();

  if (opt.eval) {
    std::printf("routed %zu definitions%s: accuracy %.4f\n", routed, forced >= 0 ? " (domain overridden)" : "",
                confusion.accuracy());
    for (std::size_t d = 0; d < domains.size(); ++d)
      std::printf("  %-5s accuracy %.4f (%zu definitions)\n", domains[d].c_str(), confusion.class_accuracy(d),
                  confusion.support(d));
    std::printf("  macro-averaged accuracy %.4f\n%s", confusion.macro_accuracy(),
                confusion.table("confusion (rows: true domain, columns: routed to)").c_str());
  }
  return malformed > 0 ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  cli::Parser p(kProgram, kUsage);
  p.value("--checkpoint", opt.checkpoint);
  p.value("--input", opt.input);
  p.value("--output", opt.output);
  p.value("--domain", opt.domain);
  p.flag("--eval", opt.eval);
  p.number("--batch", opt.batch, {.min = 1});
  p.number("--threads", opt.threads, {.min = 0});
  p.required("--checkpoint", "--checkpoint DIR is required");
  return p.run(argc, argv, [&] { return run(opt); });
}
