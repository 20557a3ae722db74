#pragma once
// ShardedAdamW: ZeRO stage 1 (Rajbhandari et al. 2020) over a host Communicator. Each rank keeps a
// whole replica of the module but AdamW's moments (m, v) only for its share of the trainable
// parameters, seen per scalar type as one flat vector split by share_of: about 1/size of plain
// AdamW's state per rank. One step(), after every rank's backward on its share of the batch:
//   1. reduce-scatter: each rank receives the sum over ranks of the gradients of its share,
//      divided by size() (the same average as GradientSync, and with MpiComm the same bits);
//   2. each rank applies AdamW's update (train::adamw_update, so the same bits as AdamW given the
//      same gradients) to its share of the parameters;
//   3. all-gather: every replica receives the updated shares of the others.
// Use it instead of GradientSync + AdamW, not with them: it reduces the gradients itself, and it
// leaves each rank's own (local) gradients in Param::grad, so a global-norm clipping of the
// averaged gradient is not available here.
// Memory: the gradients are not sharded (that is ZeRO-2). The reduce-scatter and all-gather run
// in rounds over chunks of the shares (round j: block r is chunk j of rank r's share, padded with
// zeros), so step() stages size() + 1 chunks of `chunk_bytes` (4 MiB by default) at a time, and
// MpiComm's reduce_scatter_sum another size() chunks, all released when step() returns. The peak
// beyond the replica is then 2/size of the parameters (m, v) plus about 2 * size() * chunk_bytes,
// below plain AdamW's 2 * parameters once the model is larger than the chunks. The chunking does
// not change any bit: each element is still summed over ranks in rank order, and AdamW's update
// is per element. The collectives are blocking (see data_parallel.hpp on overlap).
// The parameters are collected once, at construction: the module must outlive the optimizer and
// not move. Every rank must construct it with the same parameters, configuration (lr, betas, eps,
// weight_decay, which parameters decay) and chunk_bytes: all are compared in one all_gather, so a
// mismatch, and then an invalid value, raises nexa::Error on every rank. set_lr is not checked:
// call it identically on every rank (as a schedule does).
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nexa/dist/communicator.hpp"
#include "nexa/dist/data_parallel.hpp"
#include "nexa/train/adamw.hpp"

namespace nexa::dist {

inline constexpr std::size_t default_chunk_bytes = std::size_t{4} << 20;

template <Communicator Comm>
class ShardedAdamW {
  static_assert(std::same_as<typename Comm::device, cpu>, "ShardedAdamW: parameters live on the CPU");

 public:
  template <class Module>
  ShardedAdamW(Module& model, Comm& comm, train::AdamWConfig config = {}, std::size_t chunk_bytes = default_chunk_bytes)
      : comm_(&comm), config_(std::move(config)), chunk_bytes_(chunk_bytes) {
    dp_detail::ModuleParams<cpu> params = dp_detail::collect_params<cpu>(model, dp_detail::Select::trainable);
    f32_.decay = decay_flags(params.f32);
    f64_.decay = decay_flags(params.f64);
    // Which parameters decay comes from a function, compared through its flags.
    std::uint64_t decay_hash = 14695981039346656037ull;
    for (const auto* flags : {&f32_.decay, &f64_.decay})
      for (const bool d : *flags) dp_detail::fnv1a(decay_hash, &d, sizeof d);
    using dp_detail::Setting;
    const Setting settings[] = {
        Setting::of("lr", config_.lr),
        Setting::of("beta1", config_.beta1),
        Setting::of("beta2", config_.beta2),
        Setting::of("eps", config_.eps),
        Setting::of("weight_decay", config_.weight_decay),
        Setting::of("no_weight_decay (hash of the decay flags)", static_cast<std::int64_t>(decay_hash)),
        Setting::of("chunk_bytes", static_cast<std::int64_t>(chunk_bytes))};
    dp_detail::require_same_params(comm, params, "ShardedAdamW", "trainable ", settings);
    // After the all_gather: every rank checks the same values.
    train::check_adamw_config(config_, "ShardedAdamW");
    require(chunk_bytes >= sizeof(double), "ShardedAdamW", "chunk_bytes must hold at least one element (",
            sizeof(double), " bytes), got ", chunk_bytes);
    init(f32_, std::move(params.f32));
    init(f64_, std::move(params.f64));
  }

  // Averages the gradients over ranks, updates this rank's share, gathers every share.
  void step() {
    ++steps_;
    update(f32_, train::AdamWCoefficients<float>::at_step(config_, steps_));
    update(f64_, train::AdamWCoefficients<double>::at_step(config_, steps_));
  }

  // Zeroes this rank's gradients of every optimised parameter (the whole replica's).
  void zero_grad() {
    for (auto* p : f32_.flat.params) p->zero_grad();
    for (auto* p : f64_.flat.params) p->zero_grad();
  }

  void set_lr(double lr) {
    require(std::isfinite(lr) && lr >= 0, "ShardedAdamW", "lr must be finite and non-negative, got ", lr);
    config_.lr = lr;
  }
  [[nodiscard]] double lr() const { return config_.lr; }
  [[nodiscard]] const train::AdamWConfig& config() const { return config_; }
  [[nodiscard]] std::int64_t steps() const { return steps_; }

  // Bytes of this rank's optimizer state: m and v for its share only.
  [[nodiscard]] std::size_t state_bytes() const {
    return 2 * (static_cast<std::size_t>(f32_.share.count()) * sizeof(float) +
                static_cast<std::size_t>(f64_.share.count()) * sizeof(double));
  }
  // Trainable elements of the whole model, and of this rank's share.
  [[nodiscard]] index_t num_elements() const { return f32_.flat.total() + f64_.flat.total(); }
  [[nodiscard]] index_t shard_elements() const { return f32_.share.count() + f64_.share.count(); }

