#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "nexa/io/safetensors.hpp"
#include "nexa/moe.hpp"
#include "nexa/moe/upcycling.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace {
constexpr index_t d = 8, d_ff = 16;
using FFN = nexa::T5FFN<nexa::Relu>;

bool bit_identical(const nexa::Param<float>& a, const nexa::Param<float>& b) {
  return a.value.shape() == b.value.shape() &&
         std::memcmp(a.value.data(), b.value.data(), static_cast<std::size_t>(a.numel()) * sizeof(float)) == 0;
}

// A one-block "dense model" and its MoE counterpart, named as transformers' T5 and Switch name them.
struct DenseModel {
  nexa::Param<float> embed;
  nexa::Param<float> norm;
  FFN ffn;
  explicit DenseModel(nexa::Rng& rng)
      : embed(Tensor<float>::randn({5, d}, rng)), norm(Tensor<float>::randn({d}, rng)), ffn({d, d_ff}, rng) {}
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(nexa::join_name(prefix, "shared.weight"), embed);
    f(nexa::join_name(prefix, "encoder.block.0.layer.1.layer_norm.weight"), norm);
    ffn.visit_params(f, nexa::join_name(prefix, "encoder.block.0.layer.1.DenseReluDense"));
  }
};

template <class Layer>
struct MoEModel {
  nexa::Param<float> embed;
  nexa::Param<float> norm;
  Layer mlp;
  MoEModel(const nexa::MoEConfig& config, nexa::Rng& rng)
      : embed(Tensor<float>::zeros({5, d})), norm(Tensor<float>::zeros({d})), mlp(config, rng) {}
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(nexa::join_name(prefix, "shared.weight"), embed);
    f(nexa::join_name(prefix, "encoder.block.0.layer.1.layer_norm.weight"), norm);
    mlp.visit_params(f, nexa::join_name(prefix, "encoder.block.0.layer.1.mlp"));
  }
};

template <class Layer>
double max_diff_to_dense(Layer& moe, FFN& dense, nexa::Rng& rng) {
  auto x = Tensor<float>::randn({3, 20, d}, rng);
  typename Layer::Cache cache;
  FFN::Cache dense_cache;
  const auto y = moe.forward(x, cache).to_host();
  const auto ref = dense.forward(x, dense_cache).to_host();
  double worst = 0;
  for (std::size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::abs(double(y[i]) - double(ref[i])));
  return worst;
}

std::vector<float> mean_of(const std::vector<const nexa::Param<float>*>& ps) {
  std::vector<float> out(static_cast<std::size_t>(ps[0]->numel()));
  for (std::size_t i = 0; i < out.size(); ++i) {
    double sum = 0;
    for (const auto* p : ps) sum += p->value.data()[i];
    out[i] = static_cast<float>(sum / static_cast<double>(ps.size()));
  }
  return out;
}
}  // namespace

TEST_CASE("A sparse-upcycled MoE equals the dense FFN for any router (k > 1, renormalised)") {
  nexa::Rng rng(600);
  FFN dense({d, d_ff}, rng);
  nexa::MoELayer<nexa::TopKRouter<2>, FFN> topk({.d_model = d, .d_ff = d_ff, .num_experts = 6, .router_init_std = 1.0},
                                                rng);
  nexa::sparse_upcycle(dense, topk);
  for (const auto& e : topk.experts) {
    CHECK(bit_identical(e.wi, dense.wi));
    CHECK(bit_identical(e.wo, dense.wo));
  }
  const double topk_diff = max_diff_to_dense(topk, dense, rng);
  MESSAGE("TopKRouter<2>: max |moe - dense| = " << topk_diff);
  CHECK(topk_diff < 1e-6);

  nexa::MoELayer<nexa::NexusRouter<3>, FFN> nexus(
      {.d_model = d, .d_ff = d_ff, .num_experts = 5, .router_init_std = 1.0, .domain_dim = 4}, rng);
  nexa::sparse_upcycle(dense, nexus);
  const double nexus_diff = max_diff_to_dense(nexus, dense, rng);
  MESSAGE("NexusRouter<3>: max |moe - dense| = " << nexus_diff);
  CHECK(nexus_diff < 1e-6);

  // A dense FFN of another size does not fit.
  FFN wider({d, 2 * d_ff}, rng);
  CHECK_THROWS_WITH_AS(nexa::sparse_upcycle(wider, topk), doctest::Contains("wi.weight"), nexa::Error);
}

TEST_CASE("Branch-Train-Mix keeps each model's FFN bit-identical and averages the rest") {
  nexa::Rng rng(601);
  DenseModel a(rng), b(rng), c(rng);
  using Layer = nexa::MoELayer<nexa::TopKRouter<2>, FFN>;
  MoEModel<Layer> moe({.d_model = d, .d_ff = d_ff, .num_experts = 3}, rng);
  const auto router_before = moe.mlp.router.weight.value.to_host();
  nexa::branch_train_mix_model(std::vector<DenseModel*>{&a, &b, &c}, moe);
  const DenseModel* models[] = {&a, &b, &c};
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(bit_identical(moe.mlp.experts[i].wi, models[i]->ffn.wi));
    CHECK(bit_identical(moe.mlp.experts[i].wo, models[i]->ffn.wo));
  }
  CHECK(moe.embed.value.to_host() == mean_of({&a.embed, &b.embed, &c.embed}));
  CHECK(moe.norm.value.to_host() == mean_of({&a.norm, &b.norm, &c.norm}));
  CHECK(moe.mlp.router.weight.value.to_host() == router_before);  // fresh, untouched

  // The layer-level form.
  Layer layer({.d_model = d, .d_ff = d_ff, .num_experts = 3}, rng);
  nexa::branch_train_mix(std::vector<FFN*>{&a.ffn, &b.ffn, &c.ffn}, layer);
  for (std::size_t i = 0; i < 3; ++i) CHECK(bit_identical(layer.experts[i].wo, models[i]->ffn.wo));

  // Too few models for the experts.
  CHECK_THROWS_WITH_AS(nexa::branch_train_mix_model(std::vector<DenseModel*>{&a, &b}, moe),
                       doctest::Contains("expert 2"), nexa::Error);
  CHECK_THROWS_AS(nexa::branch_train_mix(std::vector<FFN*>{&a.ffn}, layer), nexa::Error);
}

