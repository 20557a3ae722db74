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
// The reduce-scatter and all-gather stage the whole flat vector of each scalar type (size()
// blocks of the largest share, padded with zeros), so the gradients are not sharded (that is
// ZeRO-2) and the staging is one gradient-sized buffer; the collectives are blocking (see
// data_parallel.hpp on overlap).
// The parameters are collected once, at construction: the module must outlive the optimizer and
// not move, and every rank must construct it with the same parameters (checked: nexa::Error).
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

template <Communicator Comm>
class ShardedAdamW {
  static_assert(std::same_as<typename Comm::device, cpu>, "ShardedAdamW: parameters live on the CPU");

 public:
  template <class Module>
  ShardedAdamW(Module& module, Comm& comm, train::AdamWConfig config = {}) : comm_(&comm), config_(std::move(config)) {
    train::check_adamw_config(config_, "ShardedAdamW");
    dp_detail::ModuleParams params = dp_detail::collect_params(module, dp_detail::Select::trainable);
    dp_detail::require_same_params(comm, params, "ShardedAdamW", "trainable ");
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

 private:
  template <class T>
  struct Group {
    dp_detail::FlatParams<T> flat;
    std::vector<bool> decay;  // per parameter
    Share share;              // this rank's flat elements
    index_t block = 0;        // the largest share: the collectives' block size
    std::vector<T> m, v;      // moments of the share
    std::vector<T> staging;   // size() blocks
    std::vector<T> shard;     // one block: the averaged gradient of the share
  };

  template <class T>
  void init(Group<T>& g, dp_detail::FlatParams<T>&& flat) {
    g.flat = std::move(flat);
    for (const std::string& name : g.flat.names)
      g.decay.push_back(!(config_.no_weight_decay && config_.no_weight_decay(name)));
    const index_t total = g.flat.total();
    g.share = share_of(total, comm_->size(), comm_->rank());
    g.block = share_of(total, comm_->size(), 0).count();
    g.m.assign(static_cast<std::size_t>(g.share.count()), T(0));
    g.v.assign(g.m.size(), T(0));
  }

  template <class T>
  void update(Group<T>& g, const train::AdamWCoefficients<T>& c) {
    const int ranks = comm_->size();
    for (std::size_t i = 0; i < g.flat.params.size(); ++i) dp_detail::require_gradient(g.flat, i, "ShardedAdamW");
    g.staging.resize(static_cast<std::size_t>(g.block * ranks));
    g.shard.resize(static_cast<std::size_t>(g.block));
    if (g.block == 0) return;

    // 1. Block r of the staging holds rank r's share of the local gradient, zero-padded.
    for (int r = 0; r < ranks; ++r) {
      const Share s = share_of(g.flat.total(), ranks, r);
      T* out = g.staging.data() + g.block * r;
      dp_detail::for_each_segment(g.flat, s.begin, s.end, [&](std::size_t i, index_t lo, index_t n) {
        out = std::copy_n(g.flat.params[i]->grad.data() + lo, n, out);
      });
      std::fill(out, g.staging.data() + g.block * (r + 1), T(0));
    }
    comm_->reduce_scatter_sum(g.staging.data(), g.shard.data(), g.block);
    const T divisor = static_cast<T>(ranks);
    for (T& x : g.shard) x /= divisor;

    // 2. AdamW on the share, parameter by parameter (each has its own decay flag).
    index_t k = 0;  // position in the share
    dp_detail::for_each_segment(g.flat, g.share.begin, g.share.end, [&](std::size_t i, index_t lo, index_t n) {
      const auto at = static_cast<std::size_t>(k);
      train::adamw_update(g.flat.params[i]->value.data() + lo, g.shard.data() + at, g.m.data() + at, g.v.data() + at, n,
                          c, g.decay[i]);
      k += n;
    });

    // 3. Every rank's updated share into every replica.
    std::fill(g.shard.begin(), g.shard.end(), T(0));
    T* mine = g.shard.data();
    dp_detail::for_each_segment(g.flat, g.share.begin, g.share.end, [&](std::size_t i, index_t lo, index_t n) {
      mine = std::copy_n(g.flat.params[i]->value.data() + lo, n, mine);
    });
    comm_->all_gather(g.shard.data(), g.block, g.staging.data());
    for (int r = 0; r < ranks; ++r) {
      if (r == comm_->rank()) continue;
      const Share s = share_of(g.flat.total(), ranks, r);
      const T* in = g.staging.data() + g.block * r;
      dp_detail::for_each_segment(g.flat, s.begin, s.end, [&](std::size_t i, index_t lo, index_t n) {
        std::copy_n(in, n, g.flat.params[i]->value.data() + lo);
        in += n;
      });
    }
  }

  Comm* comm_;
  train::AdamWConfig config_;
  std::int64_t steps_ = 0;
  Group<float> f32_;
  Group<double> f64_;
};

}  // namespace nexa::dist
