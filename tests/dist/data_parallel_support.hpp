#pragma once
// A small real model (a top-2 MoE layer with a shared expert) trained data-parallel: each rank
// takes its share_of the rows of a global batch, and the results are compared with one process
// running the whole batch.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "nexa/dist/communicator.hpp"
#include "nexa/moe.hpp"
#include "nexa/train/loss.hpp"
#include "support/rel_error.hpp"

namespace nexa_test {

using nexa::index_t;

template <class T>
using Model = nexa::MoELayer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::Relu>, nexa::SharedExpert<nexa::T5FFN<nexa::Relu>>,
                             nexa::cpu, T>;

// Dropless, and no auxiliary losses: the load-balancing loss multiplies two batch means, so its
// gradient on a share of the batch is not a share of its gradient on the whole batch (the
// z-loss's internal 1/tokens would also need rescaling); the task loss alone is what data
// parallelism must reproduce.
inline nexa::MoEConfig model_config() {
  return {.d_model = 8, .d_ff = 16, .num_experts = 4, .load_balance_coef = 0.0, .z_loss_coef = 0.0};
}

template <class T>
Model<T> make_model(std::uint64_t seed) {
  nexa::Rng rng(seed);
  return Model<T>(model_config(), rng);
}

// 11 rows: uneven shares over 2 and 4 ranks.
inline constexpr index_t global_rows = 11;

template <class T>
struct Batch {
  nexa::Tensor<T> x, target;
};

template <class T>
Batch<T> make_batch(std::uint64_t seed) {
  nexa::Rng rng(seed);
  auto x = nexa::Tensor<T>::randn({global_rows, model_config().d_model}, rng);
  auto target = nexa::Tensor<T>::randn({global_rows, model_config().d_model}, rng);
  return {std::move(x), std::move(target)};
}

// Forward and backward of the MSE over rows [begin, end) of the batch. The objective is the mean
// over the whole batch, and gradient averaging divides by `ranks`, so this rank's dy is scaled
// by rows * ranks / global_rows (1 for one process on the whole batch).
template <class T>
void accumulate_gradients(Model<T>& model, const Batch<T>& batch, nexa::dist::Share rows, int ranks) {
  typename Model<T>::Cache cache;
  auto y = model.forward(batch.x.view().slice_rows(rows.begin, rows.end), cache);
  auto [loss, dy] = nexa::train::mse(y, batch.target.view().slice_rows(rows.begin, rows.end));
  const T scale = static_cast<T>(static_cast<double>(rows.count() * ranks) / static_cast<double>(global_rows));
  for (index_t i = 0; i < dy.numel(); ++i) dy.data()[i] *= scale;
  (void)model.backward(dy, cache);
}

// Values (or gradients) of every trainable parameter, one vector each, in visit order.
template <class T>
std::vector<std::vector<T>> trainable(Model<T>& model, bool gradients) {
  std::vector<std::vector<T>> out;
  model.visit_params([&](const std::string&, auto& p) {
    if (p.trainable) out.push_back(gradients ? p.grad.to_host() : p.value.to_host());
  });
  return out;
}

// Every parameter (trainable and frozen) concatenated.
template <class T>
std::vector<T> all_values(Model<T>& model) {
  std::vector<T> out;
  model.visit_params([&](const std::string&, auto& p) {
    const auto v = p.value.to_host();
    out.insert(out.end(), v.begin(), v.end());
  });
  return out;
}

template <class T>
constexpr double tolerance() {
  return std::is_same_v<T, float> ? 1e-6 : 1e-12;
}

// The largest per-tensor normalised error between two parameter lists.
template <class T>
double max_rel_error(const std::vector<std::vector<T>>& got, const std::vector<std::vector<T>>& want) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, rel_error(got[i], want[i]));
  return worst;
}

// Whether every rank holds bitwise the same values as rank 0.
template <class T, class Comm>
bool identical_on_all_ranks(Comm& comm, const std::vector<T>& values) {
  const auto n = static_cast<index_t>(values.size());
  std::vector<T> all(values.size() * static_cast<std::size_t>(comm.size()));
  comm.all_gather(values.data(), n, all.data());
  bool same = true;
  for (int r = 1; r < comm.size(); ++r)
    same = same && std::memcmp(all.data(), all.data() + n * r, values.size() * sizeof(T)) == 0;
  return same;
}

}  // namespace nexa_test
