// Text to sentence embedding end to end on the real all-MiniLM-L6-v2 checkpoint: WordPiece + BERT
// + pooling against sentence-transformers' values (tests/fixtures/bert), and Nexus domain
// embeddings driving a NexusRouter. Exits 77 (ctest: skipped) when the checkpoint is absent.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "nexa/io/safetensors.hpp"
#include "nexa/models/sentence_encoder.hpp"
#include "nexa/moe.hpp"

namespace {
std::filesystem::path checkpoint_dir() {
  if (const char* env = std::getenv("NEXA_MINILM_DIR"); env && *env) return env;
  if (const char* home = std::getenv("HOME")) return std::filesystem::path(home) / ".cache/nexa/all-MiniLM-L6-v2";
  return {};
}

nexa::SentenceEncoder& encoder() {
  static nexa::SentenceEncoder e = nexa::SentenceEncoder::from_directory(checkpoint_dir());
  return e;
}

std::vector<std::string> split(const std::string& s, const std::string& sep) {
  std::vector<std::string> out;
  std::size_t begin = 0;
  for (std::size_t at; (at = s.find(sep, begin)) != std::string::npos; begin = at + sep.size())
    out.push_back(s.substr(begin, at - begin));
  out.push_back(s.substr(begin));
  return out;
}

double cosine(const float* a, const float* b, nexa::index_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (nexa::index_t i = 0; i < n; ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}
}  // namespace

TEST_CASE("Text to sentence embedding matches sentence-transformers (all-MiniLM-L6-v2)") {
  const auto fixture =
      nexa::read_safetensors(std::filesystem::path(NEXA_BERT_FIXTURE_DIR) / "minilm_reference.safetensors");
  const auto sentences = split(fixture.metadata.at("sentences"), " | ");
  REQUIRE(sentences.size() == 4);
  const auto expected = fixture.tensors.at("sentence_embedding").to_tensor<float>();
  const auto got = encoder().encode(sentences);
  REQUIRE(got.shape() == expected.shape());
  double max_err = 0;
  for (nexa::index_t i = 0; i < got.numel(); ++i)
    max_err = std::max(max_err, double(std::abs(got.data()[i] - expected.data()[i])));
  MESSAGE("max abs error against sentence-transformers: " << max_err);
  CHECK(max_err < 1e-4);
}

TEST_CASE("Nexus domain embeddings from MiniLM route texts to their domain's expert") {
  const std::vector<std::string> physics{"The electron orbits the nucleus under the Coulomb force.",
                                         "A photon's energy is proportional to its frequency.",
                                         "Momentum is conserved in an elastic collision."};
  const std::vector<std::string> biology{"Mitochondria produce ATP for the cell.",
                                         "The enzyme catalyses the hydrolysis of the protein.",
                                         "Chlorophyll absorbs light in the leaves of plants."};
  const std::vector<std::string> materials{"The alloy's grain boundaries limit its yield strength.",
                                           "Annealing the steel relieves internal stress.",
                                           "The ceramic's crystal lattice resists thermal expansion."};
  auto& enc = encoder();
  const nexa::index_t dim = enc.dim();
  auto domains = nexa::Tensor<float>::uninitialized({3, dim});
  const std::vector<std::string>* sets[] = {&physics, &biology, &materials};
  for (nexa::index_t d = 0; d < 3; ++d) {
    const auto e = enc.domain_embedding(*sets[d]);
    std::copy_n(e.data(), dim, domains.data() + d * dim);
  }
  // Held-out texts are closest to their own domain's embedding.
  const std::vector<std::string> queries{"Quarks are bound by the strong nuclear force.",
                                         "The ribosome translates messenger RNA into protein.",
                                         "Tempering reduces the brittleness of hardened steel."};
  const auto q = enc.encode(queries);
  for (nexa::index_t i = 0; i < 3; ++i) {
    nexa::index_t best = 0;
    for (nexa::index_t d = 1; d < 3; ++d)
      if (cosine(q.data() + i * dim, domains.data() + d * dim, dim) >
          cosine(q.data() + i * dim, domains.data() + best * dim, dim))
        best = d;
    CHECK(best == i);
  }
  // They set a NexusRouter's domain embeddings; a fourth domain is added the same way.
  nexa::Rng rng(5);
  nexa::MoELayer<nexa::NexusRouter<1>, nexa::T5FFN<nexa::Relu>> layer(
      {.d_model = 16, .d_ff = 32, .num_experts = 3, .domain_dim = dim}, rng);
  layer.router.set_domain_embeddings(domains);
  const std::vector<std::string> medicine{"The patient was treated with antibiotics for pneumonia.",
                                          "The surgeon removed the inflamed appendix."};
  layer.add_expert(enc.domain_embedding(medicine), nexa::T5FFN<nexa::Relu>(layer.config().expert(), rng));
  CHECK(layer.num_experts() == 4);
  decltype(layer)::Cache cache;
  (void)layer.forward(nexa::Tensor<float>::randn({8, 16}, rng), cache);
  CHECK(cache.router.routing.probs.dim(1) == 4);
}

int main(int argc, char** argv) {
  const auto dir = checkpoint_dir();
  if (dir.empty() || !std::filesystem::exists(dir / "model.safetensors") ||
      !std::filesystem::exists(dir / "vocab.txt")) {
    std::printf("SKIPPED: all-MiniLM-L6-v2 not found at %s; run scripts/fetch-minilm.sh\n", dir.c_str());
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
