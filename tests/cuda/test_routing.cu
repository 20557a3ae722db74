// RoutingKernel<cuda> against RoutingKernel<cpu>, called directly so that every output starts
// poisoned: an element the kernel does not write shows up as NaN or a bad index.
#include <optional>
#include <string>
#include <tuple>

#include "support.hpp"

using namespace nexa_test;
using nexa::Tensor;
using Cpu = nexa::RoutingKernel<nexa::cpu>;
using Gpu = nexa::RoutingKernel<nexa::cuda>;

namespace {

struct Sizes {
  index_t tokens, experts, k;
};

// Integer logits in [0, 4) when `ties`, so many probabilities are exactly equal.
template <class A>
std::vector<A> make_logits(const Sizes& s, nexa::Rng& rng, bool ties) {
  auto z = random_normal<A>(s.tokens * s.experts, rng, 3.0);
  if (ties)
    for (auto& v : z) v = static_cast<A>(static_cast<int>(std::abs(v)) % 4);
  return z;
}

template <class A>
void compare_softmax_topk(const Sizes& s, bool renormalize, bool ties, nexa::Rng& rng) {
  CAPTURE(s.tokens);
  CAPTURE(s.experts);
  CAPTURE(s.k);
  CAPTURE(renormalize);
  CAPTURE(ties);
  const auto z = make_logits<A>(s, rng, ties);
  const auto te = static_cast<std::size_t>(s.tokens * s.experts), tk = static_cast<std::size_t>(s.tokens * s.k);
  auto probs = host_poisoned<A>(te), weights = host_poisoned<A>(tk);
  auto experts = host_poisoned<std::int32_t>(tk);
  Cpu::softmax_topk(z.data(), s.tokens, s.experts, s.k, renormalize, probs.data(), experts.data(), weights.data());

  const auto dz = DeviceTensor<A>::from_host({s.tokens, s.experts}, z);
  auto dprobs = poisoned<A>({s.tokens, s.experts}), dweights = poisoned<A>({s.tokens, s.k});
  auto dexperts = poisoned<std::int32_t>({s.tokens, s.k});
  Gpu::softmax_topk(dz.data(), s.tokens, s.experts, s.k, renormalize, dprobs.data(), dexperts.data(), dweights.data());
  CHECK(dexperts.to_host() == experts);
  CHECK(rel_error(dprobs.to_host(), probs) < tolerance<A>());
  CHECK(rel_error(dweights.to_host(), weights) < tolerance<A>());
}

template <class A>
void compare_softmax_topk_backward(const Sizes& s, bool renormalize, bool with_d_probs, nexa::Rng& rng) {
  CAPTURE(s.tokens);
  CAPTURE(s.experts);
  CAPTURE(s.k);
  CAPTURE(renormalize);
  CAPTURE(with_d_probs);
  const auto z = make_logits<A>(s, rng, false);
  const auto te = static_cast<std::size_t>(s.tokens * s.experts), tk = static_cast<std::size_t>(s.tokens * s.k);
  std::vector<A> probs(te), weights(tk);
  std::vector<std::int32_t> experts(tk);
  Cpu::softmax_topk(z.data(), s.tokens, s.experts, s.k, renormalize, probs.data(), experts.data(), weights.data());
  const auto dw = random_normal<A>(s.tokens * s.k, rng);
  const auto dp = random_normal<A>(s.tokens * s.experts, rng);
  auto dlogits = host_poisoned<A>(te);
  Cpu::softmax_topk_backward(probs.data(), experts.data(), weights.data(), dw.data(),
                             with_d_probs ? dp.data() : nullptr, s.tokens, s.experts, s.k, renormalize, dlogits.data());

  const auto g_probs = DeviceTensor<A>::from_host({s.tokens, s.experts}, probs);
  const auto g_experts = DeviceTensor<std::int32_t>::from_host({s.tokens, s.k}, experts);
  const auto g_weights = DeviceTensor<A>::from_host({s.tokens, s.k}, weights);
  const auto g_dw = DeviceTensor<A>::from_host({s.tokens, s.k}, dw);
  const auto g_dp = DeviceTensor<A>::from_host({s.tokens, s.experts}, dp);
  auto g_dlogits = poisoned<A>({s.tokens, s.experts});
  Gpu::softmax_topk_backward(g_probs.data(), g_experts.data(), g_weights.data(), g_dw.data(),
                             with_d_probs ? g_dp.data() : nullptr, s.tokens, s.experts, s.k, renormalize,
                             g_dlogits.data());
  CHECK(rel_error(g_dlogits.to_host(), dlogits) < tolerance<A>());
}

// Expert choices with a skewed load: about half go to expert 0, some experts get none.
std::vector<std::int32_t> make_choices(index_t tokens, index_t k, index_t experts, nexa::Rng& rng) {
  const auto u = Tensor<double>::uniform({tokens * k}, rng, 0.0, 1.0).to_host();
  std::vector<std::int32_t> out(u.size());
  for (std::size_t a = 0; a < u.size(); ++a) {
    const double x = u[a];
    out[a] = x < 0.5 ? 0
                     : static_cast<std::int32_t>(
                           std::min<index_t>(experts - 1, static_cast<index_t>((x - 0.5) * 2 * experts * 0.8)));
  }
  return out;
}

struct HostPlan {
  std::vector<index_t> offsets;
  std::vector<std::int32_t> slot_token, assignment_slot;
};

HostPlan cpu_plan(const std::vector<std::int32_t>& choices, index_t tokens, index_t k, index_t experts) {
  HostPlan p{std::vector<index_t>(static_cast<std::size_t>(experts + 1), -5),
             host_poisoned<std::int32_t>(choices.size()), host_poisoned<std::int32_t>(choices.size())};
  Cpu::group_by_expert(choices.data(), tokens, k, experts, p.offsets.data(), p.slot_token.data(),
                       p.assignment_slot.data());
  return p;
}

// Everything the combine tests need, on both devices.
struct CombineCase {
  index_t tokens, k, width;
  HostPlan plan;
  DeviceTensor<std::int32_t> slot_token, assignment_slot;
};

CombineCase make_combine_case(index_t tokens, index_t k, index_t experts, index_t width, nexa::Rng& rng) {
  const auto choices = make_choices(tokens, k, experts, rng);
  auto plan = cpu_plan(choices, tokens, k, experts);
  auto st = DeviceTensor<std::int32_t>::from_host({tokens * k}, plan.slot_token);
  auto as = DeviceTensor<std::int32_t>::from_host({tokens, k}, plan.assignment_slot);
  return {tokens, k, width, std::move(plan), std::move(st), std::move(as)};
}

const std::vector<std::tuple<index_t, index_t, index_t, index_t>> combine_sizes{// tokens, k, experts, width
                                                                                {1, 1, 1, 1},
                                                                                {7, 2, 4, 33},
                                                                                {300, 4, 16, 64},
                                                                                {129, 8, 64, 300},
                                                                                {1000, 2, 8, 5}};

}  // namespace

