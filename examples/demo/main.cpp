// nexa_demo: an MoE learns a mixture of regressions and its experts specialise.
//
// Data: four regimes. A sample of regime r is x = c_r + noise (so the regime can be read from
// x) and its target is y = tanh(A_r x), a different map per regime. A top-1 MoE with four ReLU
// experts is trained with AdamW against a dense FFN with the same active parameters per token.
// As training goes, the router sends each regime to its own expert: the demo prints the loss
// and the expert load, and ends with the regime x expert routing table.
//
//   nexa_demo [--steps N] [--batch N] [--seed N]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "nexa/moe.hpp"
#include "nexa/train/train.hpp"

namespace {

constexpr nexa::index_t kRegimes = 4;
constexpr nexa::index_t kDim = 32;
constexpr nexa::index_t kHidden = 64;

struct Options {
  nexa::index_t steps = 600;
  nexa::index_t batch = 256;
  std::uint64_t seed = 7;
};

// The task: centres c_r and maps A_r drawn once, samples drawn per batch.
class MixtureOfRegressions {
 public:
  explicit MixtureOfRegressions(nexa::Rng& rng)
      : centres_(nexa::Tensor<float>::randn({kRegimes, kDim}, rng, 1.5)),
        maps_(nexa::Tensor<float>::randn({kRegimes, kDim, kDim}, rng, 1.0 / std::sqrt(double(kDim)))) {}

  struct Batch {
    nexa::Tensor<float> x, y;
    std::vector<int> regime;
  };

  Batch sample(nexa::index_t n, nexa::Rng& rng) const {
    Batch b{nexa::Tensor<float>({n, kDim}), nexa::Tensor<float>({n, kDim}), std::vector<int>(std::size_t(n))};
    const auto noise = nexa::Tensor<float>::randn({n, kDim}, rng, 0.5);
    const auto pick = nexa::Tensor<float>::uniform({n}, rng, 0.0, double(kRegimes));
    for (nexa::index_t i = 0; i < n; ++i) {
      const int r = std::min(int(pick(i)), int(kRegimes - 1));
      b.regime[std::size_t(i)] = r;
      for (nexa::index_t c = 0; c < kDim; ++c) b.x(i, c) = centres_(r, c) + noise(i, c);
      for (nexa::index_t o = 0; o < kDim; ++o) {
        float s = 0;
        for (nexa::index_t c = 0; c < kDim; ++c) s += maps_(r, o, c) * b.x(i, c);
        b.y(i, o) = std::tanh(s);
      }
    }
    return b;
  }

 private:
  nexa::Tensor<float> centres_, maps_;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* name) {
      if (i + 1 >= argc) throw nexa::Error(std::string("nexa_demo: ") + name + " needs a value");
      const long long v = std::atoll(argv[++i]);
      if (v <= 0) throw nexa::Error(std::string("nexa_demo: ") + name + " must be positive, got " + argv[i]);
      return v;
    };
    if (arg == "--steps")
      o.steps = value("--steps");
    else if (arg == "--batch")
      o.batch = value("--batch");
    else if (arg == "--seed")
      o.seed = std::uint64_t(value("--seed"));
    else
      throw nexa::Error("nexa_demo: unknown option " + arg + " (options: --steps N --batch N --seed N)");
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  using MoE = nexa::MoELayer<nexa::TopKRouter<1>, nexa::T5FFN<nexa::Relu>>;
  using Dense = nexa::T5FFN<nexa::Relu>;

  nexa::Rng rng(opt.seed);
  const MixtureOfRegressions task(rng);
  // Top-1 without renormalisation (Switch): the gate value scales the expert output, so the router
  // learns from the task loss as well as from the load-balancing loss.
  MoE moe({.d_model = kDim, .d_ff = kHidden, .num_experts = kRegimes, .renormalize = false, .load_balance_coef = 0.01},
          rng);
  Dense dense({.d_model = kDim, .d_ff = kHidden}, rng);  // same active parameters per token
  nexa::train::AdamW moe_opt(moe, {.lr = 3e-3, .weight_decay = 0.01});
  nexa::train::AdamW dense_opt(dense, {.lr = 3e-3, .weight_decay = 0.01});
  const nexa::train::CosineSchedule schedule{
      .peak_lr = 3e-3, .min_lr = 3e-4, .warmup_steps = opt.steps / 20, .total_steps = opt.steps};

