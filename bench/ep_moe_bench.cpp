// nexa_bench_ep_moe: the expert-parallel MoE layer over MPI on the CPU, forward and
// forward+backward, for one fixed global batch split over the ranks (strong scaling), at the
// foundation shape (d_model 512, d_ff 2048, E = 8, top-2, T5FFN<Relu>).
//   mpirun -np P nexa_bench_ep_moe [--json] [--tokens N] [--rounds N]
// Each timed step starts and ends with a barrier, so a time is the slowest rank's. With one rank
// the single-process MoELayer is timed too, on the same batch. Time spent inside the
// communicator's collectives (waiting included) is reported as a share of the step.
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "nexa/dist/expert_parallel.hpp"
#include "nexa/dist/mpi_comm.hpp"
#include "nexa/moe.hpp"

namespace {

using nexa::index_t;
using Clock = std::chrono::steady_clock;

// MpiComm with a stopwatch around every collective.
struct TimedComm {
  using device = nexa::cpu;
  nexa::dist::MpiComm& inner;
  double seconds = 0;

  template <class F>
  void timed(F&& f) {
    const auto start = Clock::now();
    f();
    seconds += std::chrono::duration<double>(Clock::now() - start).count();
  }
  [[nodiscard]] int rank() const { return inner.rank(); }
  [[nodiscard]] int size() const { return inner.size(); }
  template <class T>
  void all_reduce_sum(const T* s, T* r, index_t n) {
    timed([&] { inner.all_reduce_sum(s, r, n); });
  }
  template <class T>
  void reduce_scatter_sum(const T* s, T* r, index_t n) {
    timed([&] { inner.reduce_scatter_sum(s, r, n); });
  }
  template <class T>
  void all_gather(const T* s, index_t n, T* r) {
    timed([&] { inner.all_gather(s, n, r); });
  }
  template <class T>
  void all_to_allv(const T* s, std::span<const index_t> sc, T* r, std::span<const index_t> rc) {
    timed([&] { inner.all_to_allv(s, sc, r, rc); });
  }
  template <class T>
  void broadcast(T* d, index_t n, int root) {
    timed([&] { inner.broadcast(d, n, root); });
  }
  void barrier() { inner.barrier(); }
};
static_assert(nexa::dist::Communicator<TimedComm>);

struct Timing {
  double median = 0, best = 0;
};

// Median and best over `rounds` of the slowest rank's time per call, the calls taken in
// alternation; every rank runs the same number of rounds.
std::vector<Timing> time_steps(nexa::dist::MpiComm& comm, const std::vector<std::function<void()>>& fns, int rounds) {
  for (const auto& fn : fns) fn();  // warm-up: page faults, BLAS buffers
  std::vector<std::vector<double>> times(fns.size());
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t i = 0; i < fns.size(); ++i) {
      comm.barrier();
      const auto start = Clock::now();
      fns[i]();
      comm.barrier();
      times[i].push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
  }
  std::vector<Timing> out;
  for (auto& t : times) {
    std::sort(t.begin(), t.end());
    out.push_back({t[t.size() / 2], t.front()});
  }
  return out;
}

constexpr int k = 2;
using Layer = nexa::MoELayer<nexa::TopKRouter<k>, nexa::T5FFN<nexa::Relu>>;
using EpLayer = nexa::dist::ExpertParallelMoE<nexa::TopKRouter<k>, nexa::T5FFN<nexa::Relu>, TimedComm>;

}  // namespace

