// Nexa-Spec's modules with D = cuda against the same modules on the CPU: mz_fourier_features,
// SpecEmbedding, MaskedPeakHead with masked_peak_loss (untied and tied m/z decoder) and
// SpecEncoder<Window> (windows 4 and 0, padding, [CLS]/[PREC] global tokens, repeated masked
// positions, tied and untied). Same seed, same (perturbed) parameters, gradients started at the
// same random values; forward, loss, backward and every parameter gradient compared. Dropout 0
// (the device's LocalGlobalScores raises on an applied attention dropout). Before each pass the
// caching allocator is handed poisoned blocks of the outputs' sizes, so an output element a
// kernel leaves unwritten shows up as an error.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "module_support.hpp"
#include "nexa/models/masked_peak_head.hpp"
#include "nexa/models/spec_embedding.hpp"
#include "nexa/models/spec_encoder.hpp"

using namespace nexa_test;
using nexa::Tensor;

namespace {

// A batch of B spectra of S tokens: [CLS] (global), [PREC] (global), peaks sorted by m/z; some
// peaks masked; spectrum b > 0 has b trailing padding slots.
template <class T>
struct Batch {
  Tensor<T> mz, intensity;
  Tensor<std::int32_t> type, padding, global;
  std::vector<index_t> masked;
};

template <class T>
Batch<T> make_batch(index_t B, index_t S, nexa::Rng& rng) {
  std::vector<T> mz(static_cast<std::size_t>(B * S)), intensity(mz.size());
  std::vector<std::int32_t> type(mz.size(), 0), padding(mz.size(), 1), global(mz.size(), 0);
  const auto noise = Tensor<T>::uniform({B * S}, rng, 0.0, 1.0);
  Batch<T> out;
  for (index_t b = 0; b < B; ++b)
    for (index_t s = 0; s < S; ++s) {
      const auto t = static_cast<std::size_t>(b * S + s);
      if (s == 0) {
        type[t] = 2;
        global[t] = 1;
      } else if (s == 1) {
        type[t] = 1;
        global[t] = 1;
        mz[t] = static_cast<T>(600.0 + 40.0 * static_cast<double>(b) + 10.0 * noise.data()[t]);
      } else {
        mz[t] = static_cast<T>(90.0 * static_cast<double>(s) + 30.0 * noise.data()[t] + 0.37 * b);
        intensity[t] = static_cast<T>(noise.data()[t]);
        if (s % 5 == 3 && s < S - b) {  // masked peaks (not in the padding)
          type[t] = 3;
          mz[t] = intensity[t] = T(0);
          out.masked.push_back(b * S + s);
        }
      }
      if (s >= S - b) padding[t] = 0;
    }
  out.masked.push_back(out.masked.front());  // a repeated position: its gradients add
  out.mz = Tensor<T>::from_host({B, S}, mz);
  out.intensity = Tensor<T>::from_host({B, S}, intensity);
  out.type = Tensor<std::int32_t>::from_host({B, S}, type);
  out.padding = Tensor<std::int32_t>::from_host({B, S}, padding);
  out.global = Tensor<std::int32_t>::from_host({B, S}, global);
  return out;
}

template <class T>
Tensor<std::int32_t> targets(index_t n, index_t classes, nexa::Rng& rng) {
  const auto u = Tensor<double>::uniform({n}, rng, 0.0, static_cast<double>(classes));
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    t[static_cast<std::size_t>(i)] =
        std::min(static_cast<std::int32_t>(u.data()[i]), static_cast<std::int32_t>(classes - 1));
  return Tensor<std::int32_t>::from_host({n}, t);
}

template <class T>
void compare_fourier(std::uint64_t seed) {
  nexa::Rng rng(seed);
  const auto mz = Tensor<T>::uniform({3, 37}, rng, 0.0, 2000.0);
  for (const index_t F : {index_t{1}, index_t{5}, index_t{32}}) {
    CAPTURE(F);
    const nexa::SpecEmbeddingConfig c{.d_model = 4, .frequencies = F, .min_wavelength = 0.5, .max_wavelength = 4000.0};
    const auto want = nexa::mz_fourier_features(mz.cview(), c);
    poison_pool<T>({{3, 37, 2 * F}});
    const auto got = nexa::mz_fourier_features(on_device(mz).cview(), c);
    CHECK(got.shape() == want.shape());
    CHECK(rel_error(got.to_host(), want.to_host()) < tolerance<T>());
  }
  CHECK_THROWS_AS((void)nexa::mz_fourier_features(on_device(mz).cview(), {.d_model = 4, .frequencies = 0}),
                  nexa::Error);
}

template <class T>
void compare_embedding(std::uint64_t seed) {
  const nexa::SpecEmbeddingConfig config{
      .d_model = 24, .frequencies = 8, .intensity_hidden = 12, .token_types = 4, .init_std = 0.3};
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  nexa::SpecEmbedding<T> cpu(config, cpu_rng);
  nexa::SpecEmbedding<T, nexa::cuda> gpu(config, gpu_rng);
  perturb<T>(cpu, gpu, rng);
  seed_grads<T>(cpu, gpu, rng);
  const index_t B = 3, S = 13, d = config.d_model;
  for (int pass = 0; pass < 2; ++pass) {  // the second pass accumulates
    CAPTURE(pass);
    const Batch<T> x = make_batch<T>(B, S, rng);
    const auto dy = Tensor<T>::randn({B, S, d}, rng);
    typename nexa::SpecEmbedding<T>::Cache cpu_cache;
    typename nexa::SpecEmbedding<T, nexa::cuda>::Cache gpu_cache;
    poison_pool<T>({{B, S, d}, {B, S, 2 * config.frequencies}, {B, S, config.intensity_hidden}});
    const auto y = cpu.forward(x.mz.cview(), x.intensity.cview(), x.type.cview(), cpu_cache);
    const auto y_gpu =
        gpu.forward(on_device(x.mz).cview(), on_device(x.intensity).cview(), on_device(x.type).cview(), gpu_cache);
    CHECK(y_gpu.shape() == y.shape());
    CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<T>());
    poison_pool<T>({{B, S, config.intensity_hidden}, {B, S, 1}});
    cpu.backward(dy.cview(), cpu_cache);
    gpu.backward(on_device(dy).cview(), gpu_cache);
  }
  check_grads<T>(cpu, gpu, tolerance<T>());
  // An out-of-range token type is rejected from the host copy.
  const Batch<T> x = make_batch<T>(B, S, rng);
  auto bad = x.type.to_host();
  bad[4] = static_cast<std::int32_t>(config.token_types);
  typename nexa::SpecEmbedding<T, nexa::cuda>::Cache c;
  CHECK_THROWS_AS((void)gpu.forward(on_device(x.mz).cview(), on_device(x.intensity).cview(),
                                    on_device(Tensor<std::int32_t>::from_host({B, S}, bad)).cview(), c),
                  nexa::Error);
}

