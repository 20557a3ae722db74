// ExpertParallelMoE over MpiComm against the single-process MoELayer: every rank builds the
// reference from the same seed, runs it over the whole batch, and compares the rows of its own
// tokens (outputs, dx), its owned experts' gradients, the router's gradient summed over ranks,
// the global auxiliary losses, and the parameters after one AdamW step.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "nexa/dist/expert_parallel.hpp"
#include "nexa/dist/mpi_comm.hpp"
#include "nexa/dist/no_comm.hpp"
#include "nexa/moe.hpp"
#include "nexa/train/adamw.hpp"

using nexa::index_t;
using nexa::Tensor;
using nexa::dist::MpiComm;

namespace {

template <int K, class T>
using Reference = nexa::MoELayer<nexa::TopKRouter<K>, nexa::T5FFN<nexa::Relu>, nexa::NoShared, nexa::cpu, T>;
template <int K, class T>
using Parallel = nexa::dist::ExpertParallelMoE<nexa::TopKRouter<K>, nexa::T5FFN<nexa::Relu>, MpiComm, T>;

// Largest |a - b| over n values, relative to max(1, largest |b|); counts bitwise-equal values.
struct Diff {
  double error = 0;
  index_t bitwise_equal = 0, count = 0;
};
template <class T>
Diff diff(const T* a, const T* b, index_t n) {
  double scale = 1, worst = 0;
  index_t same = 0;
  for (index_t i = 0; i < n; ++i) {
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    same += a[i] == b[i] ? 1 : 0;
  }
  return {worst / scale, same, n};
}

template <class T>
Tensor<T> rows_of(const Tensor<T>& x, nexa::dist::Share s) {
  Tensor<T> out({s.count(), x.cols()});
  std::copy_n(x.data() + s.begin * x.cols(), s.count() * x.cols(), out.data());
  return out;
}

// Every parameter of a module by name.
template <class Module>
auto params_by_name(Module& m) {
  using P = nexa::Param<typename Module::A>;
  std::map<std::string, P*> out;
  m.visit_params([&](const std::string& name, auto& p) { out[name] = &p; });
  return out;
}

struct Setup {
  index_t tokens = 13;
  index_t experts = 5;
  std::uint64_t seed = 7;
  bool steer = false;  // route by hand: expert E-1 gets no token, expert 0 only rank 0's tokens
};

template <int K, class T>
void check_against_single_process(const Setup& s, double tol) {
  MpiComm comm;
  const nexa::MoEConfig cfg{.d_model = 8, .d_ff = 12, .num_experts = s.experts, .router_init_std = 0.5};
  nexa::Rng ref_rng(s.seed), ep_rng(s.seed), data_rng(s.seed + 100);
  Reference<K, T> ref(cfg, ref_rng);
  Parallel<K, T> ep(cfg, comm, ep_rng);
  auto x = Tensor<T>::randn({s.tokens, cfg.d_model}, data_rng);
  const auto dy = Tensor<T>::randn({s.tokens, cfg.d_model}, data_rng);
  const auto mine = nexa::dist::share_of(s.tokens, comm.size(), comm.rank());
  if (s.steer) {
    // Router row e is 4 * unit vector e; token t leans on expert (t < first of rank 1 ? 0 : 1 + t % (E - 2)).
    const index_t first_of_rank1 = nexa::dist::share_of(s.tokens, comm.size(), 0).end;
    for (auto* w : {&ref.router.weight.value, &ep.router.weight.value}) {
      std::fill_n(w->data(), w->numel(), T(0));
      for (index_t e = 0; e < s.experts; ++e) (*w)(e, e) = T(4);
    }
    for (index_t t = 0; t < s.tokens; ++t) {
      for (index_t c = 0; c < cfg.d_model; ++c) x(t, c) *= T(0.1);
      x(t, t < first_of_rank1 ? 0 : 1 + t % (s.experts - 2)) += T(1);
    }
  }
  const auto x_mine = rows_of(x, mine);
  const auto dy_mine = rows_of(dy, mine);

  typename Reference<K, T>::Cache ref_cache;
  typename Parallel<K, T>::Cache ep_cache;
  const auto y_ref = ref.forward(x, ref_cache);
  const auto y = ep.forward(x_mine, ep_cache);
  const auto y_want = rows_of(y_ref, mine);
  const Diff dyv = diff(y.data(), y_want.data(), y.numel());
  CHECK(dyv.error <= tol);
  // Float logits may differ in the last bit between the local and the global GEMM: aux to tol.
  CHECK(std::abs(ep_cache.aux_loss() - ref_cache.aux_loss()) <= tol * std::max(1.0, ref_cache.aux_loss()));
  CHECK(ep_cache.aux().load_balance > 0);
  CHECK(ep_cache.tokens_per_expert() == ref_cache.tokens_per_expert());
  if (s.steer && K == 1) {
    CHECK(ep_cache.tokens_per_expert().back() == 0);                         // an expert no rank sends a token to
    if (comm.rank() == 0) CHECK(ep_cache.owned_offsets[1] == mine.count());  // expert 0: rank 0's tokens only
  }

  const auto dx_ref = ref.backward(dy, ref_cache);
  const auto dx = ep.backward(dy_mine, ep_cache);
  const auto dx_want = rows_of(dx_ref, mine);
  const Diff ddx = diff(dx.data(), dx_want.data(), dx.numel());
  CHECK(ddx.error <= tol);

  auto ref_params = params_by_name(ref);
  auto ep_params = params_by_name(ep);
  REQUIRE(ep_params.size() == 1 + 2 * static_cast<std::size_t>(ep.owned().count()));
  // The router's gradient is each rank's tokens' share: their sum is the single-process one.
  auto& router_grad = ep.router.weight.grad;
  comm.all_reduce_sum(router_grad.data(), router_grad.data(), router_grad.numel());
  Diff dgrad;
  for (const auto& [name, p] : ep_params) {
    CAPTURE(name);
    REQUIRE(ref_params.count(name) == 1);
    const Diff g = diff(p->grad.data(), ref_params[name]->grad.data(), p->grad.numel());
    CHECK(g.error <= tol);
    if (name.rfind("experts.", 0) == 0) {
      dgrad.error = std::max(dgrad.error, g.error);
      dgrad.bitwise_equal += g.bitwise_equal;
      dgrad.count += g.count;
    }
  }

  nexa::train::AdamW ref_opt(ref, {.lr = 1e-2});
  nexa::train::AdamW ep_opt(ep, {.lr = 1e-2});
  ref_opt.step();
  ep_opt.step();
  for (const auto& [name, p] : ep_params) {
    CAPTURE(name);
    CHECK(diff(p->value.data(), ref_params[name]->value.data(), p->value.numel()).error <= tol);
  }
  std::ostringstream note;
  note << "rank " << comm.rank() << "/" << comm.size() << " T=" << s.tokens << " E=" << s.experts << " k=" << K << " "
       << (sizeof(T) == 4 ? "float" : "double") << ": bitwise-equal y " << dyv.bitwise_equal << "/" << dyv.count
       << ", dx " << ddx.bitwise_equal << "/" << ddx.count << ", expert grads " << dgrad.bitwise_equal << "/"
       << dgrad.count << "; max rel error y " << dyv.error << ", dx " << ddx.error << ", expert grads " << dgrad.error;
  MESSAGE(note.str());
}

}  // namespace

