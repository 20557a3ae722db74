// NF4 on the GPU: dequantisation bit for bit equal to the CPU's, the tiled dequantise + cuBLAS
// linear forward against the CPU's GEMM with the dequantised weight, and QuantizedLinear<NF4>
// with D = cuda against the same layer on the CPU (forward and backward to the input).
#include <cstdint>
#include <tuple>
#include <vector>

// support.hpp first: it brings in nexa/backend/cuda.hpp, which keeps Eigen host-only.
#include "support.hpp"

#include "module_support.hpp"
#include "nexa/backend/cuda/nf4.hpp"
#include "nexa/quant/nf4.hpp"
#include "nexa/quant/quantized_linear.hpp"

using namespace nexa_test;
using nexa::Tensor;
using nexa::Trans;

TEST_CASE("cuda nf4 dequantisation equals the CPU's bit for bit") {
  nexa::Rng rng(91);
  // Odd element counts (a padding nibble), partial last blocks, both block sizes, with and without
  // double quantisation (more than 256 blocks, so several absmax-of-absmax blocks).
  struct Case {
    nexa::Shape shape;
    bool double_quant;
    index_t blocksize;
  };
  const std::vector<Case> cases{
      {{7, 9}, false, 64}, {{7, 9}, true, 64}, {{300, 129}, true, 64}, {{130, 257}, false, 128}, {{1}, true, 64}};
  for (const auto& [shape, double_quant, blocksize] : cases) {
    CAPTURE(shape);
    CAPTURE(double_quant);
    CAPTURE(blocksize);
    const auto w = Tensor<float>::randn(shape, rng, 0.05);
    const auto q = nexa::quant::nf4_quantize(w.view(), double_quant, blocksize);
    const auto want = nexa::quant::nf4_dequantize(q).to_host();
    const auto dq = nexa::quant::nf4_to_device(q);
    auto got = poisoned<float>(shape);
    nexa::quant::nf4_dequantize_range(dq, 0, q.numel(), got.data());
    CHECK(bitwise_equal(got.to_host(), want));
    CHECK(bitwise_equal(nexa::quant::nf4_dequantize(dq).to_host(), want));
    // A range starting on an odd element, in the middle of a block.
    const index_t begin = q.numel() / 3 | 1, end = q.numel();
    if (begin < end) {
      auto part = poisoned<float>({end - begin});
      nexa::quant::nf4_dequantize_range(dq, begin, end, part.data());
      CHECK(bitwise_equal(part.to_host(), std::vector<float>(want.begin() + begin, want.end())));
    }
  }
}

TEST_CASE("cuda nf4 linear forward matches the CPU gemm with the dequantised weight") {
  nexa::Rng rng(92);
  for (const auto& [rows, in, out, tile] : std::vector<std::tuple<index_t, index_t, index_t, index_t>>{
           {33, 64, 50, 7}, {5, 129, 300, 256}, {1, 16, 3, 1}}) {
    CAPTURE(rows);
    CAPTURE(in);
    CAPTURE(out);
    CAPTURE(tile);
    const auto w = Tensor<float>::randn({out, in}, rng, 0.05);
    const auto q = nexa::quant::nf4_quantize(w.view(), true);
    const auto x = Tensor<float>::randn({rows, in}, rng);
    const auto want = nexa::ops::matmul(x, Trans::N, nexa::quant::nf4_dequantize(q), Trans::T);
    const auto dq = nexa::quant::nf4_to_device(q);
    const auto x_d = x.to<nexa::cuda>();
    auto y = poisoned<float>({rows, out});
    nexa::quant::nf4_linear_forward(x_d.view(), dq, y.view(), tile);
    CHECK(rel_error(y.to_host(), want.to_host()) < tolerance<float>());
  }
}

TEST_CASE("cuda nf4 rejects bad ranges and shapes") {
  const auto q = nexa::quant::nf4_quantize(Tensor<float>::zeros({4, 8}).view(), false);
  const auto dq = nexa::quant::nf4_to_device(q);
  auto out = DeviceTensor<float>::zeros({40});
  CHECK_THROWS_WITH_AS(nexa::quant::nf4_dequantize_range(dq, 0, 33, out.data()),
                       "quant::nf4_dequantize_range: range [0, 33) outside the tensor's 32 elements", nexa::Error);
  auto y = DeviceTensor<float>::zeros({2, 4});
  CHECK_THROWS_WITH_AS(nexa::quant::nf4_linear_forward(DeviceTensor<float>::zeros({2, 7}).view(), dq, y.view()),
                       "quant::nf4_linear_forward: expected x [2, 8] and y [2, 4], got x [2, 7] and y [2, 4]",
                       nexa::Error);
}

TEST_CASE("cuda QuantizedLinear<NF4> matches the CPU layer: forward with and without bias, dx, several tiles") {
  for (const bool bias : {false, true}) {
    CAPTURE(bias);
    nexa::Rng rng_cpu(61), rng_gpu(61), rng(62);
    const nexa::Linear<float> dense_cpu({.in_features = 72, .out_features = 50, .bias = bias}, rng_cpu);
    const nexa::Linear<float, nexa::cuda> dense_gpu({.in_features = 72, .out_features = 50, .bias = bias}, rng_gpu);
    for (const index_t tile : {index_t{16}, index_t{128}}) {
      CAPTURE(tile);
      const nexa::QuantizedLinear<nexa::NF4> cpu(dense_cpu, tile);
      const nexa::QuantizedLinear<nexa::NF4, float, nexa::cuda> gpu(dense_gpu, tile);
      CHECK(gpu.bytes() == cpu.bytes());
      const auto x = Tensor<float>::randn({33, 72}, rng);
      const auto dy = Tensor<float>::randn({33, 50}, rng);
      const auto y = cpu.apply(x.cview());
      const auto y_gpu = gpu.apply(on_device(x).cview());
      CHECK(rel_error(y_gpu.to_host(), y.to_host()) < 1e-5);
      const auto dx = cpu.backward_input(dy.cview());
      const auto dx_gpu = gpu.backward_input(on_device(dy).cview());
      CHECK(rel_error(dx_gpu.to_host(), dx.to_host()) < 1e-5);
    }
  }
}