TEST_CASE("cuda softmax_topk matches the CPU, ties to the lower index") {
  nexa::Rng rng(31);
  const std::vector<Sizes> sizes{{1, 1, 1},    {37, 8, 2}, {300, 64, 6}, {129, 100, 1},
                                 {64, 130, 8}, {50, 4, 4}, {5, 33, 33}};
  for (const auto& s : sizes) {
    for (bool renormalize : {true, false}) {
      for (bool ties : {false, true}) {
        compare_softmax_topk<float>(s, renormalize, ties, rng);
        compare_softmax_topk<double>(s, renormalize, ties, rng);
      }
    }
  }
}

TEST_CASE("cuda softmax_topk through the op front end") {
  auto logits = Tensor<float>::from_host({2, 4}, {0.f, 2.f, 1.f, -1.f, 3.f, 3.f, 0.f, 1.f});
  auto r = nexa::ops::softmax_topk(logits.to<nexa::cuda>(), 2, true);
  CHECK(r.experts.to_host() == std::vector<std::int32_t>{1, 2, 0, 1});
  const auto w = r.weights.to_host();
  CHECK(w[2] == doctest::Approx(0.5));
  CHECK(w[0] + w[1] == doctest::Approx(1.0));
}

TEST_CASE("cuda softmax_topk_backward matches the CPU") {
  nexa::Rng rng(32);
  const std::vector<Sizes> sizes{{1, 1, 1}, {37, 8, 2}, {300, 64, 6}, {64, 130, 8}, {50, 4, 4}};
  for (const auto& s : sizes) {
    for (bool renormalize : {true, false}) {
      for (bool with_d_probs : {false, true}) {
        compare_softmax_topk_backward<float>(s, renormalize, with_d_probs, rng);
        compare_softmax_topk_backward<double>(s, renormalize, with_d_probs, rng);
      }
    }
  }
}

