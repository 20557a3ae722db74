// nexa-spec: the Nexa-Spec spectral encoder (issue 7, seed 004) trained by masked peak modelling
// on real MS/MS spectra. Every MGF file of --spectra (scripts/fetch-spectra.sh: a BSA digest run
// from pymzml's test data and Casanovo's sample spectra) is read; each spectrum becomes
// [CLS] [PREC] peak tokens (SpecEmbedding: Fourier features of m/z, an intensity MLP, token
// types); an encoder of pre-LN blocks with LocalGlobalAttention<64> ([CLS] and [PREC] global)
// reads them, and MaskedPeakHead predicts the m/z bin and the intensity bin of ~15% masked peaks.
// Spectra are split into training and validation by a hash of their id.
// It prints a progress line, writes train.jsonl, curves.svg (masked loss and validation accuracy
// against the baselines), summary.json and checkpoint/ (nexa_spec.safetensors, config.json), and
// ends with a table: validation accuracy of the model against a frequency baseline (always the
// training set's most frequent bin) and a neighbour baseline (the bins of the midpoint of the
// nearest unmasked peaks), spectra counts and time.
//
//   nexa-spec [--spectra DIR|FILE] [--out DIR] [--steps N] [--threads N] ...   (--help lists all)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "../common/files.hpp"
#include "../common/format.hpp"
#include "../common/svg_plot.hpp"
#include "../common/threads.hpp"
#include "mgf.hpp"
#include "nexa/io/json.hpp"
#include "nexa/io/safetensors.hpp"
#include "nexa/train/train.hpp"
#include "peaks.hpp"