  [[nodiscard]] std::size_t chunk_bytes() const { return chunk_bytes_; }
  // The most bytes step() holds in its own buffers at once (size() chunks of staging and one
  // of the averaged gradient; one scalar type at a time), at most (size() + 1) * chunk_bytes().
  // Not counted: the communicator's temporaries (MpiComm's reduce_scatter_sum: size() chunks).
  [[nodiscard]] std::size_t peak_staging_bytes() const { return std::max(staging_bytes(f32_), staging_bytes(f64_)); }

 private:
  template <class T>
  struct Group {
    dp_detail::FlatParams<T, cpu> flat;
    std::vector<bool> decay;  // per parameter
    Share share;              // this rank's flat elements
    index_t block = 0;        // the largest share (rank 0's): every rank's block in the collectives
    index_t chunk = 0;        // elements per round: min(block, chunk_bytes / sizeof(T))
    std::vector<T> m, v;      // moments of the share
  };

  template <class T>
  std::vector<bool> decay_flags(const dp_detail::FlatParams<T, cpu>& flat) const {
    std::vector<bool> decay;
    for (const std::string& name : flat.names)
      decay.push_back(!(config_.no_weight_decay && config_.no_weight_decay(name)));
    return decay;
  }

  template <class T>
  void init(Group<T>& g, dp_detail::FlatParams<T, cpu>&& flat) {
    g.flat = std::move(flat);
    const index_t total = g.flat.total();
    g.share = share_of(total, comm_->size(), comm_->rank());
    g.block = share_of(total, comm_->size(), 0).count();
    g.chunk = std::min(g.block, static_cast<index_t>(chunk_bytes_ / sizeof(T)));
    g.m.assign(static_cast<std::size_t>(g.share.count()), T(0));
    g.v.assign(g.m.size(), T(0));
  }

  template <class T>
  std::size_t staging_bytes(const Group<T>& g) const {
    return static_cast<std::size_t>(g.chunk) * static_cast<std::size_t>(comm_->size() + 1) * sizeof(T);
  }

  template <class T>
  void update(Group<T>& g, const train::AdamWCoefficients<T>& c) {
    const int ranks = comm_->size();
    for (std::size_t i = 0; i < g.flat.params.size(); ++i) dp_detail::require_gradient(g.flat, i, "ShardedAdamW");
    if (g.block == 0) return;
    // Released when step() returns: between steps only m and v stay.
    std::vector<T> staging(static_cast<std::size_t>(g.chunk * ranks)), shard(static_cast<std::size_t>(g.chunk));
    const T divisor = static_cast<T>(ranks);
    // Round j covers elements [j * chunk, j * chunk + n) of every rank's share; the same rounds
    // and sizes on every rank, as they come from the largest share.
    for (index_t offset = 0; offset < g.block; offset += g.chunk) {
      const index_t n = std::min(g.chunk, g.block - offset);
      // Elements [begin, end) of the flat vector: chunk j of rank r's share (shorter, or empty,
      // where that share is shorter than the block).
      auto piece = [&](int r) {
        const Share s = share_of(g.flat.total(), ranks, r);
        const index_t begin = std::min(s.end, s.begin + offset);
        return Share{begin, std::min(s.end, begin + n)};
      };

      // 1. Block r of the staging holds chunk j of rank r's share of the local gradient.
      for (int r = 0; r < ranks; ++r) {
        const Share p = piece(r);
        T* out = staging.data() + n * r;
        dp_detail::for_each_segment(g.flat, p.begin, p.end, [&](std::size_t i, index_t lo, index_t count) {
          out = std::copy_n(g.flat.params[i]->grad.data() + lo, count, out);
        });
        std::fill(out, staging.data() + n * (r + 1), T(0));
      }
      comm_->reduce_scatter_sum(staging.data(), shard.data(), n);
      for (index_t k = 0; k < n; ++k) shard[static_cast<std::size_t>(k)] /= divisor;

      // 2. AdamW on this rank's chunk, parameter by parameter (each has its own decay flag).
      const Share mine = piece(comm_->rank());
      index_t k = 0;  // position in the chunk
      dp_detail::for_each_segment(g.flat, mine.begin, mine.end, [&](std::size_t i, index_t lo, index_t count) {
        const auto at = static_cast<std::size_t>(mine.begin - g.share.begin + k);
        train::adamw_update(g.flat.params[i]->value.data() + lo, shard.data() + k, g.m.data() + at, g.v.data() + at,
                            count, c, g.decay[i]);
        k += count;
      });

      // 3. Every rank's updated chunk into every replica.
      std::fill(shard.begin(), shard.end(), T(0));
      T* out = shard.data();
      dp_detail::for_each_segment(g.flat, mine.begin, mine.end, [&](std::size_t i, index_t lo, index_t count) {
        out = std::copy_n(g.flat.params[i]->value.data() + lo, count, out);
      });
      comm_->all_gather(shard.data(), n, staging.data());
      for (int r = 0; r < ranks; ++r) {
        if (r == comm_->rank()) continue;
        const Share p = piece(r);
        const T* in = staging.data() + n * r;
        dp_detail::for_each_segment(g.flat, p.begin, p.end, [&](std::size_t i, index_t lo, index_t count) {
          std::copy_n(in, count, g.flat.params[i]->value.data() + lo);
          in += count;
        });
      }
    }
  }

  Comm* comm_;
  train::AdamWConfig config_;
  std::size_t chunk_bytes_;
  std::int64_t steps_ = 0;
  Group<float> f32_;
  Group<double> f64_;
};

}  // namespace nexa::dist