int main(int argc, char** argv) {
  nexa::dist::MpiSession session(argc, argv);
  bool json = false;
  index_t tokens = 4096;
  int rounds = 10;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (std::strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
      tokens = std::atoll(argv[++i]);
    } else if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--json] [--tokens N] [--rounds N]\n", argv[0]);
      return 2;
    }
  }
  nexa::dist::MpiComm mpi;
  TimedComm comm{mpi};
  const nexa::MoEConfig cfg{.d_model = 512, .d_ff = 2048, .num_experts = 8};
  // Same seed on every rank: the global batch and the layer are the same everywhere.
  nexa::Rng rng(1);
  EpLayer layer(cfg, comm, rng);
  const auto x = nexa::Tensor<float>::randn({tokens, cfg.d_model}, rng);
  const auto dy = nexa::Tensor<float>::randn({tokens, cfg.d_model}, rng, 1e-3);
  const auto mine = nexa::dist::share_of(tokens, mpi.size(), mpi.rank());
  nexa::Tensor<float> x_mine({mine.count(), cfg.d_model}), dy_mine({mine.count(), cfg.d_model});
  std::copy_n(x.data() + mine.begin * cfg.d_model, x_mine.numel(), x_mine.data());
  std::copy_n(dy.data() + mine.begin * cfg.d_model, dy_mine.numel(), dy_mine.data());
  EpLayer::Cache cache;

  std::vector<std::function<void()>> steps = {
      [&] { (void)layer.forward(x_mine, cache); },
      [&] {
        (void)layer.forward(x_mine, cache);
        (void)layer.backward(dy_mine, cache);
      },
  };
  // One rank: the single-process layer over the same batch, for the cost of expert parallelism.
  nexa::Rng single_rng(1);
  Layer single = mpi.size() == 1 ? Layer(cfg, single_rng) : Layer();
  Layer::Cache single_cache;
  if (mpi.size() == 1) {
    steps.push_back([&] { (void)single.forward(x, single_cache); });
    steps.push_back([&] {
      (void)single.forward(x, single_cache);
      (void)single.backward(dy, single_cache);
    });
  }
  const auto t = time_steps(mpi, steps, rounds);
  // Rank 0's time inside collectives (waiting for slower ranks included) in one more step.
  comm.seconds = 0;
  mpi.barrier();
  const auto start = Clock::now();
  steps[1]();
  const double comm_share = comm.seconds / std::chrono::duration<double>(Clock::now() - start).count();

  if (mpi.rank() != 0) return 0;
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
#else
  const int threads = 1;
#endif
  const auto per_s = [&](double s) { return static_cast<double>(tokens) / s; };
  if (json) {
    std::printf(
        "{\"ranks\": %d, \"threads_per_rank\": %d, \"tokens\": %lld, \"d_model\": %lld, \"d_ff\": %lld, "
        "\"experts\": %lld, \"k\": %d, \"rounds\": %d, \"seconds_fwd\": %.6f, \"seconds_fwd_best\": %.6f, "
        "\"seconds_fwdbwd\": %.6f, \"seconds_fwdbwd_best\": %.6f, \"tokens_per_s_fwd\": %.1f, "
        "\"tokens_per_s_fwdbwd\": %.1f, \"collective_share_fwdbwd_rank0\": %.3f",
        mpi.size(), threads, static_cast<long long>(tokens), static_cast<long long>(cfg.d_model),
        static_cast<long long>(cfg.d_ff), static_cast<long long>(cfg.num_experts), k, rounds, t[0].median, t[0].best,
        t[1].median, t[1].best, per_s(t[0].median), per_s(t[1].median), comm_share);
    if (mpi.size() == 1)
      std::printf(", \"single_process_seconds_fwd\": %.6f, \"single_process_seconds_fwdbwd\": %.6f", t[2].median,
                  t[3].median);
    std::printf("}\n");
  } else {
    std::printf(
        "expert parallel, %d rank(s) x %d thread(s), %lld tokens (global), d %lld, d_ff %lld, E %lld, top-%d\n"
        "  fwd     %8.2f ms (best %.2f)  %9.0f tokens/s\n"
        "  fwd+bwd %8.2f ms (best %.2f)  %9.0f tokens/s\n"
        "  rank 0 in collectives: %.1f%% of a fwd+bwd step\n",
        mpi.size(), threads, static_cast<long long>(tokens), static_cast<long long>(cfg.d_model),
        static_cast<long long>(cfg.d_ff), static_cast<long long>(cfg.num_experts), k, t[0].median * 1e3,
        t[0].best * 1e3, per_s(t[0].median), t[1].median * 1e3, t[1].best * 1e3, per_s(t[1].median), 100 * comm_share);
    if (mpi.size() == 1)
      std::printf("  single-process MoELayer: fwd %.2f ms, fwd+bwd %.2f ms\n", t[2].median * 1e3, t[3].median * 1e3);
  }
  return 0;
}
