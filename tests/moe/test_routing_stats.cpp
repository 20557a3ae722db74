#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "nexa/moe.hpp"

using nexa::Tensor;

TEST_CASE("Routing statistics equal hand-computed values and serialise as one JSON line") {
  using namespace nexa;
  Rng rng(110);
  MoELayer<TopKRouter<1>, T5FFN<Relu>, NoShared, cpu, double> layer({.d_model = 2, .d_ff = 3, .num_experts = 2}, rng);
  layer.router.weight.value = Tensor<double>::from_host({2, 2}, {1, 0, 0, 1});
  const double ln3 = std::log(3.0);
  // Probabilities (.5,.5), (.75,.25), (.25,.75), (.75,.25): first choices 0, 0, 1, 0.
  auto x = Tensor<double>::from_host({4, 2}, {0, 0, ln3, 0, 0, ln3, ln3, 0});
  decltype(layer)::Cache cache;
  (void)layer.forward(x, cache);
  const std::vector<std::int32_t> labels{0, 1, 1, -1};
  const RoutingStats s = routing_stats(cache, labels);
  CHECK(s.tokens == 4);
  CHECK(s.tokens_per_expert == std::vector<index_t>{3, 1});
  CHECK(s.dropped == 0);
  CHECK(s.mean_probability[0] == doctest::Approx(0.5625));
  CHECK(s.mean_probability[1] == doctest::Approx(0.4375));
  const double h_half = std::log(2.0), h_quarter = -(0.75 * std::log(0.75) + 0.25 * std::log(0.25));
  CHECK(s.entropy == doctest::Approx((h_half + 3 * h_quarter) / 4));
  REQUIRE(s.accuracy.has_value());
  CHECK(s.labelled == 3);
  CHECK(*s.accuracy == doctest::Approx(2.0 / 3.0));  // token 1 was routed to 0, labelled 1
  std::ostringstream line;
  s.write_json_line(line);
  const std::string json = line.str();
  CHECK(json.find("\"tokens_per_expert\": [3, 1]") != std::string::npos);
  CHECK(json.find("\"accuracy\": ") != std::string::npos);
  CHECK(std::count(json.begin(), json.end(), '\n') == 1);
  const std::vector<std::int32_t> short_labels{0};
  CHECK_THROWS_AS((void)routing_stats(cache, short_labels), Error);
}
