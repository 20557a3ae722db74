// qlora-finetune: QLoRA (Dettmers et al., 2023) on the NEXA-MOE demo model (issue 7). The trained
// checkpoint of nexa-moe is loaded; its routed T5 experts are quantised to NF4 and frozen, a LoRA
// adapter goes on each expert linear (wi, wo), and only the adapters are fine-tuned to a new task
// built from GCIDE: headword -> definition ("[BOS] headword : definition [EOS]", loss on the
// definition only). The frozen BERT router routes each sample on its headword. For reference the
// same fp32 model is then fully fine-tuned (every LM parameter, the router frozen) for the same
// steps on the same batches.
// It reports validation loss and perplexity before and after, greedy definitions for a few
// validation headwords, memory (trainable parameters, gradients, AdamW state, weights) of QLoRA
// against full fine-tuning; saves the adapters alone (peft names) and reloads them into a freshly
// quantised model, whose validation loss must equal the trained one's.
//
//   qlora-finetune --checkpoint DIR --corpus DIR [--out DIR] [--steps N] [--threads N]   (--help)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "../common/files.hpp"
#include "../common/svg_plot.hpp"
#include "../common/threads.hpp"
#include "../nexa_generate/generator.hpp"
#include "../nexa_moe/checkpoint.hpp"
#include "../nexa_moe/data.hpp"
#include "../nexa_moe/report.hpp"
#include "nexa/train/train.hpp"
#include "qlora_lm.hpp"
#include "task.hpp"

