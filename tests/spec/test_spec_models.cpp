// Nexa-Spec's library pieces: the Fourier features' values, and gradient checks in double
// (central differences) of SpecEmbedding, MaskedPeakHead with its loss, and the whole
// SpecEncoder with a local window shorter than the sequence, padding and two global tokens.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "models/grad_util.hpp"
#include "nexa/models/masked_peak_head.hpp"
#include "nexa/models/spec_embedding.hpp"
#include "nexa/models/spec_encoder.hpp"

using nexa::index_t;
using nexa::Tensor;

namespace spec_models_test {

// Every trainable parameter against central differences. The step is 1e-5 rather than 1e-6: the
// losses here are cross-entropies of order 1 to 10 and the query/key weights of a deep block get
// gradients of order 1e-4, whose differences at 1e-6 carry round-off near the 1e-6 tolerance
// (the truncation error at 1e-5 is of order 1e-10).
template <class Module>
void check_all_params(Module& m, const std::function<double()>& loss) {
  for (auto& [name, p] : nexa::testing::trainable_params(m)) {
    if (nexa::testing::is_key_bias(name)) {
      nexa::testing::check_param_gradient(loss, name, p->value.data(), p->grad.data(), p->numel());
      continue;
    }
    INFO(name);
    CHECK(nexa::testing::gradient_error(loss, p->value.data(), p->numel(), p->grad.data(), 1e-5) < 1e-6);
  }
}

}  // namespace spec_models_test

TEST_CASE("mz_fourier_features: sin and cos of 2 pi mz / lambda, wavelengths from min to max") {
  const nexa::SpecEmbeddingConfig c{.d_model = 4, .frequencies = 3, .min_wavelength = 1.0, .max_wavelength = 100.0};
  const auto mz = Tensor<double>::from_host({1, 2}, {0.0, 123.25});
  const Tensor<double> f = nexa::mz_fourier_features(mz.cview(), c);
  REQUIRE(f.shape() == nexa::Shape{1, 2, 6});
  for (index_t k = 0; k < 3; ++k) {
    CHECK(f.data()[k] == 0.0);      // sin(0)
    CHECK(f.data()[3 + k] == 1.0);  // cos(0)
  }
  const double lambdas[3] = {1.0, 10.0, 100.0};
  for (index_t k = 0; k < 3; ++k) {
    const double a = 2 * std::numbers::pi * 123.25 / lambdas[k];
    CHECK(f.data()[6 + k] == doctest::Approx(std::sin(a)).epsilon(1e-12));
    CHECK(f.data()[9 + k] == doctest::Approx(std::cos(a)).epsilon(1e-12));
  }
  CHECK_THROWS_AS((void)nexa::mz_fourier_features(mz.cview(), {.d_model = 4, .frequencies = 0}), nexa::Error);
  CHECK_THROWS_AS((void)nexa::mz_fourier_features(mz.cview(), {.d_model = 4, .min_wavelength = 0}), nexa::Error);
}

TEST_CASE("SpecEmbedding: output shape, parameter names, gradients check, shape errors") {
  nexa::Rng rng(1);
  nexa::SpecEmbedding<double> emb({.d_model = 5, .frequencies = 3, .intensity_hidden = 4, .token_types = 4}, rng);
  const auto mz = Tensor<double>::from_host({2, 3}, {0.0, 150.3, 420.7, 900.1, 1210.5, 0.0});
  const auto intensity = Tensor<double>::from_host({2, 3}, {0.0, 0.4, 1.0, 0.2, 0.7, 0.0});
  const auto type = Tensor<std::int32_t>::from_host({2, 3}, {2, 0, 0, 1, 0, 3});
  std::vector<std::string> names;
  emb.visit_params([&](const std::string& name, auto&) { names.push_back(name); }, "embedding");
  CHECK(names == std::vector<std::string>{"embedding.mz_projection.weight", "embedding.mz_projection.bias",
                                          "embedding.intensity_mlp.0.weight", "embedding.intensity_mlp.0.bias",
                                          "embedding.intensity_mlp.2.weight", "embedding.intensity_mlp.2.bias",
                                          "embedding.token_type.weight"});
  const auto r = Tensor<double>::randn({2, 3, 5}, rng);
  nexa::testing::zero_grads(emb);
  nexa::SpecEmbedding<double>::Cache cache;
  const Tensor<double> y = emb.forward(mz.cview(), intensity.cview(), type.cview(), cache);
  CHECK(y.shape() == nexa::Shape{2, 3, 5});
  emb.backward(r.cview(), cache);
  spec_models_test::check_all_params(
      emb, [&] { return nexa::testing::weighted_sum(emb.apply(mz.cview(), intensity.cview(), type.cview()), r); });
  const auto wrong = Tensor<double>::from_host({1, 3}, {1, 2, 3});
  CHECK_THROWS_AS((void)emb.apply(mz.cview(), wrong.cview(), type.cview()), nexa::Error);
  const auto bad_type = Tensor<std::int32_t>::from_host({2, 3}, {0, 0, 0, 0, 0, 4});
  CHECK_THROWS_AS((void)emb.apply(mz.cview(), intensity.cview(), bad_type.cview()), nexa::Error);
}

