// nexa-moe: the NEXA-MOE demo trainer (issue 7). On the GCIDE domain corpus (nexa-gcide-corpus),
// it trains, in one run and on the same batches:
//   nexa-moe   a small T5-style LM whose FFNs are three domain experts (PHYS, BIO, MAT), routed per
//              definition by a BERT classifier initialised from all-MiniLM-L6-v2 and fine-tuned
//              jointly (its top layer and head), supervised by the domain labels;
//   token-moe  the same LM with a plain token-level top-1 router (Switch load balancing);
//   dense      the same LM with one FFN of the experts' size (the same active parameters per token).
// It prints a progress line, writes a JSON-lines log (train.jsonl), a plot (curves.svg: loss per
// model, expert load over time) and checkpoints (checkpoint/), and ends with a table: per-domain
// validation loss and perplexity, routing accuracy and entropy, expert load, tokens per second.
//
//   nexa-moe --corpus DIR [--minilm DIR] [--out DIR] [--steps N] [--threads N] ...   (--help lists all)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "../common/files.hpp"
#include "../common/threads.hpp"
#include "checkpoint.hpp"
#include "data.hpp"
#include "lm.hpp"
#include "nexa/train/train.hpp"
#include "report.hpp"

namespace {

namespace fs = std::filesystem;
using nexa::index_t;
using nexa_moe::kRoutedDomains;
using nexa_moe::token_batch;
using namespace nexa_moe::report;
using Clock = std::chrono::steady_clock;

constexpr const char* kProgram = "nexa-moe";

fs::path default_minilm() {
  if (const char* env = std::getenv("NEXA_MINILM_DIR"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : ".") / ".cache/nexa/all-MiniLM-L6-v2";
}

struct Options {
  fs::path corpus = "gcide_corpus";
  fs::path minilm = default_minilm();
  fs::path out = "nexa_moe_run";
  index_t steps = 400;
  index_t batch = 32;
  std::size_t max_len = 64;         // LM ids per sequence
  std::size_t classifier_len = 48;  // classifier WordPiece ids per definition
  std::size_t min_count = 2;        // vocabulary: WordPiece tokens seen at least this often
  nexa_moe::LMConfig lm;
  double lr = 2e-3, router_lr = 3e-4, supervised = 1.0, tag_dropout = 0.5, clip = 1.0;
  index_t warmup = 40;
  index_t log_every = 10;
  index_t eval_every = 100;
  std::size_t eval_sequences = 64;   // per domain, for the curves during training
  std::size_t valid_limit = 400;     // per domain, for the final table (0: all)
  std::string router_scope = "top";  // head, top or full
  int threads = 0;
  std::uint64_t seed = 1;
};

constexpr const char* kUsage =
    "usage: nexa-moe [--corpus DIR] [--minilm DIR] [--out DIR] [--steps N] [--threads N] [options]\n"
    "Trains NEXA-MOE (a BERT domain router over three T5-FFN experts), a token-level top-1 MoE and a\n"
    "dense LM on the GCIDE domain corpus, on the same batches, and compares them.\n"
    "  --corpus DIR        nexa-gcide-corpus output (train.jsonl, valid.jsonl)   [gcide_corpus]\n"
    "  --minilm DIR        all-MiniLM-L6-v2 (config.json, vocab.txt, model.safetensors)\n"
    "                      [$NEXA_MINILM_DIR or ~/.cache/nexa/all-MiniLM-L6-v2]\n"
    "  --out DIR           train.jsonl, curves.svg, summary.json, checkpoint/    [nexa_moe_run]\n"
    "  --steps N           optimizer steps per model                              [400]\n"
    "  --batch N           definitions per batch                                  [32]\n"
    "  --threads N         CPU threads (0: all cores)                             [0]\n"
    "  --d-model N --layers N --heads N --d-ff N    LM sizes                     [256 3 4 768]\n"
    "  --lr X --router-lr X  AdamW learning rates: LMs, the BERT router           [2e-3 3e-4]\n"
    "  --router-scope S    what of the router trains: head, top (last layer, pooler, head) or full [top]\n"
    "  --supervised X      weight of the router's cross-entropy on domain labels  [1]\n"
    "  --tag-dropout X     share of training definitions without their [TAG]      [0.5]\n"
    "  --log-every N --eval-every N   progress line and validation-curve period  [10 100]\n"
    "  --valid-limit N     definitions per domain in the final evaluation (0: all) [400]\n"
    "  --seed N                                                                    [1]\n";

template <class Model>
index_t count_params(Model& m, bool trainable_only = false) {
  index_t n = 0;
  m.visit_params([&](const std::string&, auto& p) { n += (!trainable_only || p.trainable) ? p.value.numel() : 0; });
  return n;
}

void set_router_scope(nexa_moe::DomainRouter& router, const std::string& scope) {
  const index_t layers = router.classifier.config().layers;
  const std::string top = nexa::detail::concat("encoder.layer.", layers - 1, ".");
  router.classifier.visit_params([&](const std::string& name, auto& p) {
    const bool head = name.rfind("classifier.", 0) == 0;
    const bool upper = head || name.rfind("pooler.", 0) == 0 || name.rfind(top, 0) == 0;
    p.set_trainable(scope == "full" || (scope == "top" && upper) || (scope == "head" && head));
  });
}

// One forward (and, when training, backward) of any of the three models; the routing goes to
// `load` and, for NEXA-MOE, the classifier's choices to `route`.
template <class Model>
nexa_moe::StepLoss run_model(Model& model, const lm_data::Batch& b, const nexa::SequenceBatch& route_batch, bool train,
                             LoadCounter& load, RouterScore& route) {
  const auto on_layer = [&](std::size_t, auto& cache) { load.add(cache, b); };
  if constexpr (std::same_as<Model, nexa_moe::NexaMoeLM>) {
    const auto l = model.step(route_batch, token_batch(b), train, on_layer);
    route.add(model.router->sequence_routing(), b.domains);
    return l;
  } else {
    return model.step(token_batch(b), train, on_layer);
  }
}

// The three models and their optimizers, visited in one order.
struct Models {
  nexa_moe::DenseLM dense;
  nexa_moe::TokenMoELM token;
  nexa_moe::NexaMoeLM nexa;
  template <class F>
  void each(F&& f) {
    f(std::size_t{0}, dense);
    f(std::size_t{1}, token);
    f(std::size_t{2}, nexa);
  }
};

int run(const Options& opt) {
  examples::set_threads(opt.threads);
  nexa::require(opt.router_scope == "head" || opt.router_scope == "top" || opt.router_scope == "full", "--router-scope",
                "expected head, top or full, got '", opt.router_scope, "'");
  const auto start = Clock::now();
  const auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };

  // Data.
  const std::vector<lm_data::Sample> train = nexa_moe::routed_samples(opt.corpus / "train.jsonl");
  const std::vector<lm_data::Sample> valid = nexa_moe::routed_samples(opt.corpus / "valid.jsonl");
  nexa::require(!train.empty() && !valid.empty(), "--corpus", opt.corpus.string(),
                ": no PHYS, BIO or MAT definitions in train.jsonl or valid.jsonl");
  const auto wordpiece = nexa::WordPieceTokenizer::from_vocab_file(opt.minilm / "vocab.txt");
  const lm_data::Vocab vocab = lm_data::Vocab::build(wordpiece, train, {.min_count = opt.min_count});
  const lm_data::Batcher batcher(nexa_moe::training_sequences(vocab, train, opt.max_len, opt.tag_dropout, opt.seed),
                                 {.batch_size = static_cast<std::size_t>(opt.batch), .seed = opt.seed, .bucket = 8});
  // Validation: per domain, untagged, in file order.
  std::vector<std::vector<lm_data::Sample>> valid_by_domain(kRoutedDomains);
  for (const auto& s : valid) {
    auto& v = valid_by_domain[static_cast<std::size_t>(s.domain)];
    if (opt.valid_limit == 0 || v.size() < opt.valid_limit) v.push_back(s);
  }
  std::vector<lm_data::Batcher> valid_batches;
  for (const auto& v : valid_by_domain)
    valid_batches.emplace_back(lm_data::make_sequences(vocab, v, {.max_len = opt.max_len, .with_tag = false}),
                               lm_data::BatchOptions{.batch_size = 64, .shuffle = false});
  std::vector<std::size_t> per_domain(kRoutedDomains, 0);
  for (const auto& s : train) ++per_domain[static_cast<std::size_t>(s.domain)];
  std::printf("%s: %zu training definitions (PHYS %zu, BIO %zu, MAT %zu), %zu validation; vocabulary %d; %d threads\n",
              kProgram, train.size(), per_domain[0], per_domain[1], per_domain[2], valid.size(), vocab.size(),
              examples::threads_in_use());

  // Models: the same sizes, and every expert the dense FFN's size.
  nexa_moe::LMConfig lmc = opt.lm;
  lmc.vocab = vocab.size();
  lmc.experts = kRoutedDomains;
  nexa::Rng rng_dense(opt.seed), rng_token(opt.seed + 1), rng_nexa(opt.seed + 2);
  nexa::BertConfig bert_config = nexa::BertConfig::from_json(opt.minilm / "config.json");
  bert_config.num_labels = kRoutedDomains;
  nexa::BertModel<> bert(bert_config, rng_nexa);
  (void)nexa::load_bert(bert, opt.minilm);
  Models models{nexa_moe::DenseLM(lmc, nexa_moe::dense_ffn(lmc), rng_dense),
                nexa_moe::TokenMoELM(lmc, nexa_moe::moe_ffn(lmc), rng_token),
                nexa_moe::NexaMoeLM(lmc, std::move(bert), opt.supervised, rng_nexa)};
  set_router_scope(*models.nexa.router, opt.router_scope);

  const nexa::train::AdamWConfig adamw{
      .lr = opt.lr, .weight_decay = 0.01, .no_weight_decay = nexa::train::no_decay_norms_and_biases};
  auto router_adamw = adamw;
  router_adamw.lr = opt.router_lr;
  auto& nexa_lm = static_cast<nexa_moe::DecoderLM<nexa_moe::NexaMoeFFN>&>(models.nexa);
  std::vector<nexa::train::AdamW> optimizers;
  optimizers.reserve(4);
  optimizers.emplace_back(models.dense, adamw);
  optimizers.emplace_back(models.token, adamw);
  optimizers.emplace_back(nexa_lm, adamw);
  optimizers.emplace_back(*models.nexa.router, router_adamw);
  const nexa::train::CosineSchedule schedule{
      .peak_lr = 1.0, .min_lr = 0.1, .warmup_steps = std::min(opt.warmup, opt.steps), .total_steps = opt.steps};

  std::vector<Record> records(3);
  records[0].name = "dense";
  records[1].name = "token-moe";
  records[2].name = "nexa-moe";
  records[1].moe = records[2].moe = records[2].routed_by_sequence = true;
  models.each([&](std::size_t i, auto& m) {
    records[i].params = count_params(m);
    records[i].trainable = count_params(m, true);
  });
  // Active per token: everything but the unchosen experts (and, for NEXA-MOE, the router, which
  // runs once per definition, not per token).
  const index_t expert_params = 2 * lmc.d_model * lmc.d_ff * lmc.layers;
  records[0].active_params = records[0].params;
  records[1].active_params = records[1].params - (kRoutedDomains - 1) * expert_params;
  records[2].active_params = count_params(nexa_lm) - (kRoutedDomains - 1) * expert_params;
  for (const Record& r : records)
    std::printf("  %-9s %6.2fM parameters, %5.2fM active per token, %6.2fM trained\n", r.name.c_str(),
                static_cast<double>(r.params) * 1e-6, static_cast<double>(r.active_params) * 1e-6,
                static_cast<double>(r.trainable) * 1e-6);

  std::string log;  // train.jsonl, rewritten whole at every progress line
  const fs::path log_path = opt.out / "train.jsonl";
  log += nexa::detail::concat("{\"event\": \"config\", \"steps\": ", opt.steps, ", \"batch\": ", opt.batch,
                              ", \"lm\": ", nexa_moe::lm_config_json(lmc), ", \"lr\": ", opt.lr,
                              ", \"router_lr\": ", opt.router_lr, ", \"router_scope\": \"", opt.router_scope,
                              "\", \"supervised\": ", opt.supervised, ", \"tag_dropout\": ", opt.tag_dropout,
                              ", \"threads\": ", examples::threads_in_use(), ", \"seed\": ", opt.seed, "}\n");

  const auto evaluate = [&](auto& model, std::size_t per_domain_limit) {
    Evaluation ev;
    const auto t0 = Clock::now();
    model.set_training(false);
    if constexpr (std::same_as<std::decay_t<decltype(model)>, nexa_moe::NexaMoeLM>)
      model.router->classifier.set_training(false);
    for (std::int32_t d = 0; d < kRoutedDomains; ++d) {
      const lm_data::Batcher& vb = valid_batches[static_cast<std::size_t>(d)];
      std::size_t seen = 0;
      for (const auto& indices : vb.epoch(0)) {
        if (per_domain_limit > 0 && seen >= per_domain_limit) break;
        const std::size_t n = per_domain_limit > 0 ? std::min(indices.size(), per_domain_limit - seen) : indices.size();
        const std::span<const std::size_t> take(indices.data(), n);
        seen += n;
        const lm_data::Batch b = vb.batch(take);
        const nexa::SequenceBatch rb = nexa_moe::classifier_batch(
            wordpiece, valid_by_domain[static_cast<std::size_t>(d)], take, opt.classifier_len, false);
        ev.loss.add(d, run_model(model, b, rb, false, ev.load, ev.route));
      }
    }
    model.set_training(true);
    if constexpr (std::same_as<std::decay_t<decltype(model)>, nexa_moe::NexaMoeLM>)
      model.router->classifier.set_training(true);
    ev.seconds = since(t0);
    return ev;
  };

  std::printf("training %lld steps of %lld definitions per model; the progress line every %lld steps\n",
              static_cast<long long>(opt.steps), static_cast<long long>(opt.batch),
              static_cast<long long>(opt.log_every));
  const auto train_start = Clock::now();
  double eval_seconds = 0;
  index_t evals_done = 0;
  std::size_t final_definitions = 0;
  for (const auto& v : valid_by_domain) final_definitions += v.size();
  std::uint64_t epoch = 0;
  std::vector<std::vector<std::size_t>> order = batcher.epoch(epoch);
  std::size_t next = 0;
  for (index_t step = 1; step <= opt.steps; ++step) {
    if (next == order.size()) order = batcher.epoch(++epoch), next = 0;
    const std::vector<std::size_t>& indices = order[next++];
    const lm_data::Batch b = batcher.batch(indices);
    const nexa::SequenceBatch rb = nexa_moe::classifier_batch(wordpiece, train, indices, opt.classifier_len, true);
    const double lr_scale = schedule(step - 1);
    models.each([&](std::size_t i, auto& model) {
      Record& r = records[i];
      const auto t0 = Clock::now();
      const nexa_moe::StepLoss l = run_model(model, b, rb, true, r.load, r.route);
      if constexpr (std::same_as<std::decay_t<decltype(model)>, nexa_moe::NexaMoeLM>) {
        (void)nexa::train::clip_grad_norm(nexa_lm, opt.clip);
        (void)nexa::train::clip_grad_norm(*model.router, opt.clip);
        for (std::size_t o : {std::size_t{2}, std::size_t{3}}) {
          optimizers[o].set_lr((o == 2 ? opt.lr : opt.router_lr) * lr_scale);
          optimizers[o].step();
          optimizers[o].zero_grad();
        }
      } else {
        (void)nexa::train::clip_grad_norm(model, opt.clip);
        optimizers[i].set_lr(opt.lr * lr_scale);
        optimizers[i].step();
        optimizers[i].zero_grad();
      }
      r.seconds += since(t0);
      r.tokens += static_cast<double>(b.tokens);
      r.last_loss = l.lm;
      r.loss_ema = std::isnan(r.loss_ema) ? l.lm : 0.9 * r.loss_ema + 0.1 * l.lm;
      r.curve.emplace_back(static_cast<double>(step), l.lm);
    });

    if (step % opt.eval_every == 0 && step < opt.steps) {
      const auto t0 = Clock::now();
      models.each([&](std::size_t i, auto& model) {
        const Evaluation ev = evaluate(model, opt.eval_sequences);
        records[i].valid_curve.emplace_back(static_cast<double>(step), ev.loss.overall());
        log += nexa::detail::concat("{\"event\": \"valid\", \"step\": ", step, ", \"model\": \"", records[i].name,
                                    "\", \"loss\": ", fmt("%.5f", ev.loss.overall()),
                                    ", \"definitions_per_domain\": ", opt.eval_sequences, "}\n");
      });
      eval_seconds += since(t0);
      ++evals_done;
    }

    if (step % opt.log_every == 0 || step == opt.steps) {
      const double elapsed = since(train_start);
      // Training left, plus the evaluations still to come at the pace of those done so far.
      const double per_eval_definition =
          evals_done > 0 ? eval_seconds / static_cast<double>(evals_done * kRoutedDomains * opt.eval_sequences) : 0.0;
      const double evals_left = static_cast<double>((opt.steps - 1) / opt.eval_every - evals_done);
      const double left = (elapsed - eval_seconds) / static_cast<double>(step) * static_cast<double>(opt.steps - step) +
                          per_eval_definition * (evals_left * kRoutedDomains * static_cast<double>(opt.eval_sequences) +
                                                 static_cast<double>(final_definitions));
      double tokens = 0, seconds = 0;
      std::string losses;
      for (Record& r : records) {
        tokens += r.tokens;
        seconds += r.seconds;
        losses += nexa::detail::concat(" ", r.name, " ", fmt("%.3f", r.loss_ema));
        std::string extra;
        if (r.moe) {
          const std::vector<double> share = r.load.expert_shares();
          for (std::size_t e = 0; e < share.size(); ++e)
            r.load_curve[e].emplace_back(static_cast<double>(step), share[e]);
          extra += ", \"expert_load\": " + json_array(share);
        }
        if (r.routed_by_sequence)
          extra += nexa::detail::concat(", \"routing_accuracy\": ", fmt("%.4f", r.route.accuracy()),
                                        ", \"routing_entropy\": ", fmt("%.4f", r.route.mean_entropy()));
        log += nexa::detail::concat("{\"event\": \"train\", \"step\": ", step, ", \"model\": \"", r.name,
                                    "\", \"loss\": ", fmt("%.5f", r.last_loss),
                                    ", \"loss_ema\": ", fmt("%.5f", r.loss_ema),
                                    ", \"lr\": ", fmt("%.3g", opt.lr * lr_scale),
                                    ", \"tokens_per_s\": ", fmt("%.1f", r.tokens / r.seconds), extra, "}\n");
      }
      std::printf("step %5lld/%lld |%s | route acc %.3f | %.0f tok/s | %s elapsed, %s left\n",
                  static_cast<long long>(step), static_cast<long long>(opt.steps), losses.c_str(),
                  records[2].route.accuracy(), tokens / seconds, duration(elapsed).c_str(), duration(left).c_str());
      std::fflush(stdout);
      for (Record& r : records) r.load.clear(), r.route = {};
      examples::write_file(log_path, log, kProgram);
    }
  }

  // Final evaluation on the validation split.
  std::printf("evaluating on the validation split (%zu PHYS, %zu BIO, %zu MAT definitions, untagged)...\n",
              valid_by_domain[0].size(), valid_by_domain[1].size(), valid_by_domain[2].size());
  std::fflush(stdout);
  models.each([&](std::size_t i, auto& model) {
    records[i].final_eval = evaluate(model, 0);
    records[i].valid_curve.emplace_back(static_cast<double>(opt.steps), records[i].final_eval.loss.overall());
  });

  print_summary(records);

  // Log, plot, checkpoint.
  log += final_log_lines(records);
  examples::write_file(log_path, log, kProgram);

  examples::write_file(opt.out / "curves.svg", render_curves(records), kProgram);

  const fs::path ckpt = opt.out / "checkpoint";
  nexa_moe::write_checkpoint_config(ckpt, lmc, kDomainNames, opt.minilm, vocab, opt.classifier_len);
  nexa::save_safetensors(models.dense, ckpt / "dense.safetensors");
  nexa::save_safetensors(models.token, ckpt / "token_moe.safetensors");
  nexa::save_safetensors(models.nexa, ckpt / "nexa_moe.safetensors");
  std::printf("\nwrote %s (log), %s (plot), %s/ (checkpoint) in %s\n", log_path.string().c_str(),
              (opt.out / "curves.svg").string().c_str(), ckpt.string().c_str(), duration(since(start)).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  cli::Parser p(kProgram, kUsage);
  p.value("--corpus", opt.corpus);
  p.value("--minilm", opt.minilm);
  p.value("--out", opt.out);
  p.number("--steps", opt.steps, {.min = 1});
  p.number("--batch", opt.batch, {.min = 1});
  p.number("--threads", opt.threads, {.min = 0});
  p.number("--d-model", opt.lm.d_model, {.min = 8});
  p.number("--layers", opt.lm.layers, {.min = 1});
  p.number("--heads", opt.lm.heads, {.min = 1});
  p.number("--d-ff", opt.lm.d_ff, {.min = 1});
  p.number("--lr", opt.lr, {.min = 0});
  p.number("--router-lr", opt.router_lr, {.min = 0});
  p.value("--router-scope", opt.router_scope);
  p.number("--supervised", opt.supervised, {.min = 0});
  p.number("--tag-dropout", opt.tag_dropout, {.min = 0, .max = 1});
  p.number("--log-every", opt.log_every, {.min = 1});
  p.number("--eval-every", opt.eval_every, {.min = 1});
  p.number("--valid-limit", opt.valid_limit);
  p.number("--seed", opt.seed);
  return p.run(argc, argv, [&] { return run(opt); });
}
