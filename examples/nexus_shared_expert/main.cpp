// nexus-shared-expert: NEXUS's shared expert on the trained NEXA-MOE model (issue 7). It loads a
// nexa-moe checkpoint, quantises the routed experts to NF4, freezes everything (the LM, the
// experts, the BERT router), adds a shared expert to every MoE layer (out = routed + 0.2 *
// shared) and trains only the shared experts on the GCIDE training corpus, once per
// initialisation (PCA-guided, most activated, random; top<m> on request), from the same seed on
// the same batches. It prints a progress line, ends with a table of per-domain validation loss and
// perplexity before and after training for each initialisation (and for the frozen MoE without a
// shared expert, fp32 and NF4), the trainable fraction and the memory of gradients plus AdamW
// state, and writes a JSON-lines log, an SVG plot and the trained shared experts (safetensors and
// a JSON config).
//
//   nexus-shared-expert --checkpoint DIR --corpus DIR [--out DIR] [--steps N] [--inits pca,most,random]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "../common/files.hpp"
#include "../common/svg_plot.hpp"
#include "../common/threads.hpp"
#include "../nexa_moe/checkpoint.hpp"
#include "../nexa_moe/data.hpp"
#include "../nexa_moe/report.hpp"
#include "frozen_lm.hpp"
#include "nexa/train/train.hpp"
#include "route_table.hpp"

namespace {

namespace fs = std::filesystem;
using nexa::index_t;
using nexa_moe::kRoutedDomains;
using nexa_moe::report::DomainLoss;
using nexa_moe::report::duration;
using nexa_moe::report::fmt;
using nexa_moe::report::json_array;
using nexa_moe::report::kDomainNames;
using nexus_shared::DenseExpert;
using nexus_shared::NF4Expert;
using Clock = std::chrono::steady_clock;

constexpr const char* kProgram = "nexus-shared-expert";

struct Options {
  fs::path checkpoint = "nexa_moe_run/checkpoint";
  fs::path corpus = "gcide_corpus";
  fs::path out = "nexus_shared_run";
  index_t steps = 150;
  index_t batch = 32;
  std::size_t max_len = 64;
  double lr = 5e-3, scale = 0.2, tag_dropout = 0.5, clip = 1.0, weight_decay = 0.01;
  index_t warmup = 15;
  std::string inits = "pca,most,random";
  index_t log_every = 10;
  std::size_t valid_limit = 200;
  index_t pca_components = 20, pca_select = 24;
  bool skip_fp32 = false;
  int threads = 0;
  std::uint64_t seed = 1;
};

constexpr const char* kUsage =
    "usage: nexus-shared-expert [--checkpoint DIR] [--corpus DIR] [--out DIR] [--steps N] [options]\n"
    "Freezes a trained NEXA-MOE model (nexa-moe's checkpoint) with its routed experts quantised to NF4,\n"
    "adds a NEXUS shared expert to every MoE layer (out = routed + scale * shared) and trains only the\n"
    "shared experts, once per initialisation, on the same batches; compares their validation loss.\n"
    "  --checkpoint DIR    a nexa-moe checkpoint (config.json, nexa_moe.safetensors, ...) [nexa_moe_run/checkpoint]\n"
    "  --corpus DIR        nexa-gcide-corpus output (train.jsonl, valid.jsonl)      [gcide_corpus]\n"
    "  --out DIR           train.jsonl, curves.svg, shared_experts/                  [nexus_shared_run]\n"
    "  --inits LIST        comma-separated: pca, most, random, top<m> (mean of the m most activated)\n"
    "                                                                                [pca,most,random]\n"
    "  --steps N           optimizer steps per initialisation                       [150]\n"
    "  --batch N           definitions per batch                                    [32]\n"
    "  --lr X              AdamW peak learning rate (cosine to a tenth)             [5e-3]\n"
    "  --warmup N          warm-up steps                                            [15]\n"
    "  --weight-decay X    AdamW weight decay                                       [0.01]\n"
    "  --scale X           the shared expert's fixed scale                          [0.2]\n"
    "  --tag-dropout X     share of training definitions without their [TAG]        [0.5]\n"
    "  --valid-limit N     validation definitions per domain (0: all)               [200]\n"
    "  --pca-components N --pca-select K   PCA: components kept, experts averaged   [20 24]\n"
    "  --skip-fp32         do not evaluate the fp32 experts (the NF4 reference row)\n"
    "  --log-every N       progress line period                                     [10]\n"
    "  --threads N         CPU threads (0: all cores)                               [0]\n"
    "  --seed N            batches and the random initialisation                    [1]\n";

using nexa_moe::token_batch;

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// One row of the final table.
struct Row {
  std::string model;
  std::string step;
  DomainLoss loss;
};

struct InitRun {
  nexus_shared::InitResult init;
  DomainLoss before, after;
  std::vector<std::pair<double, double>> curve;  // (step, training loss - the frozen MoE's on that batch)
  double seconds = 0, tokens = 0;
  fs::path file;
};

std::string loss_json(const DomainLoss& l) {
  std::vector<double> v;
  for (std::size_t d = 0; d < kRoutedDomains; ++d) v.push_back(l.mean(d));
  return nexa::detail::concat("\"valid_loss\": ", json_array(v, "%.5f"),
                              ", \"valid_loss_all\": ", fmt("%.5f", l.overall()));
}

std::string index_json(const std::vector<index_t>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += nexa::detail::concat(i ? ", " : "", v[i]);
  return out + "]";
}

void print_row(const Row& r) {
  std::printf("%-30s %5s", r.model.c_str(), r.step.c_str());
  for (std::size_t d = 0; d < kRoutedDomains; ++d)
    std::printf(" %8.3f %8.1f", r.loss.mean(d), std::exp(r.loss.mean(d)));
  std::printf(" %8.3f %8.1f\n", r.loss.overall(), std::exp(r.loss.overall()));
}

std::string mib(double bytes) { return fmt("%.2f MiB", bytes / (1024.0 * 1024.0)); }

int run(const Options& opt) {
  examples::set_threads(opt.threads);
  const auto start = Clock::now();
  const auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };

  // The checkpoint and the initialisations asked for.
  const nexa_moe::Checkpoint ckpt = nexa_moe::Checkpoint::open(opt.checkpoint);
  nexa::require(ckpt.lm.experts == kRoutedDomains && ckpt.domains.size() == kRoutedDomains, "--checkpoint",
                "expected the 3 experts PHYS, BIO, MAT of a nexa-moe checkpoint, got ", ckpt.lm.experts);
  const std::vector<std::string> inits = split_list(opt.inits);
  nexa::require(!inits.empty(), "--inits", "expected at least one initialisation");
  for (const std::string& name : inits) {
    nexa::require(nexus_shared::valid_init(name, ckpt.lm.experts), "--inits", "unknown initialisation '", name,
                  "' (expected pca, most, random or top<m> with 1 <= m <= ", ckpt.lm.experts, ")");
    nexa::require(std::count(inits.begin(), inits.end(), name) == 1, "--inits", "'", name, "' is given twice");
  }
  const nexa::WordPieceTokenizer wordpiece = ckpt.classifier_vocab();
  const lm_data::Vocab vocab = lm_data::Vocab::load(ckpt.dir / "vocab.txt", wordpiece);
  nexa::require(vocab.size() == ckpt.lm.vocab, "--checkpoint", "vocab.txt has ", vocab.size(),
                " entries, config.json says ", ckpt.lm.vocab);

