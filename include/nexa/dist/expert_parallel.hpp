#pragma once
// ExpertParallelMoE<Router, Expert, Comm, T>: a dropless MoE layer whose E experts are spread over
// the ranks of a communicator (rank r owns the contiguous block share_of(E, size, r)), while each
// rank keeps its own tokens and a replica of the router.
//
// Forward, on every rank at once (it is a collective: every rank calls it, each with its tokens):
//   1. route the local tokens and group them by expert (as MoELayer does);
//   2. all-gather each rank's tokens per expert and first-choice counts (one small message);
//   3. all_to_allv the token rows to the ranks that own their experts; an owner runs each of its
//      experts on the rows it received, ordered by source rank, then by the source's slot order;
//   4. all_to_allv the outputs back and combine them in MoELayer's fixed order.
// Backward reverses both all-to-alls; expert parameter gradients accumulate on the owner only.
//
// Equality with the single-process layer: when the global batch is split over the ranks in rank
// order (rank 0 the first tokens), each expert sees exactly the rows, in the same order, that it
// sees in MoELayer over the whole batch, so expert outputs, expert gradients and dx match it
// (bitwise where the router's logits GEMM gives the same bits for fewer rows; tests/dist checks).
//
// Auxiliary losses are the global batch's: the first-choice counts and token count are summed
// over ranks, so the load-balancing and z-loss gradients each rank adds through its router are
// its tokens' share of the single-process layer's, and cache.aux_loss() is the global value on
// every rank. The router is replicated and its gradient stays local: each rank holds its
// tokens' share, and the single-process gradient is the sum over ranks (the data-parallel
// all-reduce of replicated parameters sums it). Experts are sharded, so their gradients need no
// reduction.
//
// Construction draws every expert's initial weights in MoELayer's order from the same Rng and
// keeps the owned ones, so a layer built from the same seed on every rank holds MoELayer's
// parameters; visit_params names them as MoELayer does (experts.expert_<global index>), so a
// rank's parameters load from, and save to, the single-process checkpoint's names.
// Only routers that score tokens through logits qualify (TopKRouter, NexusRouter); a capacity
// limit is not supported (the layer is dropless). The device is the communicator's: host buffers
// with NoComm and MpiComm, GPU buffers with NcclComm (token rows travel device to device; the
// small per-rank tables are built on the host and staged through the device for NCCL).
#include <algorithm>
#include <climits>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "nexa/core/scalar.hpp"
#include "nexa/dist/communicator.hpp"
#include "nexa/dist/host_collectives.hpp"
#include "nexa/moe/combine_backward.hpp"
#include "nexa/moe/concepts.hpp"
#include "nexa/moe/config.hpp"
#include "nexa/moe/routing_head.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/routing.hpp"

namespace nexa::dist {

template <Router R, Expert E, Communicator C, class T = float>
class ExpertParallelMoE {
 public:
  using D = typename C::device;
  using RouterT = typename R::template rebind<T, D>;
  using ExpertT = typename E::template rebind<T, D>;
  using A = acc_t<T>;
  using Config = MoEConfig;
  static constexpr int k = RouterT::k;
  static_assert(std::derived_from<typename RouterT::Cache, LogitRouting<A, D>>,
                "ExpertParallelMoE: the router must score tokens through logits (TopKRouter, NexusRouter), so that "
                "its auxiliary losses can average over the global batch");
  static_assert(
      !requires { &RouterT::classify; },
      "ExpertParallelMoE: sequence-classifier routers keep their routing and auxiliary losses in the "
      "router, per batch of sequences, not per token: not supported");

  struct Cache {
    typename RouterT::Cache router;
    DispatchPlan<D> plan;     // this rank's (token, choice) pairs grouped by expert, over all E experts
    Tensor<T, D> expert_out;  // [local tokens * k, d]: outputs for this rank's slots, in plan order
    std::vector<index_t> send_rows, recv_rows;  // rows this rank sends to / receives from each rank
    std::vector<index_t> owned_offsets;         // [owned + 1]: each owned expert's rows, owned order
    // Owned order (expert, then source rank, then the source's slot order) against the order rows
    // arrive in (source rank, then expert, then slot): one index each way.
    Tensor<std::int32_t, D> owned_to_recv, recv_to_owned;
    std::vector<typename ExpertT::Cache> experts;  // one per owned expert
    Shape input_shape;
    index_t global_tokens = 0;
    std::vector<index_t> global_tokens_per_expert;  // [E], each of a token's k choices counted