namespace {

namespace fs = std::filesystem;
using nexa::index_t;
using nexa::detail::concat;
using Clock = std::chrono::steady_clock;
using Model = nexa::SpecEncoder<>;
constexpr index_t kWindow = 64;  // SpecEncoder<>'s default: the seed's local window of 64 peaks

fs::path default_spectra() {
  if (const char* env = std::getenv("NEXA_SPECTRA_DIR"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : ".") / ".cache/nexa/spectra";
}

struct Options {
  fs::path spectra = default_spectra();
  fs::path out = "nexa_spec_run";
  index_t steps = 600;
  index_t batch = 16;
  index_t max_peaks = 126;  // + [CLS] and [PREC]: at most 128 tokens
  index_t min_peaks = 5;
  index_t d_model = 128, layers = 3, heads = 4, d_ff = 256, frequencies = 32;
  double dropout = 0.1;
  nexa_spec::Binning binning;
  double mask_fraction = 0.15;
  bool untied_mz = false;
  double lr = 2e-3, weight_decay = 0.1, clip = 1.0;
  index_t warmup = 30;
  index_t log_every = 10, eval_every = 50;
  std::uint64_t valid_every = 10;  // one spectrum in N (by hash) for validation
  index_t valid_draws = 4;         // masks drawn per validation spectrum
  int threads = 0;
  std::uint64_t seed = 1;
};

constexpr const char* kUsage =
    "usage: nexa-spec [--spectra DIR|FILE] [--out DIR] [--steps N] [--threads N] [options]\n"
    "Trains the Nexa-Spec encoder (local-global attention over peak tokens) by masked peak\n"
    "modelling on MS/MS spectra in MGF files, and compares it with frequency and neighbour baselines.\n"
    "  --spectra DIR|FILE  an MGF file, or a folder whose *.mgf files are all read\n"
    "                      [$NEXA_SPECTRA_DIR or ~/.cache/nexa/spectra: scripts/fetch-spectra.sh]\n"
    "  --out DIR           train.jsonl, curves.svg, summary.json, checkpoint/     [nexa_spec_run]\n"
    "  --steps N           optimizer steps                                        [600]\n"
    "  --batch N           spectra per batch                                      [16]\n"
    "  --threads N         CPU threads (0: all cores)                             [0]\n"
    "  --max-peaks N       most intense peaks kept per spectrum                   [126]\n"
    "  --min-peaks N       spectra with fewer peaks are left out                  [5]\n"
    "  --d-model N --layers N --heads N --d-ff N   encoder size                   [128 3 4 256]\n"
    "  --frequencies N     Fourier frequencies of m/z (features: 2N)              [32]\n"
    "  --dropout P         dropout in the encoder                                 [0.1]\n"
    "  --mz-bin-width DA --mz-bins N --intensity-bins N   targets                 [1 2048 8]\n"
    "  --mask-fraction P   peaks masked per spectrum                              [0.15]\n"
    "  --untied-mz         free m/z class weights instead of the embedding's m/z projection of\n"
    "                      each bin centre (the tied decoder, the default)\n"
    "  --lr X --warmup N --weight-decay X --clip X   AdamW, cosine schedule       [2e-3 30 0.1 1]\n"
    "  --log-every N --eval-every N   progress line and validation period         [10 50]\n"
    "  --valid-every N     one spectrum in N (by a hash of its id) is validation   [10]\n"
    "  --valid-draws N     masks drawn per validation spectrum                    [4]\n"
    "  --seed N            initialisation, masks and batch order                  [1]\n";

using examples::duration;
using examples::fmt;

std::vector<fs::path> mgf_files(const fs::path& spectra) {
  if (!fs::is_directory(spectra)) {
    nexa::require(fs::is_regular_file(spectra), "--spectra", "no MGF file or folder at ", spectra.string(),
                  " (run scripts/fetch-spectra.sh, or give --spectra)");
    return {spectra};
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(spectra))
    if (e.is_regular_file() && e.path().extension() == ".mgf") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  nexa::require(!files.empty(), "--spectra", "no *.mgf file in ", spectra.string(),
                " (run scripts/fetch-spectra.sh, or give --spectra)");
  return files;
}

struct Split {
  std::vector<nexa_spec::Peaks> all;
  std::vector<const nexa_spec::Peaks*> train, valid;
  index_t read = 0, too_few = 0;
};

// Evaluation on fixed masks: predictions of the model and of both baselines on the same peaks.
struct Evaluation {
  double loss = 0, mz_loss = 0, intensity_loss = 0;
  nexa_spec::Accuracy model;
};

struct ValidationSet {
  std::vector<nexa_spec::Batch> batches;
  nexa_spec::Accuracy frequency, neighbour;
  index_t masked = 0;
};

ValidationSet make_validation(const Split& split, const Options& opt, const nexa_spec::FrequencyBaseline& freq) {
  ValidationSet v;
  std::vector<const nexa_spec::Peaks*> spectra;
  std::vector<std::vector<index_t>> masks;
  const auto flush = [&] {
    if (spectra.empty()) return;
    v.batches.push_back(nexa_spec::make_batch(spectra, masks));
    spectra.clear();
    masks.clear();
  };
  for (index_t draw = 0; draw < opt.valid_draws; ++draw)
    for (const nexa_spec::Peaks* p : split.valid) {
      // The same masks in every run and at every evaluation: seeded by the spectrum and the draw.
      std::mt19937_64 rng(nexa_spec::fnv1a(p->id) ^
                          (opt.seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(draw)));
      std::vector<index_t> m = nexa_spec::choose_masked(p->size(), opt.mask_fraction, rng);
      for (const index_t i : m) {
        const auto at = static_cast<std::size_t>(i);
        const auto nb = nexa_spec::neighbour_midpoint(*p, m, i, freq, opt.binning);
        v.frequency.add(freq.mz, p->mz_bins[at], freq.intensity, p->intensity_bins[at]);
        v.neighbour.add(nb.mz, p->mz_bins[at], nb.intensity, p->intensity_bins[at]);
      }
      v.masked += static_cast<index_t>(m.size());
      spectra.push_back(p);
      masks.push_back(std::move(m));
      if (static_cast<index_t>(spectra.size()) == opt.batch) flush();
    }
  flush();
  return v;
}

std::int32_t argmax_row(const float* row, index_t n) {
  return static_cast<std::int32_t>(std::max_element(row, row + n) - row);
}

void score(const nexa::MaskedPeakLogits<float>& logits, const nexa_spec::Batch& batch, nexa_spec::Accuracy& acc) {
  const index_t M = logits.mz.dim(1), I = logits.intensity.dim(1);
  for (std::size_t r = 0; r < batch.mz_targets.size(); ++r) {
    const auto row = static_cast<index_t>(r);
    acc.add(argmax_row(logits.mz.data() + row * M, M), batch.mz_targets[r],
            argmax_row(logits.intensity.data() + row * I, I), batch.intensity_targets[r]);
  }
}

nexa::MaskedPeakLoss<float> loss_of(const nexa::MaskedPeakLogits<float>& logits, const nexa_spec::Batch& batch) {
  const auto n = static_cast<index_t>(batch.mz_targets.size());
  const auto mz = nexa::Tensor<std::int32_t>::from_host({n}, batch.mz_targets);
  const auto in = nexa::Tensor<std::int32_t>::from_host({n}, batch.intensity_targets);
  return nexa::masked_peak_loss(logits, mz.cview(), in.cview());
}

Evaluation evaluate(Model& model, const ValidationSet& valid) {
  model.set_training(false);
  Evaluation e;
  double n = 0;
  for (const nexa_spec::Batch& batch : valid.batches) {
    Model::Cache cache;
    const auto logits = model.forward(batch.tokens, cache);
    const auto loss = loss_of(logits, batch);
    const auto k = static_cast<double>(batch.mz_targets.size());
    e.mz_loss += loss.mz * k;
    e.intensity_loss += loss.intensity * k;
    n += k;
    score(logits, batch, e.model);
  }
  e.mz_loss /= n;
  e.intensity_loss /= n;
  e.loss = e.mz_loss + e.intensity_loss;
  model.set_training(true);
  return e;
}

std::string config_json(const Options& opt) {
  return concat("{\"format\": \"nexa-spec/1\", \"window\": ", kWindow, ", \"d_model\": ", opt.d_model,
                ", \"layers\": ", opt.layers, ", \"heads\": ", opt.heads, ", \"d_ff\": ", opt.d_ff,
                ", \"relative_buckets\": 32, \"relative_max_distance\": 64, \"frequencies\": ", opt.frequencies,
                ", \"min_wavelength\": 1.0, \"max_wavelength\": 10000.0",
                ", \"intensity_hidden\": 32, \"token_types\": {\"peak\": 0, \"precursor\": 1, \"cls\": 2, \"mask\": 3}",
                ", \"max_peaks\": ", opt.max_peaks, ", \"intensity_input\": \"sqrt(intensity / base peak)\"",
                ", \"mz_bin_width\": ", opt.binning.mz_bin_width, ", \"mz_bins\": ", opt.binning.mz_bins,
                ", \"intensity_bins\": ", opt.binning.intensity_bins,
                ", \"intensity_bin\": \"floor(-log2(intensity / base peak))\", \"tied_mz\": ",
                opt.untied_mz ? "false" : "true", "}\n");
}

int run(const Options& opt) {
  examples::set_threads(opt.threads);
  nexa::require(opt.d_model % opt.heads == 0, "options", "--d-model (", opt.d_model,
                ") must be a multiple of --heads (", opt.heads, ")");
  const auto start = Clock::now();
  const auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };

  // Data.
  Split split;
  const std::vector<fs::path> files = mgf_files(opt.spectra);
  for (const fs::path& f : files) {
    const std::vector<nexa_spec::Spectrum> spectra = nexa_spec::read_mgf(f);
    std::printf("read %zu spectra from %s\n", spectra.size(), f.string().c_str());
    for (const nexa_spec::Spectrum& s : spectra) {
      ++split.read;
      nexa_spec::Peaks p = nexa_spec::select_peaks(s, opt.max_peaks, opt.binning);
      if (p.size() < opt.min_peaks) {
        ++split.too_few;
        continue;
      }
      split.all.push_back(std::move(p));
    }
  }
  for (const nexa_spec::Peaks& p : split.all)
    (nexa_spec::is_validation(p, opt.valid_every) ? split.valid : split.train).push_back(&p);
  nexa::require(!split.train.empty() && !split.valid.empty(), "--spectra", "need training and validation spectra, got ",
                split.train.size(), " and ", split.valid.size(), " (", split.read, " read, ", split.too_few,
                " with fewer than ", opt.min_peaks, " peaks)");
  index_t train_peaks = 0;
  for (const auto* p : split.train) train_peaks += p->size();
  const auto freq = nexa_spec::FrequencyBaseline::fit(split.train, opt.binning);
  const ValidationSet valid = make_validation(split, opt, freq);
  std::printf(
      "spectra: %lld read, %lld kept (%lld with fewer than %lld peaks left out): %zu train (%lld peaks), "
      "%zu validation (%lld masked peaks over %lld draws)\n",
      static_cast<long long>(split.read), static_cast<long long>(split.all.size()),
      static_cast<long long>(split.too_few), static_cast<long long>(opt.min_peaks), split.train.size(),
      static_cast<long long>(train_peaks), split.valid.size(), static_cast<long long>(valid.masked),
      static_cast<long long>(opt.valid_draws));
  std::printf("frequency baseline: m/z bin %d (%.0f-%.0f), intensity bin %d\n", freq.mz,
              freq.mz * opt.binning.mz_bin_width, (freq.mz + 1) * opt.binning.mz_bin_width, freq.intensity);

  // Model and optimizer.
  nexa::Rng rng(opt.seed);
  Model model(
      {.embedding = {.d_model = opt.d_model, .frequencies = opt.frequencies, .token_types = nexa_spec::kTokenTypes},
       .layers = opt.layers,
       .heads = opt.heads,
       .d_ff = opt.d_ff,
       .dropout = opt.dropout,
       .mz_bins = opt.binning.mz_bins,
       .intensity_bins = opt.binning.intensity_bins,
       .mz_bin_width = opt.binning.mz_bin_width,
       .tied_mz = !opt.untied_mz},
      rng);
  model.set_training(true);
  index_t params = 0;
  model.visit_params([&](const std::string&, auto& p) { params += p.numel(); });
  nexa::train::AdamW opt_w(
      model,
      {.lr = opt.lr, .weight_decay = opt.weight_decay, .no_weight_decay = nexa::train::no_decay_norms_and_biases});
  const nexa::train::CosineSchedule schedule{.peak_lr = opt.lr,
                                             .min_lr = opt.lr * 0.1,
                                             .warmup_steps = std::min(opt.warmup, opt.steps),
                                             .total_steps = opt.steps};

  std::string log = concat("{\"event\": \"config\", \"steps\": ", opt.steps, ", \"batch\": ", opt.batch,
                           ", \"params\": ", params, ", \"train_spectra\": ", split.train.size(),
                           ", \"valid_spectra\": ", split.valid.size(), ", \"valid_masked\": ", valid.masked,
                           ", \"threads\": ", examples::threads_in_use(), ", \"model\": ", config_json(opt));
  log.pop_back();  // config_json's newline
  log += "}\n";
  std::vector<std::pair<double, double>> train_curve, valid_curve, valid_mz, valid_int;
  std::printf(
      "model: %lld parameters (d_model %lld, %lld layers, %lld heads, d_ff %lld, window %lld, global [CLS] "
      "[PREC]); %lld steps of %lld spectra, %d threads\n",
      static_cast<long long>(params), static_cast<long long>(opt.d_model), static_cast<long long>(opt.layers),
      static_cast<long long>(opt.heads), static_cast<long long>(opt.d_ff), static_cast<long long>(kWindow),
      static_cast<long long>(opt.steps), static_cast<long long>(opt.batch), examples::threads_in_use());

  const auto record_valid = [&](index_t step) {
    const Evaluation e = evaluate(model, valid);
    valid_curve.emplace_back(step, e.loss);
    valid_mz.emplace_back(step, e.model.mz_acc());
    valid_int.emplace_back(step, e.model.intensity_acc());
    std::printf(
        "  valid @%lld: masked loss %.3f (m/z %.3f, intensity %.3f)  m/z bin acc %.3f (+-1: %.3f)  "
        "intensity bin acc %.3f\n",
        static_cast<long long>(step), e.loss, e.mz_loss, e.intensity_loss, e.model.mz_acc(), e.model.mz_within1_acc(),
        e.model.intensity_acc());
    log += concat("{\"event\": \"valid\", \"step\": ", step, ", \"loss\": ", fmt("%.5f", e.loss),
                  ", \"mz_loss\": ", fmt("%.5f", e.mz_loss), ", \"intensity_loss\": ", fmt("%.5f", e.intensity_loss),
                  ", \"mz_acc\": ", fmt("%.5f", e.model.mz_acc()),
                  ", \"mz_within1_acc\": ", fmt("%.5f", e.model.mz_within1_acc()),
                  ", \"intensity_acc\": ", fmt("%.5f", e.model.intensity_acc()), "}\n");
    return e;
  };

  // Training.
  std::mt19937_64 order_rng(opt.seed), mask_rng(opt.seed + 1);
  std::vector<std::size_t> order(split.train.size());
  std::size_t cursor = order.size();
  // Spectra per step: --batch, or the whole training set when it is smaller.
  const index_t spectra_per_step = std::min<index_t>(opt.batch, static_cast<index_t>(order.size()));
  record_valid(0);  // the untrained model: where the curves start
  const double train_start = seconds();
  double window_loss = 0, window_n = 0;
  nexa_spec::Accuracy window_acc;
  examples::write_file(opt.out / "train.jsonl", log, "nexa-spec");
  for (index_t step = 1; step <= opt.steps; ++step) {
    std::vector<const nexa_spec::Peaks*> spectra;
    std::vector<std::vector<index_t>> masks;
    while (static_cast<index_t>(spectra.size()) < spectra_per_step) {
      if (cursor == order.size()) {  // a new epoch in a new order
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[order_rng() % i]);
        cursor = 0;
      }
      const nexa_spec::Peaks* p = split.train[order[cursor++]];
      spectra.push_back(p);
      masks.push_back(nexa_spec::choose_masked(p->size(), opt.mask_fraction, mask_rng));
    }
    const nexa_spec::Batch batch = nexa_spec::make_batch(spectra, masks);
    opt_w.set_lr(schedule.lr(step - 1));
    Model::Cache cache;
    const auto logits = model.forward(batch.tokens, cache);
    const auto loss = loss_of(logits, batch);
    model.backward(loss.d_mz.cview(), loss.d_intensity.cview(), cache);
    nexa::train::clip_grad_norm(model, opt.clip);
    opt_w.step();
    opt_w.zero_grad();
    nexa::require(std::isfinite(loss.total()), "training", "the loss is not finite at step ", step, " (lower --lr)");
    window_loss += loss.total();
    window_n += 1;
    score(logits, batch, window_acc);

    if (step % opt.log_every == 0 || step == opt.steps) {
      const double elapsed = seconds() - train_start;
      const double per_step = elapsed / static_cast<double>(step);
      const double mean = window_loss / window_n;
      train_curve.emplace_back(step, mean);
      std::printf(
          "step %lld/%lld  masked loss %.3f  train acc m/z %.3f intensity %.3f  %.1f spectra/s  "
          "lr %.2e  left %s\n",
          static_cast<long long>(step), static_cast<long long>(opt.steps), mean, window_acc.mz_acc(),
          window_acc.intensity_acc(), static_cast<double>(step) * static_cast<double>(spectra_per_step) / elapsed,
          opt_w.lr(), duration(per_step * static_cast<double>(opt.steps - step)).c_str());
      std::fflush(stdout);
      log += concat("{\"event\": \"train\", \"step\": ", step, ", \"loss\": ", fmt("%.5f", mean),
                    ", \"mz_acc\": ", fmt("%.5f", window_acc.mz_acc()),
                    ", \"intensity_acc\": ", fmt("%.5f", window_acc.intensity_acc()),
                    ", \"lr\": ", fmt("%.6g", opt_w.lr()), ", \"seconds\": ", fmt("%.2f", seconds()), "}\n");
      window_loss = window_n = 0;
      window_acc = {};
    }
    if (step % opt.eval_every == 0 && step != opt.steps) record_valid(step);
    if (step % opt.log_every == 0) examples::write_file(opt.out / "train.jsonl", log, "nexa-spec");
  }
  const double train_seconds = seconds() - train_start;
  const Evaluation final_eval = record_valid(opt.steps);