TEST_CASE("expert parallel top-1 equals the single-process layer (double, E = 5, T not divisible)") {
  check_against_single_process<1, double>({.tokens = 13, .experts = 5}, 1e-12);
}

TEST_CASE("expert parallel top-2 equals the single-process layer (double, E = 4 and 5)") {
  check_against_single_process<2, double>({.tokens = 13, .experts = 5, .seed = 3}, 1e-12);
  check_against_single_process<2, double>({.tokens = 22, .experts = 4, .seed = 4}, 1e-12);
}

TEST_CASE("expert parallel in float is within 1e-6 of the single-process layer") {
  check_against_single_process<1, float>({.tokens = 17, .experts = 5, .seed = 11}, 1e-6);
  check_against_single_process<2, float>({.tokens = 32, .experts = 8, .seed = 12}, 1e-6);
}

TEST_CASE("experts that receive no tokens, from one rank or from all") {
  check_against_single_process<1, double>({.tokens = 12, .experts = 5, .seed = 5, .steer = true}, 1e-12);
  check_against_single_process<2, double>({.tokens = 12, .experts = 5, .seed = 6, .steer = true}, 1e-12);
}

TEST_CASE("fewer tokens than ranks: a rank with no tokens still takes part") {
  check_against_single_process<2, double>({.tokens = 3, .experts = 4, .seed = 8}, 1e-12);
}