  // Data: the training batches of every initialisation (the same ones), the validation split per
  // domain, untagged, in file order.
  const std::vector<lm_data::Sample> train = nexa_moe::routed_samples(opt.corpus / "train.jsonl");
  const std::vector<lm_data::Sample> valid = nexa_moe::routed_samples(opt.corpus / "valid.jsonl");
  nexa::require(!train.empty() && !valid.empty(), "--corpus", opt.corpus.string(),
                ": no PHYS, BIO or MAT definitions in train.jsonl or valid.jsonl");
  const lm_data::Batcher batcher(nexa_moe::training_sequences(vocab, train, opt.max_len, opt.tag_dropout, opt.seed),
                                 {.batch_size = static_cast<std::size_t>(opt.batch), .seed = opt.seed, .bucket = 8});
  std::vector<std::vector<std::size_t>> schedule;
  for (std::uint64_t epoch = 0; static_cast<index_t>(schedule.size()) < opt.steps; ++epoch)
    for (auto& b : batcher.epoch(epoch))
      if (static_cast<index_t>(schedule.size()) < opt.steps) schedule.push_back(std::move(b));
  std::vector<std::vector<lm_data::Sample>> valid_by_domain(kRoutedDomains);
  for (const auto& s : valid) {
    auto& v = valid_by_domain[static_cast<std::size_t>(s.domain)];
    if (opt.valid_limit == 0 || v.size() < opt.valid_limit) v.push_back(s);
  }
  std::vector<lm_data::Batcher> valid_batches;
  for (const auto& v : valid_by_domain)
    valid_batches.emplace_back(lm_data::make_sequences(vocab, v, {.max_len = opt.max_len, .with_tag = false}),
                               lm_data::BatchOptions{.batch_size = 64, .shuffle = false});
  // Route table rows: the training definitions, then each domain's validation definitions.
  std::vector<std::size_t> valid_offset(kRoutedDomains);
  std::size_t rows = train.size();
  for (std::size_t d = 0; d < kRoutedDomains; ++d) valid_offset[d] = rows, rows += valid_by_domain[d].size();

  std::set<std::size_t> used;
  for (const auto& b : schedule) used.insert(b.begin(), b.end());
  std::printf("%s: checkpoint %s (d_model %lld, %lld layers, d_ff %lld, %lld experts); %d threads\n", kProgram,
              ckpt.dir.string().c_str(), static_cast<long long>(ckpt.lm.d_model),
              static_cast<long long>(ckpt.lm.layers), static_cast<long long>(ckpt.lm.d_ff),
              static_cast<long long>(ckpt.lm.experts), examples::threads_in_use());
  std::printf(
      "corpus: %zu training definitions (%zu in the %lld batches of %lld), validation %zu PHYS, %zu BIO, %zu "
      "MAT (untagged); training tags kept on %.0f%%\n",
      train.size(), used.size(), static_cast<long long>(opt.steps), static_cast<long long>(opt.batch),
      valid_by_domain[0].size(), valid_by_domain[1].size(), valid_by_domain[2].size(), 100.0 * (1.0 - opt.tag_dropout));

  std::string log = nexa::detail::concat(
      "{\"event\": \"config\", \"checkpoint\": ", nexa::json::quote(ckpt.dir.string()),
      ", \"lm\": ", nexa_moe::lm_config_json(ckpt.lm), ", \"steps\": ", opt.steps, ", \"batch\": ", opt.batch,
      ", \"lr\": ", opt.lr, ", \"warmup\": ", opt.warmup, ", \"weight_decay\": ", opt.weight_decay,
      ", \"scale\": ", opt.scale, ", \"tag_dropout\": ", opt.tag_dropout, ", \"inits\": ", nexa::json::quote(opt.inits),
      ", \"valid_limit\": ", opt.valid_limit, ", \"threads\": ", examples::threads_in_use(), ", \"seed\": ", opt.seed,
      "}\n");
  const fs::path log_path = opt.out / "train.jsonl";