TEST_CASE("cuda group_by_expert is the CPU's stable counting sort, exactly") {
  nexa::Rng rng(33);
  // tokens, k, experts: several tiles, large expert counts (larger tiles), empty experts, no tokens.
  const std::vector<std::tuple<index_t, index_t, index_t>> sizes{
      {0, 2, 4}, {1, 1, 1}, {3, 2, 3}, {1000, 2, 8}, {3000, 4, 64}, {777, 3, 300}, {2000, 8, 1000}, {100, 1, 5000}};
  for (const auto& [tokens, k, experts] : sizes) {
    CAPTURE(tokens);
    CAPTURE(k);
    CAPTURE(experts);
    const auto choices = make_choices(tokens, k, experts, rng);
    const auto want = cpu_plan(choices, tokens, k, experts);
    const auto g_choices = DeviceTensor<std::int32_t>::from_host({tokens, k}, choices);
    std::vector<index_t> offsets(static_cast<std::size_t>(experts + 1), -5);
    auto slot_token = poisoned<std::int32_t>({tokens * k});
    auto assignment_slot = poisoned<std::int32_t>({tokens, k});
    Gpu::group_by_expert(g_choices.data(), tokens, k, experts, offsets.data(), slot_token.data(),
                         assignment_slot.data());
    CHECK(offsets == want.offsets);
    CHECK(slot_token.to_host() == want.slot_token);
    CHECK(assignment_slot.to_host() == want.assignment_slot);
  }
  // Through the front end, with duplicate experts within a token.
  auto plan = nexa::ops::group_by_expert(DeviceTensor<std::int32_t>::from_host({3, 2}, {2, 0, 0, 1, 2, 2}), 3);
  CHECK(plan.offsets == std::vector<index_t>{0, 2, 3, 6});
  CHECK(plan.slot_token.to_host() == std::vector<std::int32_t>{0, 1, 1, 0, 2, 2});
  CHECK(plan.assignment_slot.to_host() == std::vector<std::int32_t>{3, 0, 1, 2, 4, 5});
}

TEST_CASE("cuda group_by_expert rejects out-of-range experts like the CPU front end") {
  const auto bad = DeviceTensor<std::int32_t>::from_host({3, 2}, {0, 1, 2, 7, -1, 3});
  CHECK_THROWS_WITH_AS((void)nexa::ops::group_by_expert(bad, 3),
                       "group_by_expert: expert index 7 at assignment 3 is outside [0, 3)", nexa::Error);
  CHECK_THROWS_WITH_AS((void)nexa::ops::group_by_expert(bad, 0),
                       "group_by_expert: expert index 0 at assignment 0 is outside [0, 0)", nexa::Error);
  // The stream is still usable afterwards.
  auto ok = nexa::ops::group_by_expert(bad, 8);
  CHECK(ok.offsets.back() == 6);
}

