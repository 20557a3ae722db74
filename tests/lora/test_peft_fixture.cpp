// LoRA against Hugging Face peft: adapters written by peft's save_pretrained load under peft's
// names, the outputs match peft's, and save_adapters writes peft's file byte for byte.
// Fixtures: tests/fixtures/lora/make_peft_fixture.py.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "nexa/lora/adapters_io.hpp"
#include "nexa/lora/lora_expert.hpp"

using nexa::index_t;
using nexa::Linear;
using nexa::LoRA;
using nexa::Relu;
using nexa::T5FFN;
using nexa::Tensor;

namespace {

const std::filesystem::path fixture_dir = NEXA_LORA_FIXTURE_DIR;

std::vector<char> file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void check_close(const Tensor<float>& y, const Tensor<float>& expected) {
  REQUIRE(y.shape() == expected.shape());
  for (index_t i = 0; i < y.numel(); ++i) CHECK(y.data()[i] == doctest::Approx(expected.data()[i]).epsilon(1e-5));
}

// Loads peft's adapters under `prefix`, compares the output and writes them back byte for byte.
template <class M>
void check_case(M& m, const std::string& c, const std::string& prefix) {
  const auto adapter_file = fixture_dir / (c + "_adapter_model.safetensors");
  nexa::load_safetensors(m.base, fixture_dir / (c + ".safetensors"), /*strict=*/false);
  nexa::load_adapters(m, adapter_file, prefix);
  nexa::SafetensorsReader reader(fixture_dir / (c + ".safetensors"));
  const auto x = reader.read_tensor<float>("x");
  typename M::Cache cache;
  check_close(m.forward(x, cache), reader.read_tensor<float>("y"));

  const auto out = std::filesystem::temp_directory_path() / ("nexa_peft_" + std::to_string(::getpid()) + c);
  nexa::save_adapters(m, out, prefix, nexa::Dtype::F32, {{"format", "pt"}});
  CHECK(nexa::SafetensorsReader(out).names() == nexa::SafetensorsReader(adapter_file).names());
  CHECK(file_bytes(out) == file_bytes(adapter_file));
  std::filesystem::remove(out);
}

}  // namespace

TEST_CASE("LoRA<Linear> matches peft's LoraConfig on an nn.Linear, plain and rsLoRA") {
  for (bool rslora : {false, true}) {
    const std::string c = rslora ? "linear_rslora" : "linear";
    INFO(c);
    nexa::Rng rng(40);
    LoRA<Linear<>> m(
        {.base = {.in_features = 6, .out_features = 5, .bias = true}, .lora = {.r = 3, .alpha = 6, .rslora = rslora}},
        rng);
    check_case(m, c, "base_model.model.proj");
  }
}

TEST_CASE("LoRA<T5FFN<Relu>> matches peft on a T5DenseActDense with target_modules wi, wo") {
  nexa::Rng rng(41);
  LoRA<T5FFN<Relu>> m({.d_model = 8, .d_ff = 12}, {.r = 4, .alpha = 8}, rng);
  check_case(m, "t5_relu", "base_model.model");
}