  // Outputs: log, plot, checkpoint, summary.
  const auto summary =
      concat("{\"train_spectra\": ", split.train.size(), ", \"valid_spectra\": ", split.valid.size(),
             ", \"valid_masked_peaks\": ", valid.masked, ", \"params\": ", params, ", \"steps\": ", opt.steps,
             ", \"train_seconds\": ", fmt("%.1f", train_seconds), ", \"valid_loss\": ", fmt("%.5f", final_eval.loss),
             ", \"model\": {\"mz_acc\": ", fmt("%.5f", final_eval.model.mz_acc()),
             ", \"mz_within1_acc\": ", fmt("%.5f", final_eval.model.mz_within1_acc()),
             ", \"intensity_acc\": ", fmt("%.5f", final_eval.model.intensity_acc()),
             "}, \"frequency_baseline\": {\"mz_acc\": ", fmt("%.5f", valid.frequency.mz_acc()),
             ", \"mz_within1_acc\": ", fmt("%.5f", valid.frequency.mz_within1_acc()),
             ", \"intensity_acc\": ", fmt("%.5f", valid.frequency.intensity_acc()),
             "}, \"neighbour_baseline\": {\"mz_acc\": ", fmt("%.5f", valid.neighbour.mz_acc()),
             ", \"mz_within1_acc\": ", fmt("%.5f", valid.neighbour.mz_within1_acc()),
             ", \"intensity_acc\": ", fmt("%.5f", valid.neighbour.intensity_acc()), "}}\n");
  log += concat("{\"event\": \"final\", ", summary.substr(1));
  examples::write_file(opt.out / "train.jsonl", log, "nexa-spec");
  examples::write_file(opt.out / "summary.json", summary, "nexa-spec");