    // Auxiliary losses of the global batch (already multiplied by their coefficients), the same
    // on every rank.
    [[nodiscard]] double aux_loss() const { return router.aux.total(); }
    [[nodiscard]] const AuxLosses& aux() const { return router.aux; }
    [[nodiscard]] const std::vector<index_t>& tokens_per_expert() const { return global_tokens_per_expert; }
  };

  RouterT router;                // replicated: the same on every rank
  std::vector<ExpertT> experts;  // the owned block: experts[j] is global expert owned().begin + j

  // A collective: every rank constructs the layer with the same config and the same Rng seed.
  ExpertParallelMoE(const Config& config, C& comm, Rng& rng) : config_(config), comm_(&comm) {
    check_same_config_on_every_rank();
    const index_t ranks = comm.size();
    require(config.num_experts >= ranks, "ExpertParallelMoE", "every rank must own at least one expert: num_experts ",
            config.num_experts, " is less than the ", ranks, " ranks");
    require(config.num_experts >= k, "ExpertParallelMoE", "num_experts must be at least k = ", k, ", got ",
            config.num_experts);
    require(config.d_model > 0 && config.d_ff > 0, "ExpertParallelMoE", "d_model and d_ff must be positive, got ",
            config.d_model, " and ", config.d_ff);
    require(config.capacity_factor == 0, "ExpertParallelMoE", "capacity_factor expected 0 (dropless), got ",
            config.capacity_factor);
    owned_ = share_of(config.num_experts, comm.size(), comm.rank());
    router = RouterT(config.router(), rng);
    experts.reserve(static_cast<std::size_t>(owned_.count()));
    for (index_t e = 0; e < config.num_experts; ++e) {
      ExpertT expert(config.expert(), rng);  // drawn on every rank so the Rng's streams stay aligned
      if (owned_.begin <= e && e < owned_.end) experts.push_back(std::move(expert));
    }
  }

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] index_t num_experts() const { return config_.num_experts; }
  // The global indices [begin, end) of the experts this rank owns.
  [[nodiscard]] Share owned() const { return owned_; }
  [[nodiscard]] C& communicator() const { return *comm_; }

  void set_training(bool on) {
    for (auto& e : experts)
      if constexpr (requires { e.set_training(on); }) e.set_training(on);
  }
  template <class F>
  void visit_dropouts(F&& f) {
    for (auto& e : experts)
      if constexpr (requires { e.visit_dropouts(f); }) e.visit_dropouts(f);
  }