TEST_CASE("cuda gather_rows matches the CPU") {
  nexa::Rng rng(34);
  for (const auto& [tokens, k, experts, width] : combine_sizes) {
    CAPTURE(width);
    const auto c = make_combine_case(tokens, k, experts, width, rng);
    const auto src = random_normal<float>(tokens * width, rng);
    auto want = host_poisoned<float>(static_cast<std::size_t>(tokens * k * width));
    Cpu::gather_rows(src.data(), c.plan.slot_token.data(), tokens * k, width, want.data());
    const auto g_src = DeviceTensor<float>::from_host({tokens, width}, src);
    auto got = poisoned<float>({tokens * k, width});
    Gpu::gather_rows(g_src.data(), c.slot_token.data(), tokens * k, width, got.data());
    CHECK(got.to_host() == want);
  }
}

TEST_CASE("cuda weighted_combine matches the CPU and is bitwise reproducible") {
  nexa::Rng rng(35);
  for (const auto& [tokens, k, experts, width] : combine_sizes) {
    CAPTURE(tokens);
    CAPTURE(width);
    const auto c = make_combine_case(tokens, k, experts, width, rng);
    const auto src = random_normal<float>(tokens * k * width, rng);
    const auto weights = random_normal<float>(tokens * k, rng);
    const auto weights_d = random_normal<double>(tokens * k, rng);
    const auto dst0 = random_normal<float>(tokens * width, rng);
    const auto g_src = DeviceTensor<float>::from_host({tokens * k, width}, src);
    const auto g_weights = DeviceTensor<float>::from_host({tokens, k}, weights);
    const auto g_weights_d = DeviceTensor<double>::from_host({tokens, k}, weights_d);
    for (float beta : {0.f, 1.f, 0.5f}) {
      CAPTURE(beta);
      for (int which : {0, 1, 2}) {  // float weights, no weights (ones), double weights
        CAPTURE(which);
        auto want = beta == 0.f ? host_poisoned<float>(dst0.size()) : dst0;
        std::vector<float> runs[2];
        for (auto& run : runs) {
          auto got =
              beta == 0.f ? poisoned<float>({tokens, width}) : DeviceTensor<float>::from_host({tokens, width}, dst0);
          if (which == 2)
            Gpu::weighted_combine(g_src.data(), c.assignment_slot.data(), g_weights_d.data(), tokens, k, width, beta,
                                  got.data());
          else
            Gpu::weighted_combine(g_src.data(), c.assignment_slot.data(), which == 0 ? g_weights.data() : nullptr,
                                  tokens, k, width, beta, got.data());
          run = got.to_host();
        }
        if (which == 2)
          Cpu::weighted_combine(src.data(), c.plan.assignment_slot.data(), weights_d.data(), tokens, k, width, beta,
                                want.data());
        else
          Cpu::weighted_combine(src.data(), c.plan.assignment_slot.data(), which == 0 ? weights.data() : nullptr,
                                tokens, k, width, beta, want.data());
        CHECK(rel_error(runs[0], want) < tolerance<float>());
        CHECK(bitwise_equal(runs[0], runs[1]));
      }
    }
  }
}

TEST_CASE("cuda scatter_weighted matches the CPU") {
  nexa::Rng rng(36);
  for (const auto& [tokens, k, experts, width] : combine_sizes) {
    CAPTURE(width);
    const auto c = make_combine_case(tokens, k, experts, width, rng);
    const auto dy = random_normal<float>(tokens * width, rng);
    const auto weights = random_normal<float>(tokens * k, rng);
    auto want = host_poisoned<float>(static_cast<std::size_t>(tokens * k * width));
    Cpu::scatter_weighted(dy.data(), c.plan.assignment_slot.data(), weights.data(), tokens, k, width, want.data());
    const auto g_dy = DeviceTensor<float>::from_host({tokens, width}, dy);
    const auto g_weights = DeviceTensor<float>::from_host({tokens, k}, weights);
    auto got = poisoned<float>({tokens * k, width});
    Gpu::scatter_weighted(g_dy.data(), c.assignment_slot.data(), g_weights.data(), tokens, k, width, got.data());
    CHECK(rel_error(got.to_host(), want) < tolerance<float>());
  }
}