TEST_CASE("MaskedPeakHead + masked_peak_loss: gradients check against the summed cross-entropies") {
  nexa::Rng rng(2);
  nexa::MaskedPeakHead<double> head({.d_model = 6, .mz_bins = 7, .intensity_bins = 3, .init_std = 0.5}, rng);
  auto hidden = Tensor<double>::randn({4, 6}, rng);
  const auto mz_targets = Tensor<std::int32_t>::from_host({4}, {0, 6, 3, 3});
  const auto intensity_targets = Tensor<std::int32_t>::from_host({4}, {2, 0, 1, 1});
  nexa::testing::zero_grads(head);
  nexa::MaskedPeakHead<double>::Cache cache;
  const auto logits = head.forward(hidden.cview(), cache);
  CHECK(logits.mz.shape() == nexa::Shape{4, 7});
  CHECK(logits.intensity.shape() == nexa::Shape{4, 3});
  const auto loss = nexa::masked_peak_loss(logits, mz_targets.cview(), intensity_targets.cview());
  CHECK(loss.mz > 0);
  CHECK(loss.intensity > 0);
  const Tensor<double> dx = head.backward(loss.d_mz.cview(), loss.d_intensity.cview(), cache);
  auto value = [&] {
    nexa::MaskedPeakHead<double>::Cache c;
    return nexa::masked_peak_loss(head.forward(hidden.cview(), c), mz_targets.cview(), intensity_targets.cview())
        .total();
  };
  CHECK(nexa::testing::gradient_error(value, hidden.data(), hidden.numel(), dx.data()) < 1e-6);
  spec_models_test::check_all_params(head, value);
  const auto out_of_range = Tensor<std::int32_t>::from_host({4}, {0, 7, 3, 3});
  CHECK_THROWS_AS((void)nexa::masked_peak_loss(logits, out_of_range.cview(), intensity_targets.cview()), nexa::Error);
}

TEST_CASE("MaskedPeakHead with a tied m/z decoder: gradients of hidden, decoder and parameters check") {
  nexa::Rng rng(4);
  nexa::MaskedPeakHead<double> head({.d_model = 5, .mz_bins = 6, .intensity_bins = 3, .init_std = 0.5, .tied_mz = true},
                                    rng);
  std::vector<std::string> names;
  head.visit_params([&](const std::string& name, auto&) { names.push_back(name); });
  CHECK(names == std::vector<std::string>{"transform.weight", "transform.bias", "norm.weight", "norm.bias", "mz.bias",
                                          "intensity.weight", "intensity.bias"});
  auto hidden = Tensor<double>::randn({3, 5}, rng);
  auto decoder = Tensor<double>::randn({6, 5}, rng);
  const auto mz_targets = Tensor<std::int32_t>::from_host({3}, {0, 5, 2});
  const auto intensity_targets = Tensor<std::int32_t>::from_host({3}, {2, 0, 1});
  nexa::testing::zero_grads(head);
  nexa::MaskedPeakHead<double>::Cache cache;
  const auto loss = nexa::masked_peak_loss(head.forward(hidden.cview(), cache, decoder.cview()), mz_targets.cview(),
                                           intensity_targets.cview());
  Tensor<double> d_decoder({6, 5});
  const Tensor<double> dx = head.backward(loss.d_mz.cview(), loss.d_intensity.cview(), cache, d_decoder.view());
  auto value = [&] {
    nexa::MaskedPeakHead<double>::Cache c;
    return nexa::masked_peak_loss(head.forward(hidden.cview(), c, decoder.cview()), mz_targets.cview(),
                                  intensity_targets.cview())
        .total();
  };
  CHECK(nexa::testing::gradient_error(value, hidden.data(), hidden.numel(), dx.data()) < 1e-6);
  CHECK(nexa::testing::gradient_error(value, decoder.data(), decoder.numel(), d_decoder.data()) < 1e-6);
  spec_models_test::check_all_params(head, value);
  nexa::MaskedPeakHead<double>::Cache c;
  CHECK_THROWS_AS((void)head.forward(hidden.cview(), c), nexa::Error);  // tied: the decoder is required
  const auto wrong = Tensor<double>::randn({5, 5}, rng);
  CHECK_THROWS_AS((void)head.forward(hidden.cview(), c, wrong.cview()), nexa::Error);
}