  // Routing: the frozen BERT classifier, once per definition.
  auto table = std::make_shared<nexus_shared::Table>(static_cast<index_t>(rows), ckpt.lm.experts);
  nexa_moe::DomainRouter domain_router = ckpt.router();
  {
    const auto t0 = Clock::now();
    std::vector<std::string> train_texts, valid_texts;
    for (const auto& s : train) train_texts.push_back(s.text);
    const std::vector<std::size_t> todo(used.begin(), used.end());
    std::size_t total = todo.size();
    for (const auto& v : valid_by_domain) total += v.size();
    std::printf("routing %zu definitions with the frozen BERT router (once each; every step reads the table)\n", total);
    std::fflush(stdout);
    std::size_t done_before = 0, next_report = 1024;
    const auto progress = [&](std::size_t done, std::size_t) {
      const std::size_t all = done_before + done;
      if (all < next_report && all != total) return;
      next_report = all + 1024;
      const double s = since(t0);
      std::printf("  routed %zu/%zu | %.0f definitions/s | %s left\n", all, total, static_cast<double>(all) / s,
                  duration(s / static_cast<double>(all) * static_cast<double>(total - all)).c_str());
      std::fflush(stdout);
    };
    done_before += nexus_shared::route_definitions(*table, domain_router.classifier, wordpiece, train_texts, todo, 0,
                                                   ckpt.classifier_max_len, 32, progress);
    for (std::size_t d = 0; d < kRoutedDomains; ++d) {
      std::vector<std::string> texts;
      for (const auto& s : valid_by_domain[d]) texts.push_back(s.text);
      std::vector<std::size_t> all(texts.size());
      for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
      done_before += nexus_shared::route_definitions(*table, domain_router.classifier, wordpiece, texts, all,
                                                     valid_offset[d], ckpt.classifier_max_len, 32, progress);
    }
    // The router's validation accuracy, from the table (a check that the checkpoint routes well).
    double correct = 0, n = 0;
    for (std::size_t d = 0; d < kRoutedDomains; ++d)
      for (std::size_t i = 0; i < valid_by_domain[d].size(); ++i) {
        const float* row = table->row(static_cast<index_t>(valid_offset[d] + i));
        correct += (std::max_element(row, row + table->labels) - row) == static_cast<long>(d) ? 1 : 0;
        n += 1;
      }
    std::printf("routed in %s; the router's accuracy on these validation definitions: %.3f\n",
                duration(since(t0)).c_str(), correct / n);
    log += nexa::detail::concat("{\"event\": \"routing\", \"definitions\": ", total,
                                ", \"seconds\": ", fmt("%.1f", since(t0)),
                                ", \"valid_accuracy\": ", fmt("%.4f", correct / n), "}\n");
  }

  // The router's activity over the training tokens (every token of a definition takes its
  // definition's probabilities): what the most-activated and PCA-guided rules read.
  nexa::ExpertActivity activity(ckpt.lm.experts);
  {
    std::vector<double> probs;
    std::vector<std::int32_t> top;
    const index_t E = ckpt.lm.experts;
    for (const std::size_t i : used) {
      const float* logits = table->row(static_cast<index_t>(i));
      const float m = *std::max_element(logits, logits + E);
      std::vector<double> p(static_cast<std::size_t>(E));
      double z = 0;
      for (index_t e = 0; e < E; ++e) z += p[static_cast<std::size_t>(e)] = std::exp(double(logits[e]) - double(m));
      for (double& v : p) v /= z;
      const auto best = static_cast<std::int32_t>(std::max_element(logits, logits + E) - logits);
      for (std::size_t t = 0; t < batcher.sequences()[i].ids.size(); ++t) {
        probs.insert(probs.end(), p.begin(), p.end());
        top.push_back(best);
      }
    }
    activity.add(probs.data(), static_cast<index_t>(top.size()), top.data(), 1);
  }
  const nexa::PcaExpertScores pca = nexa::pca_expert_scores(activity, opt.pca_components, opt.pca_select);
  {
    std::vector<double> assigned;
    for (const index_t a : activity.assignments) assigned.push_back(static_cast<double>(a));
    std::printf("router activity over %lld training tokens: assignments", static_cast<long long>(activity.tokens));
    for (index_t e = 0; e < ckpt.lm.experts; ++e)
      std::printf(" %s %.3f", kDomainNames[static_cast<std::size_t>(e)].c_str(),
                  assigned[static_cast<std::size_t>(e)] / static_cast<double>(activity.tokens));
    std::printf("\nPCA-guided scores (importance):");
    for (index_t e = 0; e < ckpt.lm.experts; ++e)
      std::printf(" %s %.4f", kDomainNames[static_cast<std::size_t>(e)].c_str(),
                  pca.scores[static_cast<std::size_t>(e)]);
    std::printf("; explained variance %s; K = min(%lld, %lld) selects %zu experts, %.1f%% of the importance\n",
                json_array(pca.explained_variance_ratio, "%.3f").c_str(), static_cast<long long>(opt.pca_select),
                static_cast<long long>(ckpt.lm.experts), pca.selected.size(), 100.0 * pca.importance_fraction);
    log += nexa::detail::concat("{\"event\": \"activity\", \"tokens\": ", activity.tokens,
                                ", \"assignments\": ", json_array(assigned, "%.0f"),
                                ", \"mean_probability\": ", json_array(activity.mean_probability(), "%.5f"),
                                ", \"pca_scores\": ", json_array(pca.scores, "%.5f"),
                                ", \"explained_variance_ratio\": ", json_array(pca.explained_variance_ratio, "%.5f"),
                                ", \"pca_selected\": ", index_json(pca.selected),
                                ", \"importance_fraction\": ", fmt("%.5f", pca.importance_fraction), "}\n");
  }