namespace {

namespace fs = std::filesystem;
using nexa::index_t;
using nexa_moe::report::duration;
using nexa_moe::report::fmt;
using Clock = std::chrono::steady_clock;

constexpr const char* kProgram = "qlora-finetune";
constexpr const char* kAdapterPrefix = "base_model.model";  // peft's prefix of adapter names

struct Options {
  fs::path checkpoint = "nexa_moe_run/checkpoint";
  fs::path corpus = "gcide_corpus";
  fs::path out = "qlora_run";
  index_t steps = 200;
  index_t full_steps = -1;  // -1: as many as QLoRA; 0: no full fine-tuning
  index_t batch = 16;
  std::size_t max_len = 64;
  index_t r = 16;
  double alpha = 32, lora_dropout = 0.0;
  double lr = 2e-3, full_lr = 5e-4, clip = 1.0;
  index_t warmup = 10;
  index_t log_every = 10, eval_every = 50;
  std::size_t valid_limit = 512;  // validation definitions (spread over the split; 0: all)
  std::size_t generate = 4;       // validation headwords to define greedily before and after
  int threads = 0;
  std::uint64_t seed = 1;
};

constexpr const char* kUsage =
    "usage: qlora-finetune [--checkpoint DIR] [--corpus DIR] [--out DIR] [--steps N] [--threads N] [options]\n"
    "Fine-tunes LoRA adapters over the NF4-quantised experts of a trained NEXA-MOE model (nexa-moe's\n"
    "checkpoint) to GCIDE's headword -> definition task, then fully fine-tunes the fp32 model for\n"
    "reference, and compares loss and memory. Saves the adapters alone and checks their reload.\n"
    "  --checkpoint DIR    nexa-moe's checkpoint (config.json, nexa_moe.safetensors) [nexa_moe_run/checkpoint]\n"
    "  --corpus DIR        nexa-gcide-corpus output (train.jsonl, valid.jsonl)       [gcide_corpus]\n"
    "  --out DIR           train.jsonl, curves.svg, adapter_model.safetensors, adapter_config.json [qlora_run]\n"
    "  --steps N           QLoRA optimizer steps                                      [200]\n"
    "  --full-steps N      full fine-tuning steps (-1: as QLoRA, 0: skip)             [-1]\n"
    "  --batch N           definitions per batch                                      [16]\n"
    "  --max-len N         ids per sequence (prompt, definition, [BOS], [EOS])        [64]\n"
    "  --r N --alpha X --lora-dropout X    LoRA rank, alpha (scale alpha / r), dropout [16 32 0]\n"
    "  --lr X --full-lr X  AdamW peak learning rates: QLoRA, full fine-tuning         [2e-3 5e-4]\n"
    "  --log-every N --eval-every N   progress line and validation-curve period      [10 50]\n"
    "  --valid-limit N     validation definitions, spread over the split (0: all)     [512]\n"
    "  --generate N        validation headwords defined greedily before and after     [4]\n"
    "  --threads N         CPU threads (0: all cores)                                 [0]\n"
    "  --seed N                                                                        [1]\n";

// One way of fine-tuning: its curves and figures.
struct Run {
  std::string name;
  std::vector<std::pair<double, double>> train_curve, valid_curve;
  double loss_ema = NAN, tokens = 0, seconds = 0, final_loss = NAN;
  double hidden_loss = NAN;  // the validation loss with the headword left out of the prompt
  qlora_lm::Memory memory;
  std::vector<std::string> generations;
};

std::string json_string(std::string_view s) { return nexa::json::quote(s); }

int run(const Options& opt) {
  examples::set_threads(opt.threads);
  const auto start = Clock::now();
  const auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  const index_t full_steps = opt.full_steps < 0 ? opt.steps : opt.full_steps;
  fs::create_directories(opt.out);

  // The trained model, its vocabularies and router.
  const nexa_moe::Checkpoint ckpt = nexa_moe::Checkpoint::open(opt.checkpoint);
  const nexa::WordPieceTokenizer wordpiece = ckpt.classifier_vocab();
  const lm_data::Vocab vocab = lm_data::Vocab::load(ckpt.dir / "vocab.txt", wordpiece);
  nexa::require(vocab.size() == ckpt.lm.vocab, kProgram, "the checkpoint's vocab.txt has ", vocab.size(),
                " entries, its config says ", ckpt.lm.vocab);
  nexa_moe::NexaMoeLM trained = ckpt.model();
  trained.router->set_training_scope(nexa::RouterTraining::Frozen);  // it only routes

  // The task.
  const auto train_samples = nexa_moe::routed_samples(opt.corpus / "train.jsonl");
  const auto valid_all = nexa_moe::routed_samples(opt.corpus / "valid.jsonl");
  nexa::require(!train_samples.empty() && !valid_all.empty(), "--corpus", opt.corpus.string(),
                ": no PHYS, BIO or MAT definitions in train.jsonl or valid.jsonl");
  std::vector<lm_data::Sample> valid_samples;
  for (const std::size_t i : qlora_task::spread(valid_all.size(), opt.valid_limit))
    valid_samples.push_back(valid_all[i]);
  const qlora_task::TaskData train = qlora_task::make_task(vocab, train_samples, opt.max_len);
  const qlora_task::TaskData valid = qlora_task::make_task(vocab, valid_samples, opt.max_len);
  // The control: the same pairs with the headword left out of the prompt ("[BOS] :"), routed on
  // the headword as before, to see how much of the loss the headword itself explains.
  std::vector<lm_data::Sample> headless = valid_samples;
  for (lm_data::Sample& s : headless) s.headword.clear();
  qlora_task::TaskData valid_headless = qlora_task::make_task(vocab, headless, opt.max_len);
  valid_headless.headwords = valid.headwords;
  const lm_data::Batcher batcher(train.sequences,
                                 {.batch_size = static_cast<std::size_t>(opt.batch), .seed = opt.seed, .bucket = 8});
  std::printf("%s: checkpoint %s (d_model %lld, %lld layers, %lld experts, vocabulary %d)\n", kProgram,
              ckpt.dir.string().c_str(), static_cast<long long>(ckpt.lm.d_model),
              static_cast<long long>(ckpt.lm.layers), static_cast<long long>(ckpt.lm.experts), vocab.size());
  std::printf("task: headword -> definition; %zu training pairs, %zu validation pairs (of %zu); %d threads\n",
              train.size(), valid.size(), valid_all.size(), examples::threads_in_use());

  const auto route_batch = [&](const qlora_task::TaskData& data, std::span<const std::size_t> indices) {
    std::vector<std::string> texts;
    for (const std::size_t i : indices) texts.push_back(data.headwords[i]);
    return nexa_moe::classifier_batch(wordpiece, texts, ckpt.classifier_max_len);
  };
  // Mean loss per definition token over the validation pairs.
  const auto evaluate = [&](auto& lm, const qlora_task::TaskData& data) {
    lm.set_training(false);
    double sum = 0, count = 0;
    const std::vector<std::size_t> all = qlora_task::spread(data.size(), 0);
    for (std::size_t i = 0; i < all.size(); i += 32) {
      const std::span<const std::size_t> idx(all.data() + i, std::min<std::size_t>(32, all.size() - i));
      const lm_data::Batch b = qlora_task::task_batch(data, idx);
      const nexa_moe::StepLoss l = qlora_lm::routed_step(lm, route_batch(data, idx), nexa_moe::token_batch(b), false);
      sum += l.lm * static_cast<double>(l.targets);
      count += static_cast<double>(l.targets);
    }
    lm.set_training(true);
    return sum / count;
  };
  const std::vector<std::size_t> shown =
      opt.generate == 0 ? std::vector<std::size_t>{} : qlora_task::spread(valid.size(), opt.generate);
  const auto generate = [&](auto& lm) {
    std::vector<std::string> out;
    if (shown.empty()) return out;
    lm.set_training(false);
    (void)qlora_lm::router_of(lm).classify(route_batch(valid, shown));
    std::vector<std::uint64_t> rows(shown.begin(), shown.end());
    nexa_generate::Options g;
    g.sampling.greedy = true;
    g.max_new_tokens = 24;
    for (const auto& gen : nexa_generate::generate(lm, qlora_task::prompts(valid, shown), rows, g))
      out.push_back(vocab.decode(gen.tokens) + (gen.finished ? "" : " ..."));
    lm.set_training(true);
    return out;
  };

  // QLoRA: NF4 experts, adapters on wi and wo.
  const nexa::LoRAConfig lora{.r = opt.r, .alpha = opt.alpha, .dropout = opt.lora_dropout};
  nexa::Rng adapter_rng(opt.seed);
  qlora_lm::QLoraLM qlora = qlora_lm::make_qlora(trained, lora, adapter_rng);
  qlora_lm::FullLM& full = trained;

  std::printf("evaluating the base model on the task...\n");
  std::fflush(stdout);
  const double base_fp32 = evaluate(full, valid);
  const double base_headless = evaluate(full, valid_headless);
  const double base_nf4 = evaluate(qlora, valid);  // fresh adapters: the NF4 base itself
  const std::vector<std::string> base_generations = generate(qlora);
  std::printf("  before fine-tuning: validation loss %.4f (fp32 experts), %.4f (NF4 experts)\n", base_fp32, base_nf4);

  std::string log = nexa::detail::concat(
      "{\"event\": \"config\", \"checkpoint\": ", json_string(ckpt.dir.string()), ", \"steps\": ", opt.steps,
      ", \"full_steps\": ", full_steps, ", \"batch\": ", opt.batch, ", \"r\": ", opt.r, ", \"alpha\": ", opt.alpha,
      ", \"lora_dropout\": ", opt.lora_dropout, ", \"lr\": ", opt.lr, ", \"full_lr\": ", opt.full_lr,
      ", \"valid_pairs\": ", valid.size(), ", \"threads\": ", examples::threads_in_use(), ", \"seed\": ", opt.seed,
      "}\n", "{\"event\": \"base\", \"valid_loss_fp32\": ", fmt("%.5f", base_fp32),
      ", \"valid_loss_nf4\": ", fmt("%.5f", base_nf4), ", \"valid_loss_headword_hidden\": ", fmt("%.5f", base_headless),
      "}\n");
  const fs::path log_path = opt.out / "train.jsonl";

  // Fine-tunes `lm` (its trainable parameters) for `steps` on the same batches for every run.
  const auto fine_tune = [&](auto& lm, Run& r, index_t steps, double lr) {
    nexa::train::AdamW opt_state(
        lm, {.lr = lr, .weight_decay = 0.0, .no_weight_decay = nexa::train::no_decay_norms_and_biases});
    r.memory = qlora_lm::memory_of(lm);
    r.memory.optimizer_bytes = opt_state.state_bytes();
    const nexa::train::CosineSchedule schedule{
        .peak_lr = 1.0, .min_lr = 0.1, .warmup_steps = std::min(opt.warmup, steps), .total_steps = steps};
    r.valid_curve.emplace_back(0.0, evaluate(lm, valid));
    std::printf("%s: %lld steps, %.3fM trainable parameters, lr %g\n", r.name.c_str(), static_cast<long long>(steps),
                static_cast<double>(r.memory.trainable) * 1e-6, lr);
    const auto t_start = Clock::now();
    double eval_seconds = 0;
    std::uint64_t epoch = 0;
    auto order = batcher.epoch(epoch);
    std::size_t next = 0;
    for (index_t step = 1; step <= steps; ++step) {
      if (next == order.size()) order = batcher.epoch(++epoch), next = 0;
      const std::vector<std::size_t>& idx = order[next++];
      const lm_data::Batch b = qlora_task::task_batch(train, idx);
      const auto t0 = Clock::now();
      const nexa_moe::StepLoss l = qlora_lm::routed_step(lm, route_batch(train, idx), nexa_moe::token_batch(b), true);
      (void)nexa::train::clip_grad_norm(lm, opt.clip);
      opt_state.set_lr(lr * schedule(step - 1));
      opt_state.step();
      opt_state.zero_grad();
      r.seconds += since(t0);
      r.tokens += static_cast<double>(b.tokens);
      r.loss_ema = std::isnan(r.loss_ema) ? l.lm : 0.95 * r.loss_ema + 0.05 * l.lm;
      r.train_curve.emplace_back(static_cast<double>(step), r.loss_ema);
      if (step % opt.eval_every == 0 || step == steps) {
        const auto te = Clock::now();
        r.valid_curve.emplace_back(static_cast<double>(step), evaluate(lm, valid));
        eval_seconds += since(te);
        log += nexa::detail::concat("{\"event\": \"valid\", \"run\": \"", r.name, "\", \"step\": ", step,
                                    ", \"loss\": ", fmt("%.5f", r.valid_curve.back().second), "}\n");
      }
      if (step % opt.log_every == 0 || step == steps) {
        const double elapsed = since(t_start);
        const double left = (elapsed - eval_seconds) / static_cast<double>(step) * static_cast<double>(steps - step);
        log += nexa::detail::concat("{\"event\": \"train\", \"run\": \"", r.name, "\", \"step\": ", step,
                                    ", \"loss\": ", fmt("%.5f", l.lm), ", \"loss_ema\": ", fmt("%.5f", r.loss_ema),
                                    ", \"lr\": ", fmt("%.3g", lr * schedule(step - 1)),
                                    ", \"tokens_per_s\": ", fmt("%.1f", r.tokens / r.seconds), "}\n");
        std::printf("%s step %4lld/%lld | loss %.3f | valid %.3f | %.0f tok/s | %s elapsed, %s left\n", r.name.c_str(),
                    static_cast<long long>(step), static_cast<long long>(steps), r.loss_ema,
                    r.valid_curve.back().second, r.tokens / r.seconds, duration(elapsed).c_str(),
                    duration(left).c_str());
        std::fflush(stdout);
        examples::write_file(log_path, log, kProgram);
      }
    }
    r.final_loss = r.valid_curve.back().second;
    r.hidden_loss = evaluate(lm, valid_headless);
    r.generations = generate(lm);
  };

  std::vector<Run> runs(1);
  runs[0].name = "qlora";
  fine_tune(qlora, runs[0], opt.steps, opt.lr);

  // The adapters alone, under peft's names, with peft's adapter_config.json.
  const fs::path adapter_path = opt.out / "adapter_model.safetensors";
  nexa::save_adapters(qlora, adapter_path, kAdapterPrefix);
  examples::write_file(
      opt.out / "adapter_config.json",
      nexa::detail::concat("{\"peft_type\": \"LORA\", \"base_model_name_or_path\": ", json_string(ckpt.dir.string()),
                           ", \"r\": ", opt.r, ", \"lora_alpha\": ", opt.alpha, ", \"lora_dropout\": ",
                           opt.lora_dropout, ", \"target_modules\": [\"wi\", \"wo\"], \"bias\": \"none\", ",
                           "\"base_weights\": \"nf4 (routed experts, double quantisation), fp32 elsewhere\", ",
                           "\"task\": \"headword : definition\"}\n"),
      kProgram);

  // Reload: the checkpoint again, freshly quantised, other random adapters, then the saved ones.
  nexa_moe::NexaMoeLM reloaded_base = ckpt.model();
  nexa::Rng other_rng(opt.seed + 1000);
  qlora_lm::QLoraLM reloaded = qlora_lm::make_qlora(reloaded_base, lora, other_rng);
  nexa::load_adapters(reloaded, adapter_path, kAdapterPrefix);
  const double reloaded_loss = evaluate(reloaded, valid);
  const double reload_diff = std::abs(reloaded_loss - runs[0].final_loss);
  std::printf("reloaded %s into a freshly quantised model: validation loss %.6f (trained %.6f, |diff| %.2g)\n",
              adapter_path.string().c_str(), reloaded_loss, runs[0].final_loss, reload_diff);
  log += nexa::detail::concat("{\"event\": \"reload\", \"adapters\": ", json_string(adapter_path.string()),
                              ", \"loss\": ", fmt("%.8f", reloaded_loss),
                              ", \"trained_loss\": ", fmt("%.8f", runs[0].final_loss), "}\n");
  nexa::require(reload_diff <= 1e-6, kProgram, "the reloaded adapters give validation loss ", reloaded_loss,
                ", the trained ones ", runs[0].final_loss);

  if (full_steps > 0) {
    runs.push_back({});
    runs[1].name = "full-ft";
    fine_tune(full, runs[1], full_steps, opt.full_lr);
  }

  // Tables.
  std::printf("\nvalidation loss on the task (%zu pairs, definition tokens only)\n", valid.size());
  std::printf("  %-34s %8s %10s %16s\n", "model", "loss", "perplexity", "headword hidden");
  const auto row = [](const std::string& name, double loss, double hidden) {
    std::printf("  %-34s %8.4f %10.2f %16s\n", name.c_str(), loss, std::exp(loss),
                std::isnan(hidden) ? "" : fmt("%.4f", hidden).c_str());
  };
  row("base, fp32 experts", base_fp32, base_headless);
  row("base, NF4 experts", base_nf4, NAN);
  row(nexa::detail::concat("QLoRA (NF4 + LoRA r ", opt.r, "), ", opt.steps, " steps"), runs[0].final_loss,
      runs[0].hidden_loss);
  row("QLoRA adapters reloaded", reloaded_loss, NAN);
  if (runs.size() > 1)
    row(nexa::detail::concat("full fine-tuning fp32, ", full_steps, " steps"), runs[1].final_loss, runs[1].hidden_loss);
  std::printf("  (headword hidden: the same pairs prompted \"[BOS] :\", routed on the headword as before)\n");

  const auto mb = [](std::size_t bytes) { return fmt("%.2f MB", static_cast<double>(bytes) / 1e6); };
  std::printf("\nmemory for fine-tuning (the frozen BERT router, shared by both, not counted)\n");
  std::printf("  %-30s %16s %16s\n", "", "QLoRA", runs.size() > 1 ? "full fine-tuning" : "");
  const auto mrow = [&](const std::string& what, const std::string& a, const std::string& b) {
    std::printf("  %-30s %16s %16s\n", what.c_str(), a.c_str(), runs.size() > 1 ? b.c_str() : "");
  };
  const qlora_lm::Memory& q = runs[0].memory;
  const qlora_lm::Memory f = runs.size() > 1 ? runs[1].memory : qlora_lm::memory_of(full);
  const auto count = [](index_t n) { return fmt("%.0f", static_cast<double>(n)); };
  mrow("trainable parameters", count(q.trainable), count(f.trainable));
  mrow("gradients (fp32)", mb(q.gradient_bytes), mb(f.gradient_bytes));
  mrow("AdamW state (m, v; fp32)", mb(q.optimizer_bytes), mb(f.optimizer_bytes));
  const std::size_t full_experts = static_cast<std::size_t>(f.expert_parameters) * sizeof(float);
  const std::size_t adapters = static_cast<std::size_t>(q.trainable) * sizeof(float);
  mrow("expert weights", mb(q.expert_bytes) + " nf4", mb(full_experts) + " fp32");
  mrow("LoRA adapters (fp32)", mb(adapters), "-");
  mrow("other weights (fp32)", mb(q.dense_bytes - adapters), mb(f.dense_bytes - full_experts));
  mrow("total", mb(q.total_bytes()), mb(f.total_bytes()));
  std::printf("  adapter file: %s (%s)\n", adapter_path.string().c_str(), mb(fs::file_size(adapter_path)).c_str());

  if (!shown.empty()) {
    std::printf("\ngreedy definitions of validation headwords\n");
    for (std::size_t k = 0; k < shown.size(); ++k) {
      const lm_data::Sample& s = valid_samples[shown[k]];
      std::printf("  %s (%s)\n    reference: %s\n    NF4 base:  %s\n    QLoRA:     %s\n", s.headword.c_str(),
                  nexa_moe::report::kDomainNames[static_cast<std::size_t>(s.domain)].c_str(), s.text.c_str(),
                  base_generations[k].c_str(), runs[0].generations[k].c_str());
      if (runs.size() > 1) std::printf("    full FT:   %s\n", runs[1].generations[k].c_str());
      log += nexa::detail::concat(
          "{\"event\": \"generation\", \"headword\": ", json_string(s.headword),
          ", \"reference\": ", json_string(s.text), ", \"base\": ", json_string(base_generations[k]),
          ", \"qlora\": ", json_string(runs[0].generations[k]),
          runs.size() > 1 ? ", \"full_ft\": " + json_string(runs[1].generations[k]) : "", "}\n");
    }
  }

  for (const Run& r : runs)
    log += nexa::detail::concat(
        "{\"event\": \"final\", \"run\": \"", r.name, "\", \"valid_loss\": ", fmt("%.5f", r.final_loss),
        ", \"perplexity\": ", fmt("%.3f", std::exp(r.final_loss)),
        ", \"valid_loss_headword_hidden\": ", fmt("%.5f", r.hidden_loss), ", \"trainable\": ", r.memory.trainable,
        ", \"gradient_bytes\": ", r.memory.gradient_bytes, ", \"optimizer_bytes\": ", r.memory.optimizer_bytes,
        ", \"weight_bytes\": ", r.memory.weight_bytes(), ", \"tokens_per_s\": ", fmt("%.1f", r.tokens / r.seconds),
        "}\n");
  examples::write_file(log_path, log, kProgram);

  std::vector<svg::Series> train_series, valid_series;
  for (const Run& r : runs) {
    train_series.push_back({.name = r.name, .points = r.train_curve});
    valid_series.push_back({.name = r.name, .points = r.valid_curve});
  }
  valid_series.push_back({.name = "base (fp32)",
                          .points = {{0.0, base_fp32}, {static_cast<double>(opt.steps), base_fp32}},
                          .dashed = true});
  examples::write_file(opt.out / "curves.svg",
                       svg::render({{"training loss (EMA), headword -> definition", "step", "loss", train_series},
                                    {"validation loss (definition tokens)", "step", "loss", valid_series}}),
                       kProgram);
  std::printf("\nwrote %s (log), %s (plot), %s and adapter_config.json in %s\n", log_path.string().c_str(),
              (opt.out / "curves.svg").string().c_str(), adapter_path.string().c_str(), duration(since(start)).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  cli::Parser p(kProgram, kUsage);
  p.value("--checkpoint", opt.checkpoint);
  p.value("--corpus", opt.corpus);
  p.value("--out", opt.out);
  p.number("--steps", opt.steps, {.min = 1});
  p.number("--full-steps", opt.full_steps, {.min = -1});
  p.number("--batch", opt.batch, {.min = 1});
  p.number("--max-len", opt.max_len, {.min = 8});
  p.number("--r", opt.r, {.min = 1});
  p.number("--alpha", opt.alpha, {.min = 0});
  p.number("--lora-dropout", opt.lora_dropout, {.min = 0, .max = 0.99});
  p.number("--lr", opt.lr, {.min = 0});
  p.number("--full-lr", opt.full_lr, {.min = 0});
  p.number("--log-every", opt.log_every, {.min = 1});
  p.number("--eval-every", opt.eval_every, {.min = 1});
  p.number("--valid-limit", opt.valid_limit);
  p.number("--generate", opt.generate);
  p.number("--threads", opt.threads, {.min = 0});
  p.number("--seed", opt.seed);
  return p.run(argc, argv, [&] { return run(opt); });
}