  // x: this rank's tokens, [..., d_model] -> same shape. A collective.
  [[nodiscard]] Tensor<T, D> forward(TensorView<const T, D> x, Cache& cache) {
    const index_t d = config_.d_model, ranks = comm_->size(), n_exp = config_.num_experts;
    const bool ok = x.rank() >= 1 && x.cols() == d && x.rows() * k <= INT32_MAX;
    // Per rank: [input ok, tokens or the bad last axis, tokens per expert [E], first choices [E]].
    const index_t width = 2 + 2 * n_exp;
    std::vector<std::int32_t> mine(static_cast<std::size_t>(width), 0);
    mine[0] = ok ? 1 : 0;
    TensorView<const T, D> flat;
    if (ok) {
      flat = x.reshaped({x.rows(), d});
      cache.input_shape = x.shape();
      const Routing<A, D>& routing = router.route(flat, cache.router);
      cache.plan = ops::group_by_expert(routing.experts, n_exp);
      mine[1] = static_cast<std::int32_t>(flat.rows());
      for (index_t e = 0; e < n_exp; ++e) mine[static_cast<std::size_t>(2 + e)] = narrow(cache.plan.tokens_of(e));
      const std::vector<std::int32_t> chosen = routing.experts.to_host();
      for (index_t t = 0; t < flat.rows(); ++t)
        ++mine[static_cast<std::size_t>(2 + n_exp + chosen[static_cast<std::size_t>(t * k)])];
    } else {
      mine[1] = x.rank() >= 1 ? narrow(x.cols()) : -1;
    }
    std::vector<std::int32_t> all(static_cast<std::size_t>(width * ranks));
    host_all_gather(*comm_, mine.data(), width, all.data());
    const auto at = [&](index_t r, index_t i) {
      return static_cast<index_t>(all[static_cast<std::size_t>(r * width + i)]);
    };
    for (index_t r = 0; r < ranks; ++r)
      require(at(r, 0) == 1, "ExpertParallelMoE", "input's last axis expected ", d, " on every rank, got ", at(r, 1),
              " on rank ", r, " (or more than ", INT32_MAX, " assignments)");

    // The auxiliary losses average over the whole batch.
    AuxStats& stats = cache.router.aux_stats;
    stats.tokens = 0;
    if (!stats.first_choice_counts.empty()) stats.first_choice_counts.assign(static_cast<std::size_t>(n_exp), 0);
    cache.global_tokens_per_expert.assign(static_cast<std::size_t>(n_exp), 0);
    for (index_t r = 0; r < ranks; ++r) {
      stats.tokens += at(r, 1);
      for (index_t e = 0; e < n_exp; ++e) {
        cache.global_tokens_per_expert[static_cast<std::size_t>(e)] += at(r, 2 + e);
        if (!stats.first_choice_counts.empty())
          stats.first_choice_counts[static_cast<std::size_t>(e)] += at(r, 2 + n_exp + e);
      }
    }
    cache.global_tokens = stats.tokens;
    sum_aux_stats_over_ranks(cache);

    plan_exchange(cache, at);
    const index_t local_rows = cache.plan.num_slots();
    // Rows leave in plan order, which is expert order and so owner order: one block per rank.
    const Tensor<T, D> send = ops::gather_rows(flat, cache.plan);
    Tensor<T, D> received = exchange(send, cache.send_rows, cache.recv_rows);

    const index_t owned_rows = cache.owned_offsets.back();
    auto owned_out = Tensor<T, D>::uninitialized({owned_rows, d});
    cache.experts.resize(experts.size());
    for (std::size_t j = 0; j < experts.size(); ++j) {
      const index_t begin = cache.owned_offsets[j], count = cache.owned_offsets[j + 1] - begin;
      auto expert_in = Tensor<T, D>::uninitialized({count, d});
      RoutingKernel<D>::gather_rows(received.data(), cache.owned_to_recv.data() + begin, count, d, expert_in.data());
      experts[j].forward_into(std::move(expert_in), cache.experts[j],
                              owned_out.view().slice_rows(begin, begin + count));
    }
    received = Tensor<T, D>();
    const Tensor<T, D> back = reordered(owned_out, cache.recv_to_owned);
    cache.expert_out = exchange(back, cache.recv_rows, cache.send_rows);
    require(cache.expert_out.rows() == local_rows, "ExpertParallelMoE", "expected ", local_rows,
            " expert output rows back, got ", cache.expert_out.rows());

    auto y = Tensor<T, D>::uninitialized(x.shape());
    ops::weighted_combine(cache.expert_out, cache.plan, cache.router.routing.weights.data(),
                          y.view().reshaped({flat.rows(), d}));
    return y;
  }