  // Evaluation on the validation definitions, untagged.
  const auto evaluate = [&](auto& model) {
    DomainLoss loss;
    for (std::size_t d = 0; d < kRoutedDomains; ++d) {
      const lm_data::Batcher& vb = valid_batches[d];
      for (const auto& indices : vb.epoch(0)) {
        const lm_data::Batch b = vb.batch(indices);
        loss.add(static_cast<std::int32_t>(d),
                 model.step(nexus_shared::table_batch(indices, valid_offset[d]), token_batch(b), false));
      }
    }
    return loss;
  };
  std::vector<Row> rows_out;
  const nexus_shared::LayerExperts dense_experts = nexus_shared::load_dense_experts(ckpt);
  double eval_seconds = 0;
  index_t evals = 0;
  const auto timed_eval = [&](auto& model) {
    const auto t0 = Clock::now();
    DomainLoss l = evaluate(model);
    eval_seconds += since(t0);
    ++evals;
    return l;
  };
  if (!opt.skip_fp32) {
    auto fp32 = nexus_shared::load_frozen_lm<DenseExpert>(ckpt, dense_experts, opt.scale, table);
    rows_out.push_back({"fp32 experts, no shared", "-", timed_eval(fp32)});
    log += nexa::detail::concat("{\"event\": \"valid\", \"model\": \"fp32-no-shared\", ",
                                loss_json(rows_out.back().loss), "}\n");
  }
  auto model = nexus_shared::load_frozen_lm<NF4Expert>(ckpt, dense_experts, opt.scale, table);
  rows_out.push_back({"NF4 experts, no shared", "-", timed_eval(model)});
  log += nexa::detail::concat("{\"event\": \"valid\", \"model\": \"nf4-no-shared\", ", loss_json(rows_out.back().loss),
                              "}\n");
  const nexus_shared::Footprint fp = nexus_shared::footprint(model, domain_router.classifier);
  {
    const double all = static_cast<double>(fp.all_lm_params());
    const double trainable = static_cast<double>(fp.lm.trainable);
    std::printf(
        "\ntrainable: %.3fM of the LM's %.3fM parameters (%.2f%%; %.2f%% counting the %.2fM-parameter BERT "
        "router too)\n",
        trainable * 1e-6, all * 1e-6, 100.0 * trainable / all,
        100.0 * trainable / (all + static_cast<double>(fp.router_params)),
        static_cast<double>(fp.router_params) * 1e-6);
    std::printf("gradients %s + AdamW state %s = %s (full fine-tuning of the LM in fp32: %s)\n",
                mib(static_cast<double>(fp.lm.gradient_bytes)).c_str(),
                mib(static_cast<double>(fp.lm.optimizer_bytes)).c_str(),
                mib(static_cast<double>(fp.lm.gradient_bytes + fp.lm.optimizer_bytes)).c_str(),
                mib(static_cast<double>(fp.full_finetune_bytes())).c_str());
    std::printf("routed experts: %.3fM parameters in NF4 %s (%.3f bytes per parameter) against fp32 %s\n\n",
                static_cast<double>(fp.routed_expert_params) * 1e-6,
                mib(static_cast<double>(fp.routed_nf4_bytes)).c_str(),
                static_cast<double>(fp.routed_nf4_bytes) / static_cast<double>(fp.routed_expert_params),
                mib(4.0 * static_cast<double>(fp.routed_expert_params)).c_str());
    log += nexa::detail::concat(
        "{\"event\": \"footprint\", \"trainable\": ", fp.lm.trainable, ", \"lm_params\": ", fp.all_lm_params(),
        ", \"router_params\": ", fp.router_params, ", \"trainable_fraction\": ", fmt("%.6f", trainable / all),
        ", \"gradient_bytes\": ", fp.lm.gradient_bytes, ", \"optimizer_bytes\": ", fp.lm.optimizer_bytes,
        ", \"full_finetune_bytes\": ", fp.full_finetune_bytes(),
        ", \"routed_expert_params\": ", fp.routed_expert_params, ", \"routed_nf4_bytes\": ", fp.routed_nf4_bytes,
        "}\n");
  }

