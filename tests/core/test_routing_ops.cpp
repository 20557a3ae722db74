#include <doctest/doctest.h>

#include "nexa/ops/routing.hpp"

using nexa::Tensor;

TEST_CASE("softmax_topk picks the k largest probabilities and renormalises") {
  auto logits = Tensor<float>::from_host({2, 4}, {0.f, 2.f, 1.f, -1.f, 3.f, 3.f, 0.f, 1.f});
  auto r = nexa::ops::softmax_topk(logits, 2, true);
  CHECK(r.experts(0, 0) == 1);
  CHECK(r.experts(0, 1) == 2);
  CHECK(r.experts(1, 0) == 0);  // tie goes to the lower index
  CHECK(r.experts(1, 1) == 1);
  CHECK(r.weights(0, 0) + r.weights(0, 1) == doctest::Approx(1.0));
  CHECK(r.weights(1, 0) == doctest::Approx(0.5));
  float sum = 0;
  for (int e = 0; e < 4; ++e) sum += r.probs(0, e);
  CHECK(sum == doctest::Approx(1.0));
  CHECK_THROWS_AS((void)nexa::ops::softmax_topk(logits, 5, true), nexa::Error);
}

TEST_CASE("group_by_expert is a stable counting sort and the combine inverts it") {
  auto experts = Tensor<std::int32_t>::from_host({3, 2}, {2, 0, 0, 1, 2, 1});
  auto plan = nexa::ops::group_by_expert(experts, 3);
  CHECK(plan.offsets == std::vector<nexa::index_t>{0, 2, 4, 6});
  CHECK(plan.slot_token.to_host() == std::vector<std::int32_t>{0, 1, 1, 2, 0, 2});
  auto x = Tensor<float>::from_host({3, 2}, {1, 2, 3, 4, 5, 6});
  auto xs = nexa::ops::gather_rows(x, plan);
  CHECK(xs(2, 0) == 3.f);
  auto w = Tensor<float>::from_host({3, 2}, {0.5f, 0.25f, 1.f, 1.f, 2.f, 0.f});
  Tensor<float> y({3, 2});
  nexa::ops::weighted_combine(xs, plan, w.data(), y);
  CHECK(y(0, 0) == doctest::Approx(0.75));
  CHECK(y(1, 1) == doctest::Approx(8.0));
  CHECK(y(2, 0) == doctest::Approx(10.0));
  auto bad = Tensor<std::int32_t>::from_host({1, 1}, {3});
  CHECK_THROWS_WITH_AS((void)nexa::ops::group_by_expert(bad, 3), doctest::Contains("outside [0, 3)"), nexa::Error);
}

TEST_CASE("A capacity limit keeps first choices before second choices, in token order") {
  // First choices: t0 -> 0, t1 -> 1, t2 -> 0; second choices: t0 -> 1, t1 -> 0, t2 -> 1.
  auto experts = Tensor<std::int32_t>::from_host({3, 2}, {0, 1, 1, 0, 0, 1});
  auto plan = nexa::ops::group_by_expert(experts, 2, 2);
  // Expert 0 keeps (t0, 1st) and (t2, 1st) and drops (t1, 2nd); expert 1 keeps (t1, 1st) and
  // (t0, 2nd) and drops (t2, 2nd). Kept slots stay in token order within each expert.
  CHECK(plan.offsets == std::vector<nexa::index_t>{0, 2, 4});
  CHECK(plan.slot_token.to_host() == std::vector<std::int32_t>{0, 2, 0, 1});
  CHECK(plan.assignment_slot.to_host() == std::vector<std::int32_t>{0, 2, 3, -1, 1, -1});
  // A dropped assignment contributes nothing to the combine and gets no weight gradient.
  auto out = Tensor<float>::from_host({4, 1}, {1, 2, 3, 4});
  auto w = Tensor<float>::full({3, 2}, 1.0f);
  Tensor<float> y({3, 1});
  nexa::ops::weighted_combine(out, plan, w.data(), y);
  CHECK(y.to_host() == std::vector<float>{1 + 3, 4, 2});
  auto dw = nexa::ops::combine_weight_grad<float>(Tensor<float>::full({3, 1}, 1.0f), out, plan);
  CHECK(dw.to_host() == std::vector<float>{1, 3, 4, 0, 2, 0});
}
