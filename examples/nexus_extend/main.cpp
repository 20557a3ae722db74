// nexus-extend: adding an expert after training, the Nexus way (Gritsch et al. 2024), issue 7.
//   1. Upcycle: the three domain experts (PHYS, BIO, MAT) of a nexa-moe checkpoint become the
//      experts of MoELayer<NexusRouter<1>, T5FFN<Relu>> layers; attention, embeddings, norms and
//      the LM head are copied. Each expert's domain embedding is the mean MiniLM sentence
//      embedding of a sample of its domain's training definitions. The routers' projections are
//      fresh, so they are trained (alone, everything else frozen) on the three domains, on the
//      LM loss, token by token.
//   2. Extend: the MED domain embedding (from med_train.jsonl) adds a fourth expert to every layer
//      (MoELayer::add_expert; the router scores it through its trained projection, no retraining),
//      its weights a copy of the expert whose domain embedding is closest. Measured before any
//      fine-tuning: MED routing accuracy and perplexity, the old domains' perplexity.
//   3. Fine-tune on a limited MED budget: only the MED expert and the routers' projections train,
//      on batches that mix MED definitions with replayed PHYS/BIO/MAT ones. Measured again.
//      --replay-trains routers: the replayed rows train the routers only (a pass with the MED
//      expert frozen, then a pass over the MED rows); --route-balance: the routers' cross-entropy
//      weighs each domain of a batch alike.
// It prints progress lines and a final table, writes train.jsonl, curves.svg and the extended
// checkpoint (checkpoint/).
//
//   nexus-extend --checkpoint DIR --corpus DIR [--minilm DIR] [--out DIR] [--threads N] ...  (--help)
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "../common/files.hpp"
#include "../common/format.hpp"
#include "../common/svg_plot.hpp"
#include "../common/threads.hpp"
#include "../nexa_moe/checkpoint.hpp"
#include "../nexa_moe/data.hpp"
#include "domain_data.hpp"
#include "nexa/train/train.hpp"
#include "nexus_checkpoint.hpp"
#include "nexus_model.hpp"