TEST_CASE("owned experts carry the single-process layer's names") {
  MpiComm comm;
  nexa::Rng rng(1);
  Parallel<2, float> ep({.d_model = 4, .d_ff = 6, .num_experts = 6}, comm, rng);
  const auto own = nexa::dist::share_of(6, comm.size(), comm.rank());
  CHECK(ep.owned().begin == own.begin);
  CHECK(ep.owned().end == own.end);
  std::vector<std::string> names;
  ep.visit_params([&](const std::string& name, auto&) { names.push_back(name); });
  REQUIRE(names.size() == 1 + 2 * static_cast<std::size_t>(own.count()));
  CHECK(names[0] == "router.classifier.weight");
  CHECK(names[1] == "experts.expert_" + std::to_string(own.begin) + ".wi.weight");
  CHECK(names.back() == "experts.expert_" + std::to_string(own.end - 1) + ".wo.weight");
}

TEST_CASE("every rank raises the same error for bad configurations and inputs") {
  MpiComm comm;
  const int p = comm.size(), last = p - 1;
  nexa::Rng rng(2);
  using Top1 = Parallel<1, float>;
  if (p > 1) {
    CHECK_THROWS_WITH_AS(Top1({.d_model = 4, .d_ff = 6, .num_experts = p - 1}, comm, rng),
                         doctest::Contains("every rank must own at least one expert"), nexa::Error);
    const index_t d_model = comm.rank() == last ? 5 : 4;
    CHECK_THROWS_WITH_AS(Top1({.d_model = d_model, .d_ff = 6, .num_experts = p}, comm, rng),
                         doctest::Contains("every rank needs the same d_model"), nexa::Error);
  }
  CHECK_THROWS_WITH_AS(Top1({.d_model = 4, .d_ff = 6, .num_experts = p, .capacity_factor = 1.0}, comm, rng),
                       doctest::Contains("capacity_factor expected 0"), nexa::Error);

  Parallel<2, float> ep({.d_model = 4, .d_ff = 6, .num_experts = 2 * p}, comm, rng);
  typename Parallel<2, float>::Cache cache;
  const auto bad_x = Tensor<float>::randn({3, comm.rank() == last ? 5 : 4}, rng);
  CHECK_THROWS_WITH_AS((void)ep.forward(bad_x, cache), doctest::Contains("expected 4 on every rank, got 5 on rank"),
                       nexa::Error);
  // The layer is still usable after every rank raised.
  const auto x = Tensor<float>::randn({3, 4}, rng);
  const auto y = ep.forward(x, cache);
  CHECK(y.shape() == x.shape());
  const auto bad_dy = Tensor<float>::randn({comm.rank() == last ? 2 : 3, 4}, rng);
  CHECK_THROWS_AS((void)ep.backward(bad_dy, cache), nexa::Error);
  const auto dx = ep.backward(Tensor<float>::randn({3, 4}, rng), cache);
  CHECK(dx.shape() == x.shape());
}

TEST_CASE("over NoComm the layer is the single-process layer, bit for bit") {
  const nexa::MoEConfig cfg{.d_model = 8, .d_ff = 12, .num_experts = 5, .router_init_std = 0.5};
  nexa::dist::NoComm comm;
  nexa::Rng ref_rng(9), ep_rng(9), data_rng(10);
  Reference<2, float> ref(cfg, ref_rng);
  nexa::dist::ExpertParallelMoE<nexa::TopKRouter<2>, nexa::T5FFN<nexa::Relu>, nexa::dist::NoComm> ep(cfg, comm, ep_rng);
  const auto x = Tensor<float>::randn({2, 7, cfg.d_model}, data_rng);  // [batch, seq, d]
  const auto dy = Tensor<float>::randn({2, 7, cfg.d_model}, data_rng);
  typename Reference<2, float>::Cache ref_cache;
  typename decltype(ep)::Cache ep_cache;
  const auto y_ref = ref.forward(x, ref_cache);
  const auto y = ep.forward(x, ep_cache);
  REQUIRE(y.shape() == x.shape());
  CHECK(diff(y.data(), y_ref.data(), y.numel()).bitwise_equal == y.numel());
  CHECK(ep_cache.aux_loss() == doctest::Approx(ref_cache.aux_loss()).epsilon(1e-12));
  const auto dx_ref = ref.backward(dy, ref_cache);
  const auto dx = ep.backward(dy, ep_cache);
  CHECK(diff(dx.data(), dx_ref.data(), dx.numel()).bitwise_equal == dx.numel());
  auto ref_params = params_by_name(ref);
  for (const auto& [name, p] : params_by_name(ep)) {
    CAPTURE(name);
    CHECK(diff(p->grad.data(), ref_params[name]->grad.data(), p->grad.numel()).bitwise_equal == p->grad.numel());
  }
}