template <class T>
void compare_head(bool tied, std::uint64_t seed) {
  CAPTURE(tied);
  const nexa::MaskedPeakHeadConfig config{
      .d_model = 16, .mz_bins = 37, .intensity_bins = 5, .norm_eps = 1e-12, .init_std = 0.3, .tied_mz = tied};
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  nexa::MaskedPeakHead<T> cpu(config, cpu_rng);
  nexa::MaskedPeakHead<T, nexa::cuda> gpu(config, gpu_rng);
  perturb<T>(cpu, gpu, rng);
  seed_grads<T>(cpu, gpu, rng);
  const index_t N = 11, d = config.d_model;
  const auto decoder = tied ? Tensor<T>::randn({config.mz_bins, d}, rng) : Tensor<T>();
  const auto decoder_gpu = tied ? on_device(decoder) : DeviceTensor<T>();
  auto d_decoder = tied ? Tensor<T>::randn({config.mz_bins, d}, rng) : Tensor<T>();
  auto d_decoder_gpu = tied ? on_device(d_decoder) : DeviceTensor<T>();
  for (int pass = 0; pass < 2; ++pass) {
    CAPTURE(pass);
    const auto hidden = Tensor<T>::randn({N, d}, rng);
    auto mz_t = targets<T>(N, config.mz_bins, rng);
    const auto in_t = targets<T>(N, config.intensity_bins, rng);
    auto ignored = mz_t.to_host();
    ignored[2] = -100;  // an ignored row
    mz_t = Tensor<std::int32_t>::from_host({N}, ignored);
    typename nexa::MaskedPeakHead<T>::Cache cpu_cache;
    typename nexa::MaskedPeakHead<T, nexa::cuda>::Cache gpu_cache;
    poison_pool<T>({{N, config.mz_bins}, {N, config.intensity_bins}, {N, d}});
    const auto logits = cpu.forward(hidden.cview(), cpu_cache, decoder.cview());
    const auto logits_gpu = gpu.forward(on_device(hidden).cview(), gpu_cache, decoder_gpu.cview());
    CHECK(rel_error(logits_gpu.mz.to_host(), logits.mz.to_host()) < tolerance<T>());
    CHECK(rel_error(logits_gpu.intensity.to_host(), logits.intensity.to_host()) < tolerance<T>());
    poison_pool<T>({{N, config.mz_bins}, {N, config.intensity_bins}});
    const auto loss = nexa::masked_peak_loss(logits, mz_t.cview(), in_t.cview());
    const auto loss_gpu = nexa::masked_peak_loss(logits_gpu, on_device(mz_t).cview(), on_device(in_t).cview());
    CHECK(std::abs(loss_gpu.mz - loss.mz) <= tolerance<T>() * std::abs(loss.mz));
    CHECK(std::abs(loss_gpu.intensity - loss.intensity) <= tolerance<T>() * std::abs(loss.intensity));
    CHECK(rel_error(loss_gpu.d_mz.to_host(), loss.d_mz.to_host()) < tolerance<T>());
    CHECK(rel_error(loss_gpu.d_intensity.to_host(), loss.d_intensity.to_host()) < tolerance<T>());
    poison_pool<T>({{N, d}, {N, d}});
    const auto dh = cpu.backward(loss.d_mz.cview(), loss.d_intensity.cview(), cpu_cache, d_decoder.view());
    const auto dh_gpu =
        gpu.backward(loss_gpu.d_mz.cview(), loss_gpu.d_intensity.cview(), gpu_cache, d_decoder_gpu.view());
    CHECK(dh_gpu.shape() == dh.shape());
    CHECK(rel_error(dh_gpu.to_host(), dh.to_host()) < tolerance<T>());
  }
  check_grads<T>(cpu, gpu, tolerance<T>());
  if (tied) CHECK(rel_error(d_decoder_gpu.to_host(), d_decoder.to_host()) < tolerance<T>());
  const auto bad = Tensor<std::int32_t>::from_host({N}, std::vector<std::int32_t>(N, 5000));
  typename nexa::MaskedPeakHead<T, nexa::cuda>::Cache c;
  const auto logits_gpu = gpu.forward(on_device(Tensor<T>::randn({N, d}, rng)).cview(), c, decoder_gpu.cview());
  CHECK_THROWS_AS((void)nexa::masked_peak_loss(logits_gpu, on_device(bad).cview(),
                                               on_device(targets<T>(N, config.intensity_bins, rng)).cview()),
                  nexa::Error);
}