namespace {

namespace fs = std::filesystem;
using nexa::index_t;
using nexus_extend::NexusLM;
using Clock = std::chrono::steady_clock;

constexpr const char* kProgram = "nexus-extend";
const std::vector<std::string> kDomains = {"PHYS", "BIO", "MAT", "MED"};
constexpr std::size_t kOld = 3;  // PHYS, BIO, MAT: the checkpoint's experts
constexpr std::size_t kMed = 3;  // MED's domain index and its expert's

fs::path default_minilm() {
  if (const char* env = std::getenv("NEXA_MINILM_DIR"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : ".") / ".cache/nexa/all-MiniLM-L6-v2";
}

struct Options {
  fs::path checkpoint = "nexa_moe_run/checkpoint";
  fs::path corpus = "gcide_corpus";
  fs::path minilm = default_minilm();
  fs::path out = "nexus_extend_run";
  std::size_t embed_texts = 128;  // definitions per domain for its domain embedding
  index_t router_steps = 100;     // stage 1
  index_t med_steps = 80;         // stage 3
  std::size_t med_budget = 500;   // MED training definitions fine-tuning may use
  index_t batch = 24;
  double med_share = 0.5;  // share of a fine-tuning batch from MED; the rest replays the old domains
  double router_lr = 1e-2, ft_router_lr = 3e-4, expert_lr = 1e-3, clip = 1.0;
  double route_supervision = 1.0;    // weight of the routers' cross-entropy on the domain labels (0: LM loss only)
  double ft_route_supervision = -1;  // its weight in stage 3 (< 0: route_supervision)
  bool route_balance = false;        // the cross-entropy weighs every domain of a batch alike (not every token)
  std::string init = "closest";      // the MED expert's initial weights: closest or mean
  // What the replayed PHYS/BIO/MAT rows train in stage 3: all (the MED expert and the routers) or
  // routers (the MED expert learns from the MED rows alone).
  std::string replay_trains = "all";
  // score_scale 30: the fresh projection's expert embeddings are tiny, so at scale 1 every
  // token's top-1 probability stays near 1/E for many steps (the experts' outputs scaled down).
  nexus_extend::RouterOptions router{.score_scale = 30.0, .load_balance_coef = 1e-2, .z_loss_coef = 1e-3};
  std::size_t max_len = 64;
  std::size_t valid_limit = 200;    // definitions per domain in the stage evaluations (0: all)
  std::size_t eval_sequences = 48;  // per domain, for the curves
  index_t eval_every = 25, log_every = 10;
  bool no_reference = false;  // skip evaluating the nexa-moe checkpoint itself
  int threads = 0;
  std::uint64_t seed = 1;
};

constexpr const char* kUsage =
    "usage: nexus-extend [--checkpoint DIR] [--corpus DIR] [--minilm DIR] [--out DIR] [options]\n"
    "Upcycles a nexa-moe checkpoint's PHYS/BIO/MAT experts into a Nexus MoE (routers built from MiniLM\n"
    "domain embeddings), adds a MED expert from the MED domain embedding, fine-tunes it on a limited\n"
    "MED budget, and reports MED routing accuracy and perplexity, and the old domains' perplexity.\n"
    "  --checkpoint DIR    nexa-moe checkpoint (config.json, nexa_moe.safetensors)  [nexa_moe_run/checkpoint]\n"
    "  --corpus DIR        nexa-gcide-corpus output (train/valid, med_train/med_valid) [gcide_corpus]\n"
    "  --minilm DIR        all-MiniLM-L6-v2 [$NEXA_MINILM_DIR or ~/.cache/nexa/all-MiniLM-L6-v2]\n"
    "  --out DIR           train.jsonl, curves.svg, checkpoint/                  [nexus_extend_run]\n"
    "  --embed-texts N     definitions per domain averaged into its domain embedding [128]\n"
    "  --router-steps N    stage 1: steps training the routers on PHYS/BIO/MAT     [100]\n"
    "  --med-steps N       stage 3: fine-tuning steps (MED expert and routers)     [80]\n"
    "  --med-budget N      MED training definitions fine-tuning may use            [500]\n"
    "  --med-share X       share of each fine-tuning batch from MED (rest: replay) [0.5]\n"
    "  --batch N           definitions per batch                                   [24]\n"
    "  --router-lr X --ft-router-lr X --expert-lr X   AdamW learning rates:\n"
    "                      routers in stage 1, routers and MED expert in stage 3   [1e-2 3e-4 1e-3]\n"
    "  --route-supervision X  weight of the routers' token-level cross-entropy on the domain\n"
    "                      labels (the definition's domain's expert); 0: the LM loss alone [1]\n"
    "  --replay-trains S   what the replayed rows train in stage 3: all (the MED expert and the\n"
    "                      routers) or routers (the MED expert learns from MED rows only) [all]\n"
    "  --ft-route-supervision X  its weight in stage 3 (default: --route-supervision's)\n"
    "  --route-balance     the routing cross-entropy weighs each domain of a batch alike, not each\n"
    "                      token (else a domain with half the rows becomes the routers' prior)\n"
    "  --init S            MED expert's start: closest (copy of the expert whose domain\n"
    "                      embedding is closest) or mean (mean of the experts)     [closest]\n"
    "  --score-scale X --load-balance X --z-loss X   router: logit scale, Switch and z-loss weights [30 0.01 0.001]\n"
    "  --valid-limit N     definitions per domain in the stage evaluations (0: all) [200]\n"
    "  --eval-every N --log-every N   validation-curve and progress-line periods  [25 10]\n"
    "  --eval-sequences N  definitions per domain for each validation-curve point [48]\n"
    "  --no-reference      skip evaluating the nexa-moe checkpoint itself\n"
    "  --threads N         CPU threads (0: all cores)                              [0]\n"
    "  --seed N                                                                     [1]\n";

using examples::duration;
using examples::fmt;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

using nexa_moe::token_batch;

// Validation loss per domain and the routing of every layer.
struct Evaluation {
  std::string name;
  std::vector<double> sum = std::vector<double>(kDomains.size(), 0.0), targets = sum;
  nexus_extend::RouteCounter routes{1, kDomains.size(), kDomains.size()};
  bool has_med_expert = false;
  [[nodiscard]] double loss(std::size_t d) const { return targets[d] > 0 ? sum[d] / targets[d] : NAN; }
  [[nodiscard]] double old_loss() const {
    double s = 0, n = 0;
    for (std::size_t d = 0; d < kOld; ++d) s += sum[d], n += targets[d];
    return n > 0 ? s / n : NAN;
  }
  [[nodiscard]] double old_routing() const {  // mean over the old domains of their routing accuracy
    double a = 0;
    for (std::size_t d = 0; d < kOld; ++d) a += routes.accuracy(d);
    return a / static_cast<double>(kOld);
  }
};

// The evaluation sets: untagged validation definitions per domain, in file order.
struct ValidSets {
  std::vector<std::vector<lm_data::Sample>> samples;
  std::vector<lm_data::Batcher> batches;
};

int run(const Options& opt) {
  examples::set_threads(opt.threads);
  nexa::require(opt.init == "closest" || opt.init == "mean", "--init", "expected closest or mean, got '", opt.init,
                "'");
  nexa::require(opt.replay_trains == "all" || opt.replay_trains == "routers", "--replay-trains",
                "expected all or routers, got '", opt.replay_trains, "'");
  const auto start = Clock::now();

  // --- the source checkpoint, its vocabulary and the data -------------------------------------
  const nexa_moe::Checkpoint ckpt = nexa_moe::Checkpoint::open(opt.checkpoint);
  nexa::require(ckpt.domains == std::vector<std::string>(kDomains.begin(), kDomains.begin() + kOld), "--checkpoint",
                opt.checkpoint.string(), ": expected the domains PHYS, BIO, MAT (a nexa-moe checkpoint)");
  const nexa::WordPieceTokenizer wordpiece = ckpt.classifier_vocab();
  const lm_data::Vocab vocab = lm_data::Vocab::load(ckpt.dir / "vocab.txt", wordpiece);
  nexa::require(vocab.size() == ckpt.lm.vocab, "--checkpoint", "vocab.txt has ", vocab.size(),
                " entries, config.json says ", ckpt.lm.vocab);

  std::vector<std::vector<lm_data::Sample>> train(kDomains.size());
  for (auto& s : nexa_moe::routed_samples(opt.corpus / "train.jsonl"))
    train[static_cast<std::size_t>(s.domain)].push_back(std::move(s));
  for (auto& s : lm_data::read_split(opt.corpus / "med_train.jsonl"))
    if (s.domain == static_cast<std::int32_t>(kMed)) train[kMed].push_back(std::move(s));
  ValidSets valid;
  valid.samples.resize(kDomains.size());
  std::vector<lm_data::Sample> valid_all = nexa_moe::routed_samples(opt.corpus / "valid.jsonl");
  for (auto& s : lm_data::read_split(opt.corpus / "med_valid.jsonl"))
    if (s.domain == static_cast<std::int32_t>(kMed)) valid_all.push_back(std::move(s));
  for (auto& s : valid_all) {
    auto& v = valid.samples[static_cast<std::size_t>(s.domain)];
    if (opt.valid_limit == 0 || v.size() < opt.valid_limit) v.push_back(std::move(s));
  }
  for (std::size_t d = 0; d < kDomains.size(); ++d) {
    nexa::require(!train[d].empty() && !valid.samples[d].empty(), "--corpus", opt.corpus.string(), ": no ", kDomains[d],
                  " definitions in the training or validation split");
    valid.batches.emplace_back(
        lm_data::make_sequences(vocab, valid.samples[d], {.max_len = opt.max_len, .with_tag = false}),
        lm_data::BatchOptions{.batch_size = 64, .shuffle = false});
  }
  // The MED budget: evenly spread over med_train.jsonl.
  std::vector<lm_data::Sample> med_budget;
  for (std::size_t i = 0, n = std::min(opt.med_budget, train[kMed].size()); i < n; ++i)
    med_budget.push_back(train[kMed][i * train[kMed].size() / n]);
  std::printf(
      "%s: checkpoint %s (d_model %lld, %lld layers, d_ff %lld, vocabulary %d); training definitions PHYS %zu, BIO "
      "%zu, MAT %zu, MED %zu (fine-tuning budget %zu); validation %zu / %zu / %zu / %zu; %d threads\n",
      kProgram, opt.checkpoint.string().c_str(), static_cast<long long>(ckpt.lm.d_model),
      static_cast<long long>(ckpt.lm.layers), static_cast<long long>(ckpt.lm.d_ff), vocab.size(), train[0].size(),
      train[1].size(), train[2].size(), train[3].size(), med_budget.size(), valid.samples[0].size(),
      valid.samples[1].size(), valid.samples[2].size(), valid.samples[3].size(), examples::threads_in_use());

  const double ft_route_supervision = opt.ft_route_supervision < 0 ? opt.route_supervision : opt.ft_route_supervision;
  std::string log;
  const fs::path log_path = opt.out / "train.jsonl";
  log += nexa::detail::concat(
      "{\"event\": \"config\", \"checkpoint\": ", nexa::json::quote(opt.checkpoint.string()),
      ", \"embed_texts\": ", opt.embed_texts, ", \"router_steps\": ", opt.router_steps,
      ", \"med_steps\": ", opt.med_steps, ", \"med_budget\": ", med_budget.size(), ", \"med_share\": ", opt.med_share,
      ", \"batch\": ", opt.batch, ", \"router_lr\": ", opt.router_lr, ", \"ft_router_lr\": ", opt.ft_router_lr,
      ", \"expert_lr\": ", opt.expert_lr, ", \"route_supervision\": ", opt.route_supervision,
      ", \"ft_route_supervision\": ", ft_route_supervision,
      ", \"route_balance\": ", opt.route_balance ? "true" : "false", ", \"init\": \"", opt.init,
      "\", \"replay_trains\": \"", opt.replay_trains, "\", \"score_scale\": ", opt.router.score_scale,
      ", \"load_balance_coef\": ", opt.router.load_balance_coef, ", \"z_loss_coef\": ", opt.router.z_loss_coef,
      ", \"threads\": ", examples::threads_in_use(), ", \"seed\": ", opt.seed, "}\n");
  const auto save_log = [&] { examples::write_file(log_path, log, kProgram); };

  // --- domain embeddings -----------------------------------------------------------------------
  auto t0 = Clock::now();
  nexa::SentenceEncoder encoder = nexa::SentenceEncoder::from_directory(opt.minilm);
  std::vector<std::vector<std::string>> texts;
  for (std::size_t d = 0; d < kDomains.size(); ++d)
    texts.push_back(nexus_extend::spread_texts(train[d], opt.embed_texts));
  const nexa::Tensor<float> embeddings = nexus_extend::domain_embeddings(encoder, texts);  // [4, 384]
  std::printf("domain embeddings: mean MiniLM sentence embedding of %zu training definitions per domain (%s)\n",
              texts[0].size(), duration(since(t0)).c_str());
  std::printf("cosine similarity   PHYS    BIO    MAT    MED\n");
  std::string cos_json = "[";
  for (index_t a = 0; a < 4; ++a) {
    std::printf("  %-16s", kDomains[static_cast<std::size_t>(a)].c_str());
    cos_json += a ? ", [" : "[";
    for (index_t b = 0; b < 4; ++b) {
      const double c = nexus_extend::row_cosine(embeddings, a, b);
      std::printf(" %6.3f", c);
      cos_json += (b ? ", " : "") + fmt("%.4f", c);
    }
    cos_json += "]";
    std::printf("\n");
  }
  log += "{\"event\": \"domain_embeddings\", \"texts_per_domain\": " + std::to_string(texts[0].size()) +
         ", \"cosine\": " + cos_json + "]}\n";
  nexa::Tensor<float> old_embeddings({static_cast<index_t>(kOld), encoder.dim()});
  std::copy_n(embeddings.data(), old_embeddings.numel(), old_embeddings.data());
  const nexa::TensorView<const float> med_embedding =
      embeddings.cview().slice_rows(static_cast<index_t>(kMed), static_cast<index_t>(kMed) + 1);

  // --- evaluation --------------------------------------------------------------------------------
  const auto evaluate = [&](auto& model, std::string name, std::size_t limit, index_t experts) {
    Evaluation ev;
    ev.name = std::move(name);
    ev.has_med_expert = experts > static_cast<index_t>(kMed);
    ev.routes = nexus_extend::RouteCounter(static_cast<std::size_t>(ckpt.lm.layers), kDomains.size(),
                                           static_cast<std::size_t>(experts));
    model.set_training(false);
    for (std::size_t d = 0; d < kDomains.size(); ++d) {
      std::size_t seen = 0;
      for (const auto& indices : valid.batches[d].epoch(0)) {
        if (limit > 0 && seen >= limit) break;
        const std::size_t n = limit > 0 ? std::min(indices.size(), limit - seen) : indices.size();
        const std::span<const std::size_t> take(indices.data(), n);
        seen += n;
        const lm_data::Batch b = valid.batches[d].batch(take);
        const auto on_layer = [&](std::size_t l, auto& cache) { ev.routes.add(l, cache, b); };
        nexa_moe::StepLoss l;
        if constexpr (std::same_as<std::decay_t<decltype(model)>, nexa_moe::NexaMoeLM>) {
          const nexa::SequenceBatch rb =
              nexa_moe::classifier_batch(wordpiece, valid.samples[d], take, ckpt.classifier_max_len, false);
          l = model.step(rb, token_batch(b), false, on_layer);
        } else {
          l = model.step(token_batch(b), false, on_layer);
        }
        ev.sum[d] += l.lm * static_cast<double>(l.targets);
        ev.targets[d] += static_cast<double>(l.targets);
      }
    }
    model.set_training(true);
    return ev;
  };
  std::vector<Evaluation> table;
  const auto log_eval = [&](const Evaluation& ev) {
    std::vector<double> losses, acc;
    for (std::size_t d = 0; d < kDomains.size(); ++d) {
      losses.push_back(ev.loss(d));
      acc.push_back(d < kOld || ev.has_med_expert ? ev.routes.accuracy(d) : NAN);
    }
    std::string per_layer;
    for (std::size_t l = 0; l < ev.routes.layers(); ++l) {
      per_layer += l ? ", [" : "[";
      for (std::size_t d = 0; d < kDomains.size(); ++d)
        per_layer += (d ? ", " : "") + (d < kOld || ev.has_med_expert ? fmt("%.4f", ev.routes.accuracy(l, d)) : "null");
      per_layer += "]";
    }
    const auto arr = [](const std::vector<double>& v) {
      std::string s = "[";
      for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + (std::isnan(v[i]) ? "null" : fmt("%.5f", v[i]));
      return s + "]";
    };
    log +=
        nexa::detail::concat("{\"event\": \"eval\", \"stage\": \"", ev.name,
                             "\", \"domains\": [\"PHYS\", \"BIO\", \"MAT\", \"MED\"], \"valid_loss\": ", arr(losses),
                             ", \"valid_loss_old\": ", fmt("%.5f", ev.old_loss()), ", \"routing_accuracy\": ", arr(acc),
                             ", \"routing_accuracy_per_layer\": [", per_layer, "]}\n");
    save_log();
  };
  const auto stage_eval = [&](auto& model, const std::string& name, index_t experts) {
    const auto te = Clock::now();
    table.push_back(evaluate(model, name, opt.valid_limit, experts));
    log_eval(table.back());
    const Evaluation& ev = table.back();
    std::printf(
        "  [%s] ppl PHYS %.1f BIO %.1f MAT %.1f MED %.1f | routing accuracy PHYS %.3f BIO %.3f MAT %.3f%s (%s)\n",
        name.c_str(), std::exp(ev.loss(0)), std::exp(ev.loss(1)), std::exp(ev.loss(2)), std::exp(ev.loss(3)),
        ev.routes.accuracy(0), ev.routes.accuracy(1), ev.routes.accuracy(2),
        ev.has_med_expert ? (" MED " + fmt("%.3f", ev.routes.accuracy(kMed))).c_str() : "",
        duration(since(te)).c_str());
    std::fflush(stdout);
  };

  if (!opt.no_reference) {
    std::printf("evaluating the nexa-moe checkpoint itself (BERT router, one expert per definition)...\n");
    std::fflush(stdout);
    nexa_moe::NexaMoeLM reference = ckpt.model();
    stage_eval(reference, "nexa-moe (source)", static_cast<index_t>(kOld));
  }

  // --- stage 1: upcycle and train the routers --------------------------------------------------
  nexa::Rng rng(opt.seed);
  NexusLM model = nexus_extend::upcycle(ckpt, old_embeddings, opt.router, rng);
  std::printf("upcycled: %lld Nexus layers of %lld experts, domain embeddings %lld-d, fresh router projections\n",
              static_cast<long long>(ckpt.lm.layers), static_cast<long long>(kOld),
              static_cast<long long>(encoder.dim()));
  stage_eval(model, "nexus, fresh routers", static_cast<index_t>(kOld));

  // Curves over one step axis: stage 1 then stage 3.
  std::vector<std::vector<std::pair<double, double>>> loss_curve(kDomains.size()), route_curve(kDomains.size());
  const auto curve_point = [&](double x, index_t experts, const std::string& stage) {
    const Evaluation ev = evaluate(model, "curve", opt.eval_sequences, experts);
    std::string losses, acc;
    for (std::size_t d = 0; d < kDomains.size(); ++d) {
      loss_curve[d].emplace_back(x, ev.loss(d));
      const bool routed = d < kOld || ev.has_med_expert;
      if (routed) route_curve[d].emplace_back(x, ev.routes.accuracy(d));
      losses += (d ? ", " : "") + fmt("%.5f", ev.loss(d));
      acc += (d ? ", " : "") + (routed ? fmt("%.4f", ev.routes.accuracy(d)) : "null");
    }
    log += nexa::detail::concat("{\"event\": \"valid\", \"stage\": \"", stage, "\", \"step\": ", x,
                                ", \"definitions_per_domain\": ", opt.eval_sequences, ", \"valid_loss\": [", losses,
                                "], \"routing_accuracy\": [", acc, "]}\n");
  };

  const auto set_med_expert_trainable = [&](bool on) {
    model.visit_params([&](const std::string& name, auto& p) {
      if (nexus_extend::is_expert_param(name, static_cast<index_t>(kMed))) p.set_trainable(on);
    });
  };

  // One training stage: `batches` for `steps` steps; the optimizers step the trainable parameters.
  const auto train_stage = [&](const std::string& stage, nexus_extend::MixedBatches& batches, index_t steps,
                               std::vector<nexa::train::AdamW>& optimizers, const std::vector<double>& lrs, double x0,
                               index_t experts, bool replay_routers_only, double route_supervision) {
    const nexa::train::CosineSchedule schedule{
        .peak_lr = 1.0, .min_lr = 0.1, .warmup_steps = std::min<index_t>(10, steps), .total_steps = steps};
    const auto ts = Clock::now();
    double tokens = 0, train_seconds = 0, loss_ema = NAN;
    double top_weight = 0, top_weight_n = 0;  // the routers' mean top-1 probability (confidence)
    nexus_extend::RouteCounter window(static_cast<std::size_t>(ckpt.lm.layers), kDomains.size(),
                                      static_cast<std::size_t>(experts));
    curve_point(x0, experts, stage);
    for (index_t step = 1; step <= steps; ++step) {
      const auto t_step = Clock::now();
      const lm_data::Batch b = batches.next();
      double supervised = 0;  // the routing cross-entropy, averaged over layers
      // The routing cross-entropy takes its token weights from the whole batch, so its parts
      // (replay, MED) add up to the batch's; the LM loss is a mean per part, so with
      // --replay-trains routers the two parts weigh alike and the LM term about twice the routing
      // term.
      const std::vector<double> divisors =
          nexus_extend::routing_divisors(b, static_cast<std::size_t>(experts), opt.route_balance);
      const auto run_rows = [&](const lm_data::Batch& rows) {
        return model.step(token_batch(rows), true, [&](std::size_t layer, auto& cache) {
          window.add(layer, cache, rows);
          const auto& w = cache.router.routing.weights;
          for (index_t t = 0; t < w.numel(); ++t)
            if (rows.mask.data()[t]) top_weight += w.data()[t], top_weight_n += 1;
          if (route_supervision > 0)
            supervised += nexus_extend::supervise_routing(model.stack.blocks[layer].ffn.router, cache.router, rows,
                                                          route_supervision, divisors) /
                          static_cast<double>(ckpt.lm.layers);
        });
      };
      nexa_moe::StepLoss l;
      if (!replay_routers_only) {
        l = run_rows(b);
      } else {
        // The replayed rows first, with the MED expert frozen (it gets no gradient from them; the
        // routers do); then the MED rows with it trainable again (fresh, zeroed gradient).
        const auto [med, replay] = batches.split(b, static_cast<std::int32_t>(kMed));
        std::array<nexa_moe::StepLoss, 2> parts{};
        if (replay.size() > 0) {
          set_med_expert_trainable(false);
          parts[0] = run_rows(replay);
          set_med_expert_trainable(true);
        }
        if (med.size() > 0) parts[1] = run_rows(med);
        for (const auto& p : parts) {
          l.targets += p.targets;
          l.lm += p.lm * static_cast<double>(p.targets);
          l.aux += p.aux * static_cast<double>(p.targets);
        }
        l.lm /= static_cast<double>(std::max<index_t>(l.targets, 1));
        l.aux /= static_cast<double>(std::max<index_t>(l.targets, 1));
      }
      (void)nexa::train::clip_grad_norm(model, opt.clip);
      for (std::size_t o = 0; o < optimizers.size(); ++o) {
        optimizers[o].set_lr(lrs[o] * schedule(step - 1));
        optimizers[o].step();
        optimizers[o].zero_grad();
      }
      train_seconds += since(t_step);
      tokens += static_cast<double>(b.tokens);
      loss_ema = std::isnan(loss_ema) ? l.lm : 0.9 * loss_ema + 0.1 * l.lm;
      if (step % opt.eval_every == 0 || step == steps) curve_point(x0 + static_cast<double>(step), experts, stage);
      if (step % opt.log_every == 0 || step == steps) {
        const double elapsed = since(ts);
        std::string routes, routes_json;
        for (std::size_t d = 0; d < kDomains.size(); ++d) {
          if (d >= kOld && experts <= static_cast<index_t>(kMed)) continue;
          routes += " " + kDomains[d] + " " + fmt("%.2f", window.accuracy(d));
          routes_json += (d ? ", " : "") + fmt("%.4f", window.accuracy(d));
        }
        const double confidence = top_weight_n > 0 ? top_weight / top_weight_n : 0.0;
        std::printf(
            "%s step %4lld/%lld | loss %.3f (aux %.4f, routing CE %.3f) | routing acc%s, top-1 p %.2f | %.0f "
            "tok/s | %s elapsed, %s left\n",
            stage.c_str(), static_cast<long long>(step), static_cast<long long>(steps), loss_ema, l.aux, supervised,
            routes.c_str(), confidence, tokens / train_seconds, duration(elapsed).c_str(),
            duration(elapsed / static_cast<double>(step) * static_cast<double>(steps - step)).c_str());
        std::fflush(stdout);
        log += nexa::detail::concat("{\"event\": \"train\", \"stage\": \"", stage, "\", \"step\": ", step,
                                    ", \"loss\": ", fmt("%.5f", l.lm), ", \"loss_ema\": ", fmt("%.5f", loss_ema),
                                    ", \"aux\": ", fmt("%.5f", l.aux), ", \"routing_ce\": ", fmt("%.5f", supervised),
                                    ", \"lr_scale\": ", fmt("%.4f", schedule(step - 1)), ", \"routing_accuracy\": [",
                                    routes_json, "], \"top1_weight\": ", fmt("%.4f", confidence),
                                    ", \"tokens_per_s\": ", fmt("%.1f", tokens / train_seconds), "}\n");
        top_weight = top_weight_n = 0;
        save_log();
        window = nexus_extend::RouteCounter(static_cast<std::size_t>(ckpt.lm.layers), kDomains.size(),
                                            static_cast<std::size_t>(experts));
      }
    }
  };

  const auto old_pools = [&](std::size_t rows) {
    std::vector<nexus_extend::MixedBatches::Pool> pools;
    for (std::size_t d = 0; d < kOld; ++d)
      pools.push_back({lm_data::make_sequences(vocab, train[d], {.max_len = opt.max_len, .with_tag = false}),
                       rows / kOld + (d < rows % kOld ? 1 : 0)});
    return pools;
  };
  const auto is_projection = [](const std::string& name) {
    return name.find(".mlp.router.projection.") != std::string::npos;
  };
  const nexa::train::AdamWConfig adamw{.lr = 1e-3, .weight_decay = 0.0};
  {
    const index_t trained = nexus_extend::train_only(model, is_projection);
    std::printf(
        "stage 1: training the routers' projections alone (%.3fM parameters) for %lld steps of %lld "
        "definitions, a third from each of PHYS, BIO, MAT\n",
        static_cast<double>(trained) * 1e-6, static_cast<long long>(opt.router_steps),
        static_cast<long long>(opt.batch));
    std::fflush(stdout);
    nexus_extend::MixedBatches batches(old_pools(static_cast<std::size_t>(opt.batch)), opt.seed);
    std::vector<nexa::train::AdamW> optimizers;
    optimizers.emplace_back(model, adamw);
    train_stage("route", batches, opt.router_steps, optimizers, {opt.router_lr}, 0.0, static_cast<index_t>(kOld), false,
                opt.route_supervision);
  }
  stage_eval(model, "nexus, routers trained", static_cast<index_t>(kOld));

  // --- stage 2: add the MED expert ---------------------------------------------------------------
  const index_t closest = nexus_extend::closest_domain(old_embeddings, med_embedding);
  nexus_extend::add_domain_expert(model, med_embedding, closest);
  if (opt.init == "mean") {
    for (auto& block : model.stack.blocks) {
      auto& layer = block.ffn;
      std::vector<std::map<std::string, const float*>> sources(kOld);
      for (std::size_t e = 0; e < kOld; ++e)
        layer.experts[e].visit_params([&](const std::string& n, auto& p) { sources[e][n] = p.value.data(); });
      layer.experts[kMed].visit_params([&](const std::string& n, auto& p) {
        for (index_t i = 0; i < p.value.numel(); ++i) {
          double s = 0;
          for (std::size_t e = 0; e < kOld; ++e) s += sources[e][n][i];
          p.value.data()[i] = static_cast<float>(s / static_cast<double>(kOld));
        }
      });
    }
  }
  std::printf(
      "added a MED expert to every layer: routed from the MED domain embedding through the trained "
      "projection; weights %s\n",
      opt.init == "closest"
          ? ("a copy of the " + kDomains[static_cast<std::size_t>(closest)] +
             " expert (closest domain embedding, cosine " +
             fmt("%.3f", nexus_extend::row_cosine(embeddings, closest, static_cast<index_t>(kMed))) + ")")
                .c_str()
          : "the mean of the three experts");
  log += nexa::detail::concat(
      "{\"event\": \"add_expert\", \"domain\": \"MED\", \"route_supervision\": ", opt.route_supervision,
      ", \"init\": \"", opt.init, "\", \"closest\": \"", kDomains[static_cast<std::size_t>(closest)], "\"}\n");
  stage_eval(model, "+MED, before fine-tuning", static_cast<index_t>(kDomains.size()));

  // --- stage 3: fine-tune on the MED budget -------------------------------------------------------
  {
    const auto med_rows = static_cast<std::size_t>(std::clamp<double>(
        std::round(opt.med_share * static_cast<double>(opt.batch)), 1.0, static_cast<double>(opt.batch)));
    std::vector<nexus_extend::MixedBatches::Pool> pools = old_pools(static_cast<std::size_t>(opt.batch) - med_rows);
    pools.push_back(
        {lm_data::make_sequences(vocab, med_budget, {.max_len = opt.max_len, .with_tag = false}), med_rows});
    nexus_extend::MixedBatches batches(std::move(pools), opt.seed + 1);
    const index_t med_params = nexus_extend::train_only(
        model, [&](const std::string& n) { return nexus_extend::is_expert_param(n, static_cast<index_t>(kMed)); });
    std::vector<nexa::train::AdamW> optimizers;
    optimizers.emplace_back(model, adamw);  // the MED expert
    (void)nexus_extend::train_only(model, is_projection);
    optimizers.emplace_back(model, adamw);  // the routers
    const index_t router_params = nexus_extend::train_only(model, [&](const std::string& n) {
      return is_projection(n) || nexus_extend::is_expert_param(n, static_cast<index_t>(kMed));
    });
    std::printf(
        "stage 3: fine-tuning the MED expert (%.3fM parameters) and the routers' projections (%.3fM) for %lld "
        "steps of %zu MED + %zu replayed PHYS/BIO/MAT definitions%s\n",
        static_cast<double>(med_params) * 1e-6, static_cast<double>(router_params - med_params) * 1e-6,
        static_cast<long long>(opt.med_steps), med_rows, static_cast<std::size_t>(opt.batch) - med_rows,
        opt.replay_trains == "routers" ? " (the replayed rows train the routers only)" : "");
    std::fflush(stdout);
    train_stage("med", batches, opt.med_steps, optimizers, {opt.expert_lr, opt.ft_router_lr},
                static_cast<double>(opt.router_steps), static_cast<index_t>(kDomains.size()),
                opt.replay_trains == "routers", ft_route_supervision);
  }
  stage_eval(model, "+MED, fine-tuned", static_cast<index_t>(kDomains.size()));

  // --- report --------------------------------------------------------------------------------------
  std::printf(
      "\nvalidation perplexity (untagged definitions: %zu PHYS, %zu BIO, %zu MAT, %zu MED) and routing "
      "accuracy (share of a domain's tokens sent to its own expert, all layers)\n",
      valid.samples[0].size(), valid.samples[1].size(), valid.samples[2].size(), valid.samples[3].size());
  std::printf("%-26s %8s %8s %8s %8s %8s %9s %9s\n", "model", "PHYS", "BIO", "MAT", "old", "MED", "old route",
              "MED route");
  for (const Evaluation& ev : table) {
    const bool by_sequence = ev.name.rfind("nexa-moe", 0) == 0;
    std::printf("%-26s %8.1f %8.1f %8.1f %8.1f %8.1f %9.3f %9s%s\n", ev.name.c_str(), std::exp(ev.loss(0)),
                std::exp(ev.loss(1)), std::exp(ev.loss(2)), std::exp(ev.old_loss()), std::exp(ev.loss(3)),
                ev.old_routing(), ev.has_med_expert ? fmt("%.3f", ev.routes.accuracy(kMed)).c_str() : "-",
                by_sequence ? "  (routed per definition)" : "");
  }
  const Evaluation& stage1 = table[table.size() - 3];
  const Evaluation& before = table[table.size() - 2];
  const Evaluation& after = table.back();
  std::printf("\nMED routing accuracy per layer: before fine-tuning");
  for (std::size_t l = 0; l < before.routes.layers(); ++l) std::printf(" %.3f", before.routes.accuracy(l, kMed));
  std::printf(", after");
  for (std::size_t l = 0; l < after.routes.layers(); ++l) std::printf(" %.3f", after.routes.accuracy(l, kMed));
  std::string shares_json = "[";
  for (const Evaluation* ev : {&before, &after}) {
    std::printf("\n\nshare of each domain's tokens per expert, %s (all layers)\n%-6s", ev->name.c_str(), "");
    for (const auto& e : kDomains) std::printf(" %7s", e.c_str());
    shares_json += ev == &before ? "[" : ", [";
    for (std::size_t d = 0; d < kDomains.size(); ++d) {
      std::printf("\n%-6s", kDomains[d].c_str());
      shares_json += d ? ", [" : "[";
      for (std::size_t e = 0; e < kDomains.size(); ++e) {
        const double share = ev->routes.share(ev->routes.layers(), d, e);
        std::printf(" %7.3f", share);
        shares_json += (e ? ", " : "") + fmt("%.4f", share);
      }
      shares_json += "]";
    }
    shares_json += "]";
  }
  shares_json += "]";
  std::printf("\n");
  const auto pct = [](double loss_new, double loss_ref) { return 100.0 * (std::exp(loss_new - loss_ref) - 1.0); };
  std::printf(
      "\nMED perplexity: %.1f with the three experts, %.1f after adding the MED expert, %.1f after fine-tuning "
      "(%+.1f%% against the three experts)\n",
      std::exp(stage1.loss(kMed)), std::exp(before.loss(kMed)), std::exp(after.loss(kMed)),
      pct(after.loss(kMed), stage1.loss(kMed)));
  std::printf(
      "old domains' perplexity after fine-tuning, against the three-expert Nexus model: PHYS %+.2f%%, BIO "
      "%+.2f%%, MAT %+.2f%%, all %+.2f%% (the Nexus paper reports about 2%% or less)\n",
      pct(after.loss(0), stage1.loss(0)), pct(after.loss(1), stage1.loss(1)), pct(after.loss(2), stage1.loss(2)),
      pct(after.old_loss(), stage1.old_loss()));
  log += nexa::detail::concat(
      "{\"event\": \"final\", \"med_ppl\": {\"three_experts\": ", fmt("%.3f", std::exp(stage1.loss(kMed))),
      ", \"before_finetune\": ", fmt("%.3f", std::exp(before.loss(kMed))),
      ", \"after_finetune\": ", fmt("%.3f", std::exp(after.loss(kMed))),
      "}, \"med_routing_accuracy\": {\"before\": ", fmt("%.4f", before.routes.accuracy(kMed)),
      ", \"after\": ", fmt("%.4f", after.routes.accuracy(kMed)), "}, \"token_shares_before_after\": ", shares_json,
      ", \"old_ppl_change_pct\": [", fmt("%.3f", pct(after.loss(0), stage1.loss(0))), ", ",
      fmt("%.3f", pct(after.loss(1), stage1.loss(1))), ", ", fmt("%.3f", pct(after.loss(2), stage1.loss(2))),
      "], \"old_ppl_change_pct_all\": ", fmt("%.3f", pct(after.old_loss(), stage1.old_loss())),
      ", \"seconds\": ", fmt("%.1f", since(start)), "}\n");
  save_log();

  // Plot: validation loss and routing accuracy per domain over both training stages.
  svg::Chart loss{.title = nexa::detail::concat("validation loss (MED expert added at step ", opt.router_steps, ")"),
                  .x_label = "step (routers on PHYS/BIO/MAT, then MED fine-tuning)",
                  .y_label = "cross-entropy",
                  .series = {}};
  svg::Chart route{
      .title = "routing accuracy per domain (all layers)", .x_label = "step", .y_label = "share", .series = {}};
  for (std::size_t d = 0; d < kDomains.size(); ++d) {
    loss.series.push_back({.name = kDomains[d], .points = loss_curve[d], .color = {}, .dashed = d == kMed});
    route.series.push_back({.name = kDomains[d], .points = route_curve[d], .color = {}, .dashed = d == kMed});
  }
  examples::write_file(opt.out / "curves.svg", svg::render({loss, route}), kProgram);

  nexus_extend::NexusCheckpoint::save(opt.out / "checkpoint", model, kDomains, encoder.dim(), opt.router, ckpt.dir);
  std::printf("\nwrote %s (log), %s (plot), %s/ (checkpoint) in %s\n", log_path.string().c_str(),
              (opt.out / "curves.svg").string().c_str(), (opt.out / "checkpoint").string().c_str(),
              duration(since(start)).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  cli::Parser p(kProgram, kUsage);
  p.value("--checkpoint", opt.checkpoint);
  p.value("--corpus", opt.corpus);
  p.value("--minilm", opt.minilm);
  p.value("--out", opt.out);
  p.number("--embed-texts", opt.embed_texts, {.min = 1});
  p.number("--router-steps", opt.router_steps, {.min = 1});
  p.number("--med-steps", opt.med_steps, {.min = 1});
  p.number("--med-budget", opt.med_budget, {.min = 1});
  p.number("--med-share", opt.med_share, {.min = 0, .max = 1});
  p.number("--batch", opt.batch, {.min = 4});
  p.number("--router-lr", opt.router_lr, {.min = 0});
  p.number("--ft-router-lr", opt.ft_router_lr, {.min = 0});
  p.number("--expert-lr", opt.expert_lr, {.min = 0});
  p.number("--route-supervision", opt.route_supervision, {.min = 0});
  p.number("--ft-route-supervision", opt.ft_route_supervision, {.min = 0});
  p.flag("--route-balance", opt.route_balance);
  p.value("--init", opt.init);
  p.value("--replay-trains", opt.replay_trains);
  p.number("--score-scale", opt.router.score_scale, {.min = 0});
  p.number("--load-balance", opt.router.load_balance_coef, {.min = 0});
  p.number("--z-loss", opt.router.z_loss_coef, {.min = 0});
  p.number("--valid-limit", opt.valid_limit);
  p.number("--eval-every", opt.eval_every, {.min = 1});
  p.number("--eval-sequences", opt.eval_sequences, {.min = 1});
  p.number("--log-every", opt.log_every, {.min = 1});
  p.flag("--no-reference", opt.no_reference);
  p.number("--threads", opt.threads, {.min = 0});
  p.number("--seed", opt.seed);
  return p.run(argc, argv, [&] { return run(opt); });
}