  const double last = static_cast<double>(opt.steps);
  const auto flat = [&](double y) { return std::vector<std::pair<double, double>>{{0, y}, {last, y}}; };
  svg::Chart loss_chart{
      .title = "masked peak loss (m/z + intensity cross-entropy)", .x_label = "step", .y_label = "loss", .series = {}};
  loss_chart.series.push_back({.name = "train (mean per log period)", .points = train_curve});
  loss_chart.series.push_back({.name = "validation", .points = valid_curve});
  svg::Chart acc_chart{
      .title = "validation masked-peak accuracy", .x_label = "step", .y_label = "accuracy", .series = {}};
  acc_chart.series.push_back({.name = "model: m/z bin", .points = valid_mz, .color = "#1f77b4"});
  acc_chart.series.push_back({.name = "model: intensity bin", .points = valid_int, .color = "#d62728"});
  acc_chart.series.push_back({.name = "frequency baseline: m/z",
                              .points = flat(valid.frequency.mz_acc()),
                              .color = "#1f77b4",
                              .dashed = true});
  acc_chart.series.push_back({.name = "frequency baseline: intensity",
                              .points = flat(valid.frequency.intensity_acc()),
                              .color = "#d62728",
                              .dashed = true});
  acc_chart.series.push_back({.name = "neighbour baseline: m/z",
                              .points = flat(valid.neighbour.mz_acc()),
                              .color = "#2ca02c",
                              .dashed = true});
  acc_chart.series.push_back({.name = "neighbour baseline: intensity",
                              .points = flat(valid.neighbour.intensity_acc()),
                              .color = "#9467bd",
                              .dashed = true});
  examples::write_file(opt.out / "curves.svg", svg::render({loss_chart, acc_chart}), "nexa-spec");