  // The frozen NF4 MoE's own loss on every training batch (forward only): each initialisation's
  // training loss is reported against it, so the batches' differences in difficulty cancel.
  std::vector<double> frozen_loss;
  {
    const auto t0 = Clock::now();
    double sum = 0;
    for (const auto& indices : schedule) {
      const lm_data::Batch b = batcher.batch(indices);
      frozen_loss.push_back(model.step(nexus_shared::table_batch(indices), token_batch(b), false).lm);
      sum += frozen_loss.back();
    }
    std::printf("the frozen NF4 MoE (no shared expert) on the %zu training batches: mean loss %.4f (%s)\n",
                schedule.size(), sum / static_cast<double>(schedule.size()), duration(since(t0)).c_str());
    log += nexa::detail::concat("{\"event\": \"frozen_train_loss\", \"mean\": ",
                                fmt("%.5f", sum / static_cast<double>(schedule.size())), "}\n");
  }

  // Train the shared experts once per initialisation, on the same batches.
  const nexa::train::AdamWConfig adamw{
      .lr = opt.lr, .weight_decay = opt.weight_decay, .no_weight_decay = nexa::train::no_decay_norms_and_biases};
  const nexa::train::CosineSchedule cosine{
      .peak_lr = 1.0, .min_lr = 0.1, .warmup_steps = std::min(opt.warmup, opt.steps), .total_steps = opt.steps};
  std::vector<InitRun> runs;
  const auto train_start = Clock::now();
  double train_seconds = 0;
  const index_t total_steps = opt.steps * static_cast<index_t>(inits.size());
  for (std::size_t r = 0; r < inits.size(); ++r) {
    InitRun run;
    run.init = nexus_shared::init_shared(model, dense_experts, inits[r], activity, opt.seed, opt.pca_components,
                                         opt.pca_select);
    std::printf(
        "[%s] shared expert = %s\n", inits[r].c_str(),
        run.init.experts.empty()
            ? "N(0, 0.02) weights"
            : nexa::detail::concat("the mean of experts ", index_json(run.init.experts), " (fp32 weights)").c_str());
    run.before = timed_eval(model);
    nexa::train::AdamW optimizer(model, adamw);
    double ema = NAN, gain_ema = NAN;
    for (index_t step = 1; step <= opt.steps; ++step) {
      const auto t0 = Clock::now();
      const std::vector<std::size_t>& indices = schedule[static_cast<std::size_t>(step - 1)];
      const lm_data::Batch b = batcher.batch(indices);
      optimizer.set_lr(opt.lr * cosine(step - 1));
      const nexa_moe::StepLoss l = model.step(nexus_shared::table_batch(indices), token_batch(b), true);
      (void)nexa::train::clip_grad_norm(model, opt.clip);
      optimizer.step();
      optimizer.zero_grad();
      const double dt = since(t0);
      run.seconds += dt;
      train_seconds += dt;
      run.tokens += static_cast<double>(b.tokens);
      const double gain = l.lm - frozen_loss[static_cast<std::size_t>(step - 1)];
      run.curve.emplace_back(static_cast<double>(step), gain);
      ema = std::isnan(ema) ? l.lm : 0.9 * ema + 0.1 * l.lm;
      gain_ema = std::isnan(gain_ema) ? gain : 0.9 * gain_ema + 0.1 * gain;
      if (step % opt.log_every == 0 || step == opt.steps) {
        const index_t done = static_cast<index_t>(r) * opt.steps + step;
        const double per_eval = evals > 0 ? eval_seconds / static_cast<double>(evals) : 0.0;
        const double evals_left = static_cast<double>(2 * inits.size() - 2 * r - 1);
        const double left =
            train_seconds / static_cast<double>(done) * static_cast<double>(total_steps - done) + per_eval * evals_left;
        std::printf(
            "[%s] step %4lld/%lld | loss %.3f (ema %.3f; %+.4f vs frozen MoE) | %.0f tok/s | %s elapsed, %s left\n",
            inits[r].c_str(), static_cast<long long>(step), static_cast<long long>(opt.steps), l.lm, ema, gain_ema,
            run.tokens / run.seconds, duration(since(train_start)).c_str(), duration(left).c_str());
        std::fflush(stdout);
        log += nexa::detail::concat("{\"event\": \"train\", \"init\": \"", inits[r], "\", \"step\": ", step,
                                    ", \"loss\": ", fmt("%.5f", l.lm), ", \"loss_ema\": ", fmt("%.5f", ema),
                                    ", \"frozen_loss\": ", fmt("%.5f", frozen_loss[static_cast<std::size_t>(step - 1)]),
                                    ", \"vs_frozen_ema\": ", fmt("%.5f", gain_ema),
                                    ", \"lr\": ", fmt("%.3g", opt.lr * cosine(step - 1)),
                                    ", \"tokens_per_s\": ", fmt("%.1f", run.tokens / run.seconds), "}\n");
        examples::write_file(log_path, log, kProgram);
      }
    }
    run.after = timed_eval(model);
    // The trained shared experts: their weights and the fixed scale, under the model's names.
    run.file = opt.out / "shared_experts" / (inits[r] + ".safetensors");
    fs::create_directories(run.file.parent_path());
    auto view = nexus_shared::shared_params(model);
    nexa::save_safetensors(view, run.file);
    log += nexa::detail::concat("{\"event\": \"final\", \"init\": \"", inits[r],
                                "\", \"experts\": ", index_json(run.init.experts), ", \"steps\": ", opt.steps,
                                ", \"before\": {", loss_json(run.before), "}, \"after\": {", loss_json(run.after),
                                "}, \"tokens_per_s\": ", fmt("%.1f", run.tokens / run.seconds), "}\n");
    examples::write_file(log_path, log, kProgram);
    runs.push_back(std::move(run));
  }