template <index_t Window, class T>
void compare_encoder(bool tied, std::uint64_t seed) {
  CAPTURE(Window);
  CAPTURE(tied);
  const nexa::SpecEncoderConfig config{
      .embedding = {.d_model = 32, .frequencies = 8, .intensity_hidden = 8, .token_types = 4, .init_std = 0.3},
      .layers = 2,
      .heads = 4,
      .d_ff = 48,
      .dropout = 0.0,
      .relative_buckets = 8,
      .relative_max_distance = 16,
      .mz_bins = 23,
      .intensity_bins = 4,
      .mz_bin_width = 100.0,
      .tied_mz = tied};
  using Cpu = nexa::SpecEncoder<Window, T>;
  using Gpu = nexa::SpecEncoder<Window, T, nexa::cuda>;
  nexa::Rng cpu_rng(seed), gpu_rng(seed), rng(seed + 100);
  Cpu cpu(config, cpu_rng);
  Gpu gpu(config, gpu_rng);
  cpu.set_training(true);
  gpu.set_training(true);
  perturb<T>(cpu, gpu, rng);
  seed_grads<T>(cpu, gpu, rng);
  const index_t B = 4, S = 19, d = config.embedding.d_model;
  for (int pass = 0; pass < 2; ++pass) {
    CAPTURE(pass);
    const Batch<T> x = make_batch<T>(B, S, rng);
    const auto n = static_cast<index_t>(x.masked.size());
    typename Cpu::Tokens cx{x.mz, x.intensity, x.type, x.padding, x.global, x.masked};
    typename Gpu::Tokens gx{on_device(x.mz),      on_device(x.intensity), on_device(x.type),
                            on_device(x.padding), on_device(x.global),    x.masked};
    const auto mz_t = targets<T>(n, config.mz_bins, rng);
    const auto in_t = targets<T>(n, config.intensity_bins, rng);
    typename Cpu::Cache cpu_cache;
    typename Gpu::Cache gpu_cache;
    poison_pool<T>({{n, config.mz_bins}, {n, config.intensity_bins}, {n, d}, {B, S, d}, {B, S, d}});
    const auto logits = cpu.forward(cx, cpu_cache);
    const auto logits_gpu = gpu.forward(gx, gpu_cache);
    CHECK(rel_error(logits_gpu.mz.to_host(), logits.mz.to_host()) < tolerance<T>());
    CHECK(rel_error(logits_gpu.intensity.to_host(), logits.intensity.to_host()) < tolerance<T>());
    const auto loss = nexa::masked_peak_loss(logits, mz_t.cview(), in_t.cview());
    const auto loss_gpu = nexa::masked_peak_loss(logits_gpu, on_device(mz_t).cview(), on_device(in_t).cview());
    CHECK(std::abs(loss_gpu.total() - loss.total()) <= tolerance<T>() * std::abs(loss.total()));
    poison_pool<T>({{B, S, d}, {B, S, d}, {n, d}});
    cpu.backward(loss.d_mz.cview(), loss.d_intensity.cview(), cpu_cache);
    gpu.backward(loss_gpu.d_mz.cview(), loss_gpu.d_intensity.cview(), gpu_cache);
    // The final hidden states (the [CLS] rows are the spectrum embeddings).
    typename Cpu::Cache ce;
    typename Gpu::Cache ge;
    poison_pool<T>({{B, S, d}});
    const auto h = cpu.encode(cx, ce);
    const auto h_gpu = gpu.encode(gx, ge);
    CHECK(rel_error(h_gpu.to_host(), h.to_host()) < tolerance<T>());
  }
  check_grads<T>(cpu, gpu, tolerance<T>());
  // A masked position outside the batch is rejected before any device work.
  Batch<T> x = make_batch<T>(B, S, rng);
  typename Gpu::Tokens gx{on_device(x.mz),      on_device(x.intensity), on_device(x.type),
                          on_device(x.padding), on_device(x.global),    {B * S}};
  typename Gpu::Cache c;
  CHECK_THROWS_AS((void)gpu.forward(gx, c), nexa::Error);
}

}  // namespace

TEST_CASE("spec: mz_fourier_features on cuda matches the CPU") { compare_fourier<float>(11); }

TEST_CASE("spec: SpecEmbedding on cuda matches the CPU (forward, every gradient, two passes)") {
  compare_embedding<float>(21);
}

TEST_CASE("spec: MaskedPeakHead + masked_peak_loss on cuda match the CPU, untied and tied") {
  compare_head<float>(false, 31);
  compare_head<float>(true, 32);
}

TEST_CASE("spec: SpecEncoder<Window> on cuda matches the CPU (padding, global tokens, repeated masks)") {
  compare_encoder<4, float>(true, 41);
  compare_encoder<4, float>(false, 42);
  compare_encoder<0, float>(true, 43);
}