  const fs::path ckpt = opt.out / "checkpoint";
  fs::create_directories(ckpt);
  nexa::save_safetensors(model, ckpt / "nexa_spec.safetensors");
  examples::write_file(ckpt / "config.json", config_json(opt), "nexa-spec");

  std::printf("\nmasked peak modelling, validation (%zu spectra, %lld masked peaks, %lld mask draws each):\n",
              split.valid.size(), static_cast<long long>(valid.masked), static_cast<long long>(opt.valid_draws));
  std::printf("  %-28s %12s %14s %16s\n", "predictor", "m/z bin acc", "m/z +-1 bin", "intensity bin acc");
  const auto row = [](const char* name, const nexa_spec::Accuracy& a) {
    std::printf("  %-28s %12.3f %14.3f %16.3f\n", name, a.mz_acc(), a.mz_within1_acc(), a.intensity_acc());
  };
  row("nexa-spec encoder", final_eval.model);
  row("frequency baseline", valid.frequency);
  row("neighbour-midpoint baseline", valid.neighbour);
  std::printf(
      "  masked loss %.3f (m/z %.3f, intensity %.3f); %zu train / %zu validation spectra; %lld parameters;\n"
      "  training %s (%.1f spectra/s), total %s\n",
      final_eval.loss, final_eval.mz_loss, final_eval.intensity_loss, split.train.size(), split.valid.size(),
      static_cast<long long>(params), duration(train_seconds).c_str(),
      static_cast<double>(opt.steps * spectra_per_step) / train_seconds, duration(seconds()).c_str());
  std::printf("wrote %s (train.jsonl, curves.svg, summary.json, checkpoint/)\n", opt.out.string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  cli::Parser p("nexa-spec", kUsage);
  p.value("--spectra", opt.spectra);
  p.value("--out", opt.out);
  p.number("--steps", opt.steps, {.min = 1});
  p.number("--batch", opt.batch, {.min = 1});
  p.number("--threads", opt.threads, {.min = 0});
  p.number("--max-peaks", opt.max_peaks, {.min = 1, .max = 4096});
  p.number("--min-peaks", opt.min_peaks, {.min = 1});
  p.number("--d-model", opt.d_model, {.min = 1});
  p.number("--layers", opt.layers, {.min = 1});
  p.number("--heads", opt.heads, {.min = 1});
  p.number("--d-ff", opt.d_ff, {.min = 1});
  p.number("--frequencies", opt.frequencies, {.min = 1});
  p.number("--dropout", opt.dropout, {.min = 0.0, .max = 0.9});
  p.number("--mz-bin-width", opt.binning.mz_bin_width, {.min = 1e-4});
  p.number("--mz-bins", opt.binning.mz_bins, {.min = 2});
  p.number("--intensity-bins", opt.binning.intensity_bins, {.min = 2});
  p.number("--mask-fraction", opt.mask_fraction, {.min = 0.01, .max = 0.9});
  p.flag("--untied-mz", opt.untied_mz);
  p.number("--lr", opt.lr, {.min = 0.0});
  p.number("--warmup", opt.warmup, {.min = 0});
  p.number("--weight-decay", opt.weight_decay, {.min = 0.0});
  p.number("--clip", opt.clip, {.min = 0.0});
  p.number("--log-every", opt.log_every, {.min = 1});
  p.number("--eval-every", opt.eval_every, {.min = 1});
  p.number("--valid-every", opt.valid_every, {.min = 2});
  p.number("--valid-draws", opt.valid_draws, {.min = 1});
  p.number("--seed", opt.seed);
  return p.run(argc, argv, [&] { return run(opt); });
}