  // The table.
  std::printf("\nvalidation loss and perplexity (untagged; %zu PHYS, %zu BIO, %zu MAT definitions)\n",
              valid_by_domain[0].size(), valid_by_domain[1].size(), valid_by_domain[2].size());
  std::printf("%-30s %5s", "model", "step");
  for (const auto& d : kDomainNames) std::printf(" %8s %8s", (d + " loss").c_str(), "ppl");
  std::printf(" %8s %8s\n", "all loss", "ppl");
  for (const Row& r : rows_out) print_row(r);
  for (const InitRun& r : runs) {
    const std::string name =
        "shared: " + r.init.name + (r.init.experts.empty() ? "" : " " + index_json(r.init.experts));
    print_row({name, "0", r.before});
    print_row({name, std::to_string(opt.steps), r.after});
  }

  const std::size_t tail = std::max<std::size_t>(1, schedule.size() / 3);
  std::printf("\ntraining loss minus the frozen NF4 MoE's on the same batch, mean over the last %zu batches:", tail);
  for (const InitRun& r : runs) {
    double sum = 0;
    for (std::size_t i = r.curve.size() - tail; i < r.curve.size(); ++i) sum += r.curve[i].second;
    std::printf(" %s %+.4f", r.init.name.c_str(), sum / static_cast<double>(tail));
    log += nexa::detail::concat("{\"event\": \"train_vs_frozen\", \"init\": \"", r.init.name,
                                "\", \"last_batches\": ", tail,
                                ", \"mean\": ", fmt("%.5f", sum / static_cast<double>(tail)), "}\n");
  }
  std::printf("\n");