namespace spec_models_test {

void check_encoder(bool tied) {
  nexa::Rng rng(3);
  using Model = nexa::SpecEncoder<4, double>;
  Model model({.embedding = {.d_model = 8, .frequencies = 4, .intensity_hidden = 4, .token_types = 4},
               .layers = 2,
               .heads = 2,
               .d_ff = 12,
               .dropout = 0.1,
               .mz_bins = 9,
               .intensity_bins = 3,
               .mz_bin_width = 100.0,
               .tied_mz = tied},
              rng);
  model.set_training(true);
  const index_t B = 2, S = 10;
  Model::Tokens x;
  std::vector<double> mz(B * S), intensity(B * S);
  std::vector<std::int32_t> type(B * S, 0), padding(B * S, 1), global(B * S, 0);
  for (index_t b = 0; b < B; ++b) {
    type[b * S] = 2;      // [CLS]
    type[b * S + 1] = 1;  // [PREC]
    global[b * S] = global[b * S + 1] = 1;
    mz[b * S + 1] = 700.0 + 50.0 * b;
    for (index_t s = 2; s < S; ++s) {
      mz[b * S + s] = 100.0 + 80.0 * s + 7.0 * b;
      intensity[b * S + s] = 0.1 * s;
    }
  }
  for (index_t s = 7; s < S; ++s) padding[S + s] = 0;  // the second spectrum has 5 peaks
  type[4] = type[S + 3] = 3;                           // [MASK]
  mz[4] = intensity[4] = mz[S + 3] = intensity[S + 3] = 0.0;
  x.mz = Tensor<double>::from_host({B, S}, mz);
  x.intensity = Tensor<double>::from_host({B, S}, intensity);
  x.type = Tensor<std::int32_t>::from_host({B, S}, type);
  x.padding = Tensor<std::int32_t>::from_host({B, S}, padding);
  x.global = Tensor<std::int32_t>::from_host({B, S}, global);
  x.masked = {4, S + 3};
  const auto mz_targets = Tensor<std::int32_t>::from_host({2}, {5, 1});
  const auto intensity_targets = Tensor<std::int32_t>::from_host({2}, {2, 0});

  auto rewind = [&] { model.visit_dropouts([](auto& d) { d.rewind(0); }); };
  nexa::testing::zero_grads(model);
  rewind();
  Model::Cache cache;
  const auto loss = nexa::masked_peak_loss(model.forward(x, cache), mz_targets.cview(), intensity_targets.cview());
  model.backward(loss.d_mz.cview(), loss.d_intensity.cview(), cache);
  auto value = [&] {
    rewind();
    Model::Cache c;
    return nexa::masked_peak_loss(model.forward(x, c), mz_targets.cview(), intensity_targets.cview()).total();
  };
  spec_models_test::check_all_params(model, value);

  // Padding is invisible: other values in the padded slots leave every non-padding row (the
  // [CLS] rows, the spectrum embeddings, included) as it was.
  model.set_training(false);
  Model::Cache c;
  const Tensor<double> hidden = model.encode(x, c);
  CHECK(hidden.shape() == nexa::Shape{B, S, 8});
  std::vector<double> other_mz = mz, other_intensity = intensity;
  for (index_t s = 7; s < S; ++s) other_mz[S + s] = 1500.0 + s, other_intensity[S + s] = 0.9;
  Model::Tokens other = x;
  other.mz = Tensor<double>::from_host({B, S}, other_mz);
  other.intensity = Tensor<double>::from_host({B, S}, other_intensity);
  Model::Cache c_other;
  const Tensor<double> hidden_other = model.encode(other, c_other);
  for (index_t t = 0; t < B * S; ++t) {
    if (padding[t] == 0) continue;
    for (index_t k = 0; k < 8; ++k) CHECK(hidden_other.data()[t * 8 + k] == doctest::Approx(hidden.data()[t * 8 + k]));
  }
  Model::Tokens empty = x;
  empty.masked.clear();
  CHECK_THROWS_AS((void)model.forward(empty, c), nexa::Error);
}

}  // namespace spec_models_test

TEST_CASE("SpecEncoder (tied m/z decoder), window 4 over 10 tokens, padding, global [CLS]/[PREC]: gradients check") {
  spec_models_test::check_encoder(true);
}

TEST_CASE("SpecEncoder (untied m/z head), window 4 over 10 tokens, padding, global [CLS]/[PREC]: gradients check") {
  spec_models_test::check_encoder(false);
}