TEST_CASE("cuda combine_weight_grad matches the CPU and is bitwise reproducible") {
  nexa::Rng rng(37);
  for (const auto& [tokens, k, experts, width] : combine_sizes) {
    CAPTURE(width);
    const auto c = make_combine_case(tokens, k, experts, width, rng);
    const auto dy = random_normal<float>(tokens * width, rng);
    const auto out = random_normal<float>(tokens * k * width, rng);
    const auto g_dy = DeviceTensor<float>::from_host({tokens, width}, dy);
    const auto g_out = DeviceTensor<float>::from_host({tokens * k, width}, out);
    auto want = host_poisoned<float>(static_cast<std::size_t>(tokens * k));
    Cpu::combine_weight_grad(dy.data(), out.data(), c.plan.assignment_slot.data(), tokens, k, width, want.data());
    std::vector<float> runs[2];
    for (auto& run : runs) {
      auto got = poisoned<float>({tokens, k});
      Gpu::combine_weight_grad(g_dy.data(), g_out.data(), c.assignment_slot.data(), tokens, k, width, got.data());
      run = got.to_host();
    }
    CHECK(rel_error(runs[0], want) < tolerance<float>());
    CHECK(bitwise_equal(runs[0], runs[1]));
    // Accumulated in double from float inputs.
    std::vector<double> want_d(want.size());
    Cpu::combine_weight_grad(dy.data(), out.data(), c.plan.assignment_slot.data(), tokens, k, width, want_d.data());
    auto got_d = poisoned<double>({tokens, k});
    Gpu::combine_weight_grad(g_dy.data(), g_out.data(), c.assignment_slot.data(), tokens, k, width, got_d.data());
    CHECK(rel_error(got_d.to_host(), want_d) < tolerance<double>());
  }
}

TEST_CASE("a whole routing forward and backward on cuda matches the CPU") {
  nexa::Rng rng(38);
  const index_t tokens = 200, experts = 16, k = 2, width = 48;
  const auto logits = Tensor<float>::randn({tokens, experts}, rng, 2.0);
  const auto x = Tensor<float>::randn({tokens, width}, rng);
  const auto dy = Tensor<float>::randn({tokens, width}, rng);
  auto run = [&](auto device) {
    using D = decltype(device);
    auto r = nexa::ops::softmax_topk(logits.to<D>(), k, true);
    auto plan = nexa::ops::group_by_expert(r.experts, experts);
    auto xs = nexa::ops::gather_rows(x.to<D>(), plan);
    auto y = Tensor<float, D>::uninitialized({tokens, width});
    nexa::ops::weighted_combine(xs, plan, r.weights.data(), y);
    auto d_xs = nexa::ops::scatter_weighted(dy.to<D>(), plan, r.weights);
    auto d_w = nexa::ops::combine_weight_grad<float>(dy.to<D>(), xs, plan);
    auto d_logits =
        nexa::ops::softmax_topk_backward(r, d_w.cview(), std::optional<nexa::TensorView<const float, D>>{}, true);
    return std::tuple{y.to_host(), d_xs.to_host(), d_logits.to_host(), plan.offsets};
  };
  const auto [y_c, dxs_c, dl_c, off_c] = run(nexa::cpu{});
  const auto [y_g, dxs_g, dl_g, off_g] = run(nexa::cuda{});
  CHECK(off_g == off_c);
  CHECK(rel_error(y_g, y_c) < tolerance<float>());
  CHECK(rel_error(dxs_g, dxs_c) < tolerance<float>());
  CHECK(rel_error(dl_g, dl_c) < tolerance<float>());
}