  // Shared experts' config, plot.
  {
    std::string entries;
    for (std::size_t r = 0; r < runs.size(); ++r)
      entries += nexa::detail::concat(r ? ", " : "", nexa::json::quote(runs[r].init.name),
                                      ": {\"file\": ", nexa::json::quote(runs[r].file.filename().string()),
                                      ", \"init_experts\": ", index_json(runs[r].init.experts), ", ",
                                      loss_json(runs[r].after), "}");
    examples::write_file(
        opt.out / "shared_experts" / "config.json",
        nexa::detail::concat("{\"format\": \"nexus-shared-expert\", \"base_checkpoint\": ",
                             nexa::json::quote(fs::absolute(ckpt.dir).string()), ", \"routed_experts\": \"NF4\", ",
                             "\"expert\": \"T5FFN<Relu>\", \"d_model\": ", ckpt.lm.d_model,
                             ", \"d_ff\": ", ckpt.lm.d_ff, ", \"layers\": ", ckpt.lm.layers, ", \"scale\": ", opt.scale,
                             ", \"names\": \"decoder.block.<i>.layer.1.mlp.shared_expert.{wi.weight, wo.weight, "
                             "scale}\", \"steps\": ",
                             opt.steps, ", \"inits\": {", entries, "}}\n"),
        kProgram);
  }
  svg::Chart train_chart{.title = "training loss minus the frozen MoE's, same batch (EMA 0.9)",
                         .x_label = "step",
                         .y_label = "nats",
                         .series = {}};
  svg::Chart valid_chart{.title = "validation loss", .x_label = "step", .y_label = "cross-entropy", .series = {}};
  for (std::size_t r = 0; r < runs.size(); ++r) {
    std::vector<std::pair<double, double>> smooth;
    double ema = NAN;
    for (const auto& [x, y] : runs[r].curve) {
      ema = std::isnan(ema) ? y : 0.9 * ema + 0.1 * y;
      smooth.emplace_back(x, ema);
    }
    const std::string color(svg::detail::kPalette[r % svg::detail::kPalette.size()]);
    train_chart.series.push_back({.name = runs[r].init.name, .points = smooth, .color = color});
    valid_chart.series.push_back(
        {.name = runs[r].init.name,
         .points = {{0.0, runs[r].before.overall()}, {static_cast<double>(opt.steps), runs[r].after.overall()}},
         .color = color});
  }
  for (const Row& row : rows_out)
    valid_chart.series.push_back(
        {.name = row.model,
         .points = {{0.0, row.loss.overall()}, {static_cast<double>(opt.steps), row.loss.overall()}},
         .color = row.model.rfind("NF4", 0) == 0 ? "#7f7f7f" : "#bcbd22",
         .dashed = true});
  examples::write_file(opt.out / "curves.svg", svg::render({train_chart, valid_chart}), kProgram);
  examples::write_file(log_path, log, kProgram);
  std::printf("\nwrote %s (log), %s (plot), %s/ (shared experts) in %s\n", log_path.string().c_str(),
              (opt.out / "curves.svg").string().c_str(), (opt.out / "shared_experts").string().c_str(),
              duration(since(start)).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  cli::Parser p(kProgram, kUsage);
  p.value("--checkpoint", opt.checkpoint);
  p.value("--corpus", opt.corpus);
  p.value("--out", opt.out);
  p.value("--inits", opt.inits);
  p.number("--steps", opt.steps, {.min = 1});
  p.number("--batch", opt.batch, {.min = 1});
  p.number("--lr", opt.lr, {.min = 0});
  p.number("--warmup", opt.warmup, {.min = 0});
  p.number("--weight-decay", opt.weight_decay, {.min = 0});
  p.number("--scale", opt.scale);
  p.number("--tag-dropout", opt.tag_dropout, {.min = 0, .max = 1});
  p.number("--valid-limit", opt.valid_limit);
  p.number("--pca-components", opt.pca_components, {.min = 1});
  p.number("--pca-select", opt.pca_select, {.min = 1});
  p.flag("--skip-fp32", opt.skip_fp32);
  p.number("--log-every", opt.log_every, {.min = 1});
  p.number("--threads", opt.threads, {.min = 0});
  p.number("--seed", opt.seed);
  return p.run(argc, argv, [&] { return run(opt); });
}