  // Accumulates the router's gradient (this rank's share) and the owned experts' gradients (all
  // ranks' tokens); returns dL/dx for this rank's tokens. A collective.
  [[nodiscard]] Tensor<T, D> backward(TensorView<const T, D> dy, Cache& cache) {
    const index_t d = config_.d_model, ranks = comm_->size();
    const std::int32_t ok = dy.shape() == cache.input_shape ? 1 : 0;
    std::vector<std::int32_t> oks(static_cast<std::size_t>(ranks));
    host_all_gather(*comm_, &ok, 1, oks.data());
    require(ok == 1, "ExpertParallelMoE", "dy shape expected ", cache.input_shape, ", got ", dy.shape());
    for (index_t r = 0; r < ranks; ++r)
      require(oks[static_cast<std::size_t>(r)] == 1, "ExpertParallelMoE", "rank ", r,
              "'s dy does not match its forward's input shape");
    const index_t tokens = dy.rows();
    const TensorView<const T, D> flat_dy = dy.reshaped({tokens, d});
    const Routing<A, D>& routing = cache.router.routing;

    const CombineGrads<T, A, D> grads = combine_backward(flat_dy, cache.expert_out, cache.plan, routing.weights);
    const Tensor<T, D> d_received = exchange(grads.d_expert_out, cache.send_rows, cache.recv_rows);
    const Tensor<T, D> d_owned_out = reordered(d_received, cache.owned_to_recv);
    auto d_owned_in = Tensor<T, D>::uninitialized(d_owned_out.shape());
    for (std::size_t j = 0; j < experts.size(); ++j) {
      const index_t begin = cache.owned_offsets[j], end = cache.owned_offsets[j + 1];
      experts[j].backward_into(d_owned_out.view().slice_rows(begin, end), cache.experts[j],
                               d_owned_in.view().slice_rows(begin, end));
    }
    const Tensor<T, D> d_back = reordered(d_owned_in, cache.recv_to_owned);
    const Tensor<T, D> d_expert_in = exchange(d_back, cache.recv_rows, cache.send_rows);

    auto dx = Tensor<T, D>::uninitialized(dy.shape());
    const auto flat_dx = dx.view().reshaped({tokens, d});
    dispatch_backward(d_expert_in, cache.plan, grads.d_weights, router, cache.router, flat_dx);
    return dx;
  }

