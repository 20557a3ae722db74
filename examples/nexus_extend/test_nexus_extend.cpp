// nexus-extend's pieces on tiny models: upcycling a nexa-moe checkpoint by name, add_expert
// keeping the old experts and routing logits, the domain embeddings (MiniLM, skipped without
// it), routing counts, mixed batches and the extended checkpoint's round trip.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "domain_data.hpp"
#include "nexa/train/train.hpp"
#include "nexus_checkpoint.hpp"
#include "nexus_model.hpp"

namespace fs = std::filesystem;
using nexa::index_t;
using nexa::Tensor;

namespace {

constexpr index_t kDim = 12;  // the domain embeddings' size in these tests

nexa_moe::LMConfig tiny_lm() { return {.vocab = 40, .d_model = 16, .heads = 2, .layers = 2, .d_ff = 24, .experts = 3}; }

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("nexus_extend_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A nexa-moe-like checkpoint: config.json and nexa_moe.safetensors holding an LM with the demo's
// names (a token-routed MoE LM: its router's names differ from Nexus's, as the BERT router's do).
nexa_moe::Checkpoint write_source_checkpoint(const fs::path& dir, nexa_moe::TokenMoELM& source) {
  const nexa_moe::LMConfig lm = tiny_lm();
  examples::write_file(dir / "config.json",
                       nexa::detail::concat("{\"format\": \"nexa-moe-demo\", \"domains\": [\"PHYS\", \"BIO\", "
                                            "\"MAT\"], \"lm\": ",
                                            nexa_moe::lm_config_json(lm), ", \"classifier_max_len\": 48}\n"),
                       "test");
  nexa::save_safetensors(source, dir / "nexa_moe.safetensors");
  return nexa_moe::Checkpoint::open(dir);
}

std::map<std::string, std::vector<float>> values_of(auto& model) {
  std::map<std::string, std::vector<float>> out;
  model.visit_params([&](const std::string& name, auto& p) { out[name] = p.value.to_host(); });
  return out;
}

Tensor<float> tiny_domains(index_t n, nexa::Rng& rng) { return Tensor<float>::randn({n, kDim}, rng); }

std::vector<std::int32_t> ids(std::initializer_list<std::int32_t> v) { return v; }

}  // namespace

TEST_CASE("upcycle copies every LM weight of the nexa-moe checkpoint and sets the domain embeddings") {
  nexa::Rng rng(1);
  const nexa_moe::LMConfig lm = tiny_lm();
  nexa_moe::TokenMoELM source(lm, nexa_moe::moe_ffn(lm), rng);
  const fs::path dir = temp_dir("upcycle");
  const nexa_moe::Checkpoint ckpt = write_source_checkpoint(dir, source);
  const Tensor<float> domains = tiny_domains(3, rng);
  nexus_extend::NexusLM model = nexus_extend::upcycle(ckpt, domains, {}, rng);

  const auto src = values_of(source);
  const auto got = values_of(model);
  index_t copied = 0, routers = 0;
  for (const auto& [name, v] : got) {
    if (nexus_extend::is_router_param(name)) {
      ++routers;
      continue;
    }
    REQUIRE(src.count(name) == 1);
    CHECK(src.at(name) == v);  // bit for bit
    ++copied;
  }
  CHECK(routers == 4 * lm.layers);  // domain embeddings and three projection matrices per layer
  CHECK(copied > 0);
  for (auto& block : model.stack.blocks) {
    CHECK(block.ffn.num_experts() == 3);
    CHECK(block.ffn.router.domain_embeddings.value.to_host() == domains.to_host());
    CHECK_FALSE(block.ffn.router.domain_embeddings.trainable);
  }
  // One domain embedding per expert, or an error.
  CHECK_THROWS_AS((void)nexus_extend::upcycle(ckpt, tiny_domains(2, rng), {}, rng), nexa::Error);
  fs::remove_all(dir);
}

TEST_CASE("add_domain_expert keeps the old experts and the old routing logits; the new expert copies one") {
  nexa::Rng rng(2);
  const nexa_moe::LMConfig lm = tiny_lm();
  nexus_extend::NexusLM model(lm, nexus_extend::nexus_ffn(lm, kDim, {}), rng);
  nexus_extend::set_domain_embeddings(model, tiny_domains(3, rng));
  auto& layer = model.stack.blocks.front().ffn;
  const auto x = Tensor<float>::randn({30, lm.d_model}, rng);
  nexus_extend::NexusFFN::Cache before;
  const auto y_before = layer.forward(x, before);
  const auto old_values = values_of(model);

  const Tensor<float> med = Tensor<float>::randn({kDim}, rng);
  nexus_extend::add_domain_expert(model, med.cview(), 1);
  for (auto& block : model.stack.blocks) CHECK(block.ffn.num_experts() == 4);
  // Old parameters unchanged; the new expert equals expert 1 of its layer.
  const auto new_values = values_of(model);
  for (const auto& [name, v] : old_values)
    if (name.find("domain_embeddings") == std::string::npos) CHECK(new_values.at(name) == v);
  for (const auto& [name, v] : new_values) {
    const auto pos = name.find("expert_3.");
    if (pos == std::string::npos) continue;
    CHECK(v == new_values.at(name.substr(0, pos) + "expert_1." + name.substr(pos + 9)));
  }

  nexus_extend::NexusFFN::Cache after;
  const auto y = layer.forward(x, after);
  const auto& lb = before.router.logits;
  const auto& la = after.router.logits;
  REQUIRE(la.dim(1) == 4);
  int unchanged = 0;
  for (index_t t = 0; t < x.rows(); ++t) {
    for (index_t e = 0; e < 3; ++e) CHECK(la(t, e) == lb(t, e));  // the old logits, bit for bit
    const int chosen = after.router.routing.experts(t, 0);
    if (chosen != 3) {
      CHECK(chosen == before.router.routing.experts(t, 0));  // a token leaves its expert only for the new one
      ++unchanged;
      // The same expert's output; only its top-1 weight (a softmax over one more logit) shrank.
      const double w0 = before.router.routing.weights(t, 0), w1 = after.router.routing.weights(t, 0);
      CHECK(w1 < w0);
      for (index_t c = 0; c < lm.d_model; ++c)
        CHECK(y(t, c) * w0 == doctest::Approx(y_before(t, c) * w1).epsilon(1e-5));
    }
  }
  MESSAGE(unchanged << " of " << x.rows() << " tokens keep their expert");
  CHECK(unchanged > 0);
  CHECK_THROWS_AS(nexus_extend::add_domain_expert(model, med.cview(), 7), nexa::Error);
  CHECK_THROWS_AS(nexus_extend::add_domain_expert(model, Tensor<float>::randn({kDim + 1}, rng).cview(), 0),
                  nexa::Error);
}

TEST_CASE("closest_domain and row_cosine") {
  auto m = Tensor<float>::from_host({3, 2}, std::vector<float>{1, 0, 0, 1, 1, 1});
  CHECK(nexus_extend::row_cosine(m, 0, 1) == doctest::Approx(0.0));
  CHECK(nexus_extend::row_cosine(m, 0, 2) == doctest::Approx(1 / std::sqrt(2.0)));
  const auto q = Tensor<float>::from_host({2}, std::vector<float>{0.1f, 0.9f});
  CHECK(nexus_extend::closest_domain(m, q.cview()) == 1);
  const auto q2 = Tensor<float>::from_host({2}, std::vector<float>{0.6f, 0.5f});
  CHECK(nexus_extend::closest_domain(m, q2.cview()) == 2);
}

TEST_CASE("train_only freezes everything else") {
  nexa::Rng rng(3);
  const nexa_moe::LMConfig lm = tiny_lm();
  nexus_extend::NexusLM model(lm, nexus_extend::nexus_ffn(lm, kDim, {}), rng);
  nexus_extend::set_domain_embeddings(model, tiny_domains(3, rng));
  nexus_extend::add_domain_expert(model, Tensor<float>::randn({kDim}, rng).cview(), 0);
  const index_t n =
      nexus_extend::train_only(model, [](const std::string& name) { return nexus_extend::is_expert_param(name, 3); });
  CHECK(n == lm.layers * 2 * lm.d_model * lm.d_ff);
  model.visit_params(
      [&](const std::string& name, auto& p) { CHECK(p.trainable == (name.find("expert_3.") != std::string::npos)); });
}

TEST_CASE("RouteCounter: shares per layer and domain") {
  struct FakeCache {
    struct {
      struct {
        Tensor<std::int32_t> experts;
      } routing;
    } router;
  };
  lm_data::Batch b;
  b.ids = Tensor<std::int32_t>::from_host({2, 3}, ids({2, 9, 3, 2, 9, 0}));
  b.mask = Tensor<std::int32_t>::from_host({2, 3}, ids({1, 1, 1, 1, 1, 0}));
  b.domains = {0, 3};
  FakeCache c;
  c.router.routing.experts = Tensor<std::int32_t>::from_host({6, 1}, ids({0, 0, 1, 3, 3, 2}));
  nexus_extend::RouteCounter rc(2, 4, 4);
  rc.add(0, c, b);
  CHECK(rc.accuracy(0, 0) == doctest::Approx(2.0 / 3));
  CHECK(rc.accuracy(0, 3) == doctest::Approx(1.0));  // the padded token does not count
  c.router.routing.experts = Tensor<std::int32_t>::from_host({6, 1}, ids({0, 0, 0, 0, 1, 1}));
  rc.add(1, c, b);
  CHECK(rc.accuracy(1, 3) == doctest::Approx(0.0));
  CHECK(rc.accuracy(3) == doctest::Approx(0.5));  // both layers
  CHECK(rc.share(2, 3, 1) == doctest::Approx(0.25));
  CHECK(rc.accuracy(1) == 0.0);  // no BIO tokens
  nexus_extend::RouteCounter small(1, 4, 3);
  c.router.routing.experts = Tensor<std::int32_t>::from_host({6, 1}, ids({0, 0, 1, 3, 3, 2}));
  CHECK_THROWS_AS(small.add(0, c, b), nexa::Error);  // expert 3 of a 3-expert counter
}

TEST_CASE("spread_texts and MixedBatches") {
  std::vector<lm_data::Sample> samples;
  for (int i = 0; i < 10; ++i) samples.push_back({"h", 0, "t" + std::to_string(i)});
  CHECK(nexus_extend::spread_texts(samples, 4) == std::vector<std::string>{"t0", "t2", "t5", "t7"});
  CHECK(nexus_extend::spread_texts(samples, 20).size() == 10);

  const auto seqs = [](std::int32_t domain, std::size_t n) {
    std::vector<lm_data::Sequence> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(lm_data::make_sequence(ids({9, 10}), domain));
    return out;
  };
  nexus_extend::MixedBatches mb({{seqs(0, 5), 2}, {seqs(3, 3), 3}, {{}, 0}}, 7);
  for (int step = 0; step < 4; ++step) {
    const lm_data::Batch b = mb.next();
    REQUIRE(b.size() == 5);
    CHECK(std::count(b.domains.begin(), b.domains.end(), 0) == 2);
    CHECK(std::count(b.domains.begin(), b.domains.end(), 3) == 3);
    // A pool of 3 asked for 3 rows per batch: each batch is one full pass over it.
    std::vector<std::size_t> med(b.indices.begin() + 2, b.indices.end());
    std::sort(med.begin(), med.end());
    CHECK(med == std::vector<std::size_t>{5, 6, 7});
    // split: the MED rows and the rest, the same sequences as the mixed batch's.
    const auto [med_rows, replay] = mb.split(b, 3);
    REQUIRE(med_rows.size() == 3);
    REQUIRE(replay.size() == 2);
    CHECK(std::count(med_rows.domains.begin(), med_rows.domains.end(), 3) == 3);
    CHECK(std::count(replay.domains.begin(), replay.domains.end(), 0) == 2);
    CHECK(std::vector<std::size_t>(replay.indices) ==
          std::vector<std::size_t>(b.indices.begin(), b.indices.begin() + 2));
    CHECK(med_rows.tokens + replay.tokens == b.tokens);
  }
  CHECK(mb.split(mb.next(), 5).first.size() == 0);
  CHECK_THROWS_AS(nexus_extend::MixedBatches({{{}, 1}}, 1), nexa::Error);
}

TEST_CASE("the extended checkpoint round-trips, and bad configs are errors") {
  nexa::Rng rng(4);
  const nexa_moe::LMConfig lm = tiny_lm();
  const nexus_extend::RouterOptions router{.score_scale = 2.5, .load_balance_coef = 0.0, .z_loss_coef = 1e-3};
  nexus_extend::NexusLM model(lm, nexus_extend::nexus_ffn(lm, kDim, router), rng);
  nexus_extend::set_domain_embeddings(model, tiny_domains(3, rng));
  nexus_extend::add_domain_expert(model, Tensor<float>::randn({kDim}, rng).cview(), 2);
  const fs::path source = temp_dir("source"), dir = temp_dir("roundtrip");
  examples::write_file(source / "vocab.txt", "[PAD]\n", "test");
  examples::write_file(source / "classifier_vocab.txt", "[PAD]\n", "test");
  const std::vector<std::string> domains{"PHYS", "BIO", "MAT", "MED"};
  nexus_extend::NexusCheckpoint::save(dir, model, domains, kDim, router, source);

  const auto c = nexus_extend::NexusCheckpoint::open(dir);
  CHECK(c.domains == domains);
  CHECK(c.lm.experts == 4);
  CHECK(c.domain_dim == kDim);
  CHECK(c.router.score_scale == 2.5);
  nexus_extend::NexusLM loaded = c.model();
  CHECK(loaded.stack.blocks.front().ffn.num_experts() == 4);
  CHECK(values_of(loaded) == values_of(model));

  CHECK_THROWS_AS(nexus_extend::NexusCheckpoint::save(dir, model, {"PHYS"}, kDim, router, source), nexa::Error);
  examples::write_file(dir / "config.json", "{\"format\": \"nexa-moe-demo\"}", "test");
  CHECK_THROWS_WITH_AS(nexus_extend::NexusCheckpoint::open(dir), doctest::Contains("nexus-extend"), nexa::Error);
  fs::remove_all(source);
  fs::remove_all(dir);
}

TEST_CASE("domain embeddings are the mean of the MiniLM sentence embeddings (needs MiniLM)") {
  const char* env = std::getenv("NEXA_MINILM_DIR");
  const char* home = std::getenv("HOME");
  const fs::path minilm = env && *env ? fs::path(env) : fs::path(home ? home : ".") / ".cache/nexa/all-MiniLM-L6-v2";
  if (!fs::exists(minilm / "model.safetensors")) {
    MESSAGE("skipped: no MiniLM checkpoint at " << minilm.string());
    return;
  }
  nexa::SentenceEncoder encoder = nexa::SentenceEncoder::from_directory(minilm);
  const std::vector<std::vector<std::string>> texts{
      {"A unit of electric resistance.", "The refraction of light by a prism."},
      {"A genus of flowering plants.", "The larva of a beetle.", "A bone of the inner ear."}};
  const Tensor<float> d = nexus_extend::domain_embeddings(encoder, texts);
  REQUIRE(d.shape() == nexa::Shape{2, encoder.dim()});
  for (std::size_t k = 0; k < texts.size(); ++k) {
    // Each text alone (no padding), mean-pooled and normalised, then averaged.
    std::vector<double> mean(static_cast<std::size_t>(encoder.dim()), 0.0);
    for (const auto& t : texts[k]) {
      const Tensor<float> e = encoder.encode(std::vector<std::string>{t});
      double norm = 0;
      for (index_t c = 0; c < encoder.dim(); ++c) norm += double(e(0, c)) * e(0, c);
      CHECK(norm == doctest::Approx(1.0).epsilon(1e-5));
      for (index_t c = 0; c < encoder.dim(); ++c)
        mean[static_cast<std::size_t>(c)] += e(0, c) / static_cast<double>(texts[k].size());
    }
    double worst = 0;
    for (index_t c = 0; c < encoder.dim(); ++c)
      worst = std::max(worst, std::abs(mean[static_cast<std::size_t>(c)] - d(static_cast<index_t>(k), c)));
    CHECK(worst < 1e-5);
  }
  CHECK(nexus_extend::row_cosine(d, 0, 1) < 0.99);
}

TEST_CASE("supervise_routing teaches a Nexus router to send each domain's tokens to its expert") {
  nexa::Rng rng(5);
  nexa::NexusRouter<1> router({.d_model = 8, .num_experts = 3, .domain_dim = kDim}, rng);
  router.set_domain_embeddings(tiny_domains(3, rng).cview());
  const auto centres = Tensor<float>::randn({3, 8}, rng);
  // Two sequences per domain, four tokens each (the last one padding).
  lm_data::Batch b;
  b.ids = Tensor<std::int32_t>::zeros({6, 4});
  std::vector<std::int32_t> mask;
  for (int r = 0; r < 6; ++r) mask.insert(mask.end(), {1, 1, 1, 0});
  b.mask = Tensor<std::int32_t>::from_host({6, 4}, mask);
  b.domains = {0, 0, 1, 1, 2, 2};
  nexa::train::AdamW adam(router, {.lr = 3e-2, .weight_decay = 0.0});
  double first = 0, last = 0, accuracy = 0;
  for (int step = 0; step < 150; ++step) {
    auto x = Tensor<float>::randn({24, 8}, rng, 0.5);
    for (index_t t = 0; t < 24; ++t)
      for (index_t c = 0; c < 8; ++c) x(t, c) += centres(b.domains[static_cast<std::size_t>(t / 4)], c);
    nexa::NexusRouter<1>::Cache cache;
    (void)router.route(x, cache);
    const double loss = nexus_extend::supervise_routing(router, cache, b, 1.0);
    if (step == 0) first = loss;
    last = loss;
    accuracy = 0;
    for (index_t t = 0; t < 24; ++t)
      if (t % 4 != 3) accuracy += cache.routing.experts(t, 0) == b.domains[static_cast<std::size_t>(t / 4)] ? 1 : 0;
    accuracy /= 18;
    adam.step();
    adam.zero_grad();
  }
  MESSAGE("routing cross-entropy " << first << " -> " << last << ", accuracy " << accuracy);
  CHECK(first == doctest::Approx(std::log(3.0)).epsilon(0.05));  // fresh projection: near-uniform scores
  CHECK(last < 0.3);
  CHECK(accuracy > 0.9);
}

TEST_CASE("routing_divisors weigh tokens alike or domains alike, and supervise_routing uses them") {
  nexa::Rng rng(6);
  nexa::NexusRouter<1> router({.d_model = 8, .num_experts = 3, .domain_dim = kDim}, rng);
  router.set_domain_embeddings(tiny_domains(3, rng).cview());
  // Three rows of domain 0 and one of domain 2, three tokens each (the last one padding): 9 and 3 tokens.
  lm_data::Batch b;
  b.ids = Tensor<std::int32_t>::zeros({4, 4});
  std::vector<std::int32_t> mask;
  for (int r = 0; r < 4; ++r) mask.insert(mask.end(), {1, 1, 1, 0});
  b.mask = Tensor<std::int32_t>::from_host({4, 4}, mask);
  b.domains = {0, 0, 0, 2};
  CHECK(nexus_extend::routing_divisors(b, 3, false) == std::vector<double>{12, 12, 12});
  CHECK(nexus_extend::routing_divisors(b, 3, true) == std::vector<double>{18, 0, 6});
  CHECK_THROWS_AS((void)nexus_extend::routing_divisors(b, 2, true), nexa::Error);

  nexa::NexusRouter<1>::Cache cache;
  (void)router.route(Tensor<float>::randn({16, 8}, rng), cache);
  // The cross-entropy of each token against its domain's expert, by hand.
  std::vector<double> ce_sum(3, 0.0);
  for (index_t t = 0; t < 16; ++t) {
    if (t % 4 == 3) continue;
    const auto d = static_cast<std::size_t>(b.domains[static_cast<std::size_t>(t / 4)]);
    double z = 0;
    for (index_t e = 0; e < 3; ++e) z += std::exp(double(cache.logits(t, e)));
    ce_sum[d] += std::log(z) - double(cache.logits(t, static_cast<index_t>(d)));
  }
  const double mean = (ce_sum[0] + ce_sum[2]) / 12, balanced = (ce_sum[0] / 9 + ce_sum[2] / 3) / 2;
  CHECK(nexus_extend::supervise_routing(router, cache, b, 1.0) == doctest::Approx(mean));
  CHECK(nexus_extend::supervise_routing(router, cache, b, 1.0, nexus_extend::routing_divisors(b, 3, false)) ==
        doctest::Approx(mean));
  CHECK(nexus_extend::supervise_routing(router, cache, b, 1.0, nexus_extend::routing_divisors(b, 3, true)) ==
        doctest::Approx(balanced));
  CHECK(mean != doctest::Approx(balanced));
}