TEST_CASE("Branch-Train-Merge: the exact parameter-wise mean of the models") {
  nexa::Rng rng(602);
  DenseModel a(rng), b(rng), c(rng), merged(rng);
  nexa::average_params(std::vector<DenseModel*>{&a, &b, &c}, merged);
  CHECK(merged.embed.value.to_host() == mean_of({&a.embed, &b.embed, &c.embed}));
  CHECK(merged.ffn.wi.value.to_host() == mean_of({&a.ffn.wi, &b.ffn.wi, &c.ffn.wi}));
  CHECK(merged.ffn.wo.value.to_host() == mean_of({&a.ffn.wo, &b.ffn.wo, &c.ffn.wo}));

  // Mismatched shapes are all listed and nothing is written.
  const auto before = merged.ffn.wi.value.to_host();
  FFN small({d, d_ff}, rng), other({d, 2 * d_ff}, rng);
  CHECK_THROWS_WITH_AS(nexa::average_params(std::vector<FFN*>{&small, &other}, merged.ffn),
                       doctest::Contains("wo.weight"), nexa::Error);
  CHECK(merged.ffn.wi.value.to_host() == before);
}

TEST_CASE("Nexus upcycling: seed FFN as the shared expert, domain FFNs as experts, router from embeddings") {
  nexa::Rng rng(603);
  DenseModel seed(rng), d0(rng), d1(rng), d2(rng);
  using Layer = nexa::MoELayer<nexa::NexusRouter<2>, FFN, nexa::SharedExpert<FFN>>;
  const nexa::MoEConfig config{.d_model = d, .d_ff = d_ff, .num_experts = 3, .domain_dim = 4};
  const auto embeddings = Tensor<float>::randn({3, 4}, rng);

  MoEModel<Layer> moe(config, rng);
  const auto projection_before = moe.mlp.router.down_proj.value.to_host();
  nexa::nexus_upcycle_model(seed, std::vector<DenseModel*>{&d0, &d1, &d2}, embeddings, moe);
  CHECK(bit_identical(moe.mlp.shared.expert.wi, seed.ffn.wi));
  CHECK(bit_identical(moe.mlp.shared.expert.wo, seed.ffn.wo));
  CHECK(moe.mlp.shared.scale_value() == doctest::Approx(0.2));
  const DenseModel* domains[] = {&d0, &d1, &d2};
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(bit_identical(moe.mlp.experts[i].wi, domains[i]->ffn.wi));
    CHECK(bit_identical(moe.mlp.experts[i].wo, domains[i]->ffn.wo));
  }
  CHECK(moe.mlp.router.domain_embeddings.value.to_host() == embeddings.to_host());
  CHECK(moe.mlp.router.down_proj.value.to_host() == projection_before);
  CHECK(moe.norm.value.to_host() == mean_of({&seed.norm, &d0.norm, &d1.norm, &d2.norm}));

  // The layer-level form gives the same layer.
  Layer layer(config, rng);
  nexa::nexus_upcycle(seed.ffn, std::vector<FFN*>{&d0.ffn, &d1.ffn, &d2.ffn}, embeddings, layer);
  CHECK(bit_identical(layer.shared.expert.wi, seed.ffn.wi));
  CHECK(bit_identical(layer.experts[2].wo, d2.ffn.wo));
  CHECK(layer.router.domain_embeddings.value.to_host() == embeddings.to_host());

  // Embeddings must have one row per expert.
  const auto wrong = Tensor<float>::randn({2, 4}, rng);
  CHECK_THROWS_AS(nexa::nexus_upcycle_model(seed, std::vector<DenseModel*>{&d0, &d1, &d2}, wrong, moe), nexa::Error);
}

TEST_CASE("A dense FFN loads from a checkpoint by its Hugging Face name and upcycles") {
  nexa::Rng rng(604);
  DenseModel model(rng);
  const auto path = std::filesystem::temp_directory_path() / "nexa_test_nexus_dense.safetensors";
  nexa::save_safetensors(model, path);

  FFN ffn({d, d_ff}, rng);
  nexa::load_params_by_name(ffn, path, "encoder.block.0.layer.1.DenseReluDense");
  CHECK(bit_identical(ffn.wi, model.ffn.wi));
  CHECK(bit_identical(ffn.wo, model.ffn.wo));

  nexa::MoELayer<nexa::TopKRouter<2>, FFN> moe({.d_model = d, .d_ff = d_ff, .num_experts = 4}, rng);
  nexa::sparse_upcycle(ffn, moe);
  CHECK(max_diff_to_dense(moe, model.ffn, rng) < 1e-6);

  FFN wrong({d, 2 * d_ff}, rng);
  CHECK_THROWS_WITH_AS(nexa::load_params_by_name(wrong, path, "encoder.block.0.layer.1.DenseReluDense"),
                       doctest::Contains("shape expected"), nexa::Error);
  CHECK_THROWS_WITH_AS(nexa::load_params_by_name(ffn, path, "encoder.block.1.layer.1.DenseReluDense"),
                       doctest::Contains("encoder.block.1.layer.1.DenseReluDense.wi.weight"), nexa::Error);
  std::filesystem::remove(path);
}