  // MoELayer's names: router.classifier.weight and experts.expert_<global index>.<expert names>
  // for the owned experts only.
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    router.visit_params(f, join_name(prefix, "router"));
    for (std::size_t j = 0; j < experts.size(); ++j)
      experts[j].visit_params(
          f, join_name(prefix, "experts.expert_" + std::to_string(owned_.begin + static_cast<index_t>(j))));
  }

 private:
  static std::int32_t narrow(index_t v) { return static_cast<std::int32_t>(v); }

  // d_model, d_ff, E, k and droplessness must agree, or the exchanges would not line up.
  void check_same_config_on_every_rank() {
    constexpr index_t n = 5;
    const std::int32_t mine[n] = {narrow(config_.d_model), narrow(config_.d_ff), narrow(config_.num_experts), k,
                                  config_.capacity_factor == 0 ? 0 : 1};
    std::vector<std::int32_t> all(static_cast<std::size_t>(n * comm_->size()));
    host_all_gather(*comm_, mine, n, all.data());
    for (int r = 1; r < comm_->size(); ++r) {
      const std::int32_t* o = all.data() + r * n;
      require(std::equal(all.data(), all.data() + n, o), "ExpertParallelMoE",
              "every rank needs the same d_model, d_ff, num_experts, k and capacity: rank 0 has ", all[0], ", ", all[1],
              ", ", all[2], ", ", all[3], ", ", all[4] ? "capped" : "dropless", ", rank ", r, " has ", o[0], ", ", o[1],
              ", ", o[2], ", ", o[3], ", ", o[4] ? "capped" : "dropless");
    }
  }

  // Sums the router's probability and logsumexp statistics over ranks (the counts are summed by
  // the caller) and recomputes the auxiliary losses from them: backward then adds this rank's
  // share of the global batch's gradients.
  void sum_aux_stats_over_ranks(Cache& cache) {
    AuxStats& stats = cache.router.aux_stats;
    const auto n_exp = static_cast<std::size_t>(config_.num_experts);
    // Every rank sends the same layout, whether or not a loss is on (the configs agree).
    std::vector<double> sums(n_exp + 1, 0.0);
    std::copy(stats.prob_sums.begin(), stats.prob_sums.end(), sums.begin());
    sums.back() = stats.logsumexp_squares;
    host_all_reduce_sum(*comm_, sums.data(), static_cast<index_t>(sums.size()));
    if (!stats.prob_sums.empty()) std::copy_n(sums.begin(), n_exp, stats.prob_sums.begin());
    stats.logsumexp_squares = sums.back();
    cache.router.aux.load_balance = load_balance_value<A>(stats, config_.load_balance_coef);
    cache.router.aux.z_loss = z_loss_value(stats, config_.z_loss_coef);
  }

  // Counts and the owned-order permutation, from the gathered tokens per expert.
  template <class At>
  void plan_exchange(Cache& cache, const At& at) const {
    const index_t ranks = comm_->size();
    cache.send_rows.assign(static_cast<std::size_t>(ranks), 0);
    cache.recv_rows.assign(static_cast<std::size_t>(ranks), 0);
    for (index_t q = 0; q < ranks; ++q) {
      const Share theirs = share_of(config_.num_experts, static_cast<int>(ranks), static_cast<int>(q));
      cache.send_rows[static_cast<std::size_t>(q)] = cache.plan.offsets[theirs.end] - cache.plan.offsets[theirs.begin];
      for (index_t e = owned_.begin; e < owned_.end; ++e) cache.recv_rows[static_cast<std::size_t>(q)] += at(q, 2 + e);
    }
    const auto owned = static_cast<std::size_t>(owned_.count());
    cache.owned_offsets.assign(owned + 1, 0);
    for (std::size_t j = 0; j < owned; ++j) {
      index_t rows = 0;
      for (index_t s = 0; s < ranks; ++s) rows += at(s, 2 + owned_.begin + static_cast<index_t>(j));
      cache.owned_offsets[j + 1] = cache.owned_offsets[j] + rows;
    }
    const index_t total = cache.owned_offsets.back();
    std::vector<std::int32_t> owned_to_recv(static_cast<std::size_t>(total)), recv_to_owned(owned_to_recv.size());
    index_t source_begin = 0;          // first received row from source s
    std::vector<index_t> next(owned);  // next owned-order row of each owned expert
    for (std::size_t j = 0; j < owned; ++j) next[j] = cache.owned_offsets[j];
    for (index_t s = 0; s < ranks; ++s) {
      index_t row = source_begin;
      for (std::size_t j = 0; j < owned; ++j) {
        const index_t count = at(s, 2 + owned_.begin + static_cast<index_t>(j));
        for (index_t i = 0; i < count; ++i, ++row) {
          const index_t o = next[j]++;
          owned_to_recv[static_cast<std::size_t>(o)] = narrow(row);
          recv_to_owned[static_cast<std::size_t>(row)] = narrow(o);
        }
      }
      source_begin += cache.recv_rows[static_cast<std::size_t>(s)];
    }
    cache.owned_to_recv = Tensor<std::int32_t, D>::from_host({total}, owned_to_recv);
    cache.recv_to_owned = Tensor<std::int32_t, D>::from_host({total}, recv_to_owned);
  }

  // rows [sum(send_rows), d] sent in rank blocks; returns [sum(recv_rows), d].
  Tensor<T, D> exchange(const Tensor<T, D>& rows, const std::vector<index_t>& send_rows,
                        const std::vector<index_t>& recv_rows) const {
    const index_t d = config_.d_model;
    std::vector<index_t> send_counts(send_rows.size()), recv_counts(recv_rows.size());
    index_t received = 0;
    for (std::size_t r = 0; r < send_rows.size(); ++r) {
      send_counts[r] = send_rows[r] * d;
      recv_counts[r] = recv_rows[r] * d;
      received += recv_rows[r];
    }
    auto out = Tensor<T, D>::uninitialized({received, d});
    comm_->all_to_allv(rows.data(), std::span<const index_t>(send_counts), out.data(),
                       std::span<const index_t>(recv_counts));
    return out;
  }

  // out[i] = rows[index[i]].
  Tensor<T, D> reordered(const Tensor<T, D>& rows, const Tensor<std::int32_t, D>& index) const {
    auto out = Tensor<T, D>::uninitialized({index.numel(), config_.d_model});
    RoutingKernel<D>::gather_rows(rows.data(), index.data(), index.numel(), config_.d_model, out.data());
    return out;
  }

  Config config_;
  C* comm_ = nullptr;
  Share owned_;
};

}  // namespace nexa::dist