  std::printf("nexa demo: mixture of %lld regressions, %lld-dim, top-1 MoE with %lld experts vs dense FFN\n",
              (long long)kRegimes, (long long)kDim, (long long)kRegimes);
  std::printf("%6s %10s %10s %9s   %-24s %s\n", "step", "moe_mse", "dense_mse", "aux", "expert load (share)",
              "elapsed");
  const auto start = std::chrono::steady_clock::now();
  double moe_ema = 0, dense_ema = 0;
  for (nexa::index_t step = 0; step < opt.steps; ++step) {
    const auto batch = task.sample(opt.batch, rng);
    moe_opt.set_lr(schedule(step));
    dense_opt.set_lr(schedule(step));

    MoE::Cache cache;
    auto [moe_loss, moe_grad] = nexa::train::mse(moe.forward(batch.x, cache), batch.y);
    (void)moe.backward(moe_grad, cache);
    moe_opt.step();
    moe_opt.zero_grad();

    Dense::Cache dcache;
    auto [dense_loss, dense_grad] = nexa::train::mse(dense.forward(batch.x, dcache), batch.y);
    (void)dense.backward(dense_grad, dcache);
    dense_opt.step();
    dense_opt.zero_grad();

    moe_ema = step == 0 ? moe_loss : 0.9 * moe_ema + 0.1 * moe_loss;
    dense_ema = step == 0 ? dense_loss : 0.9 * dense_ema + 0.1 * dense_loss;
    if (step % 50 == 0 || step + 1 == opt.steps) {
      const auto load = cache.tokens_per_expert();
      std::string shares;
      for (auto n : load) shares += std::to_string(int(100.0 * double(n) / double(opt.batch) + 0.5)) + "% ";
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("%6lld %10.5f %10.5f %9.5f   %-24s %.1fs\n", (long long)step, moe_ema, dense_ema, cache.aux_loss(),
                  shares.c_str(), elapsed);
      std::fflush(stdout);
    }
  }

  // Evaluation: routing table and held-out losses.
  moe.set_training(false);
  const auto test = task.sample(4096, rng);
  MoE::Cache cache;
  const auto pred = moe.forward(test.x, cache);
  Dense::Cache dcache;
  const auto dense_pred = dense.forward(test.x, dcache);
  const double moe_mse = nexa::train::mse(pred, test.y).loss;
  const double dense_mse = nexa::train::mse(dense_pred, test.y).loss;
  std::vector<std::vector<int>> table(kRegimes, std::vector<int>(kRegimes, 0));
  const auto& experts = cache.router.routing.experts;
  for (nexa::index_t i = 0; i < test.x.rows(); ++i)
    ++table[std::size_t(test.regime[std::size_t(i)])][std::size_t(experts(i, 0))];
  std::printf("\nrouting on 4096 held-out samples (rows: true regime, columns: expert)\n%8s", "");
  for (int e = 0; e < kRegimes; ++e) std::printf("  expert%d", e);
  std::printf("\n");
  double dominant = 0;
  for (int r = 0; r < kRegimes; ++r) {
    std::printf("regime %d", r);
    int row_total = 0, row_max = 0;
    for (int e = 0; e < kRegimes; ++e) {
      std::printf(" %8d", table[r][e]);
      row_total += table[r][e];
      row_max = std::max(row_max, table[r][e]);
    }
    dominant += row_max;
    std::printf("   (%.0f%% to one expert)\n", 100.0 * row_max / std::max(row_total, 1));
  }
  std::printf("\nheld-out mse: moe %.5f, dense %.5f (%.1fx lower with the same active parameters)\n", moe_mse,
              dense_mse, dense_mse / moe_mse);
  std::printf("specialisation: %.1f%% of samples go to their regime's dominant expert\n",
              100.0 * dominant / double(test.x.rows()));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
