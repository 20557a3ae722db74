// The packaging consumer: compiled against an installed nexa (find_package), a nexa subtree
// (add_subdirectory) and a bare copy of include/nexa (vendoring, g++ -std=c++20 -I... only).
// It runs a Linear forward pass big enough to go through Eigen's GEMM path (and BLAS, when the
// build has it) on integer-valued data, so the result must match a plain loop exactly, and an
// MoE layer with a shared expert through forward and backward.
#include <cmath>
#include <cstdio>
#include <vector>

#include <nexa/moe.hpp>

#ifdef EIGEN_USE_BLAS
constexpr bool have_blas = true;
#else
constexpr bool have_blas = false;
#endif
#ifdef _OPENMP
constexpr bool have_openmp = true;
#else
constexpr bool have_openmp = false;
#endif
#ifdef NEXA_CONSUMER_EXPECT_BLAS
static_assert(have_blas == bool(NEXA_CONSUMER_EXPECT_BLAS), "nexa::nexa did not propagate EIGEN_USE_BLAS as expected");
#endif
#ifdef NEXA_CONSUMER_EXPECT_OPENMP
static_assert(have_openmp == bool(NEXA_CONSUMER_EXPECT_OPENMP), "nexa::nexa did not propagate OpenMP as expected");
#endif

int main() {
  constexpr nexa::index_t rows = 64, in = 96, out = 80;
  nexa::Rng rng(42);
  nexa::Linear<float> linear({.in_features = in, .out_features = out, .bias = true}, rng);

  std::vector<float> w(out * in), b(out), x(rows * in);
  for (nexa::index_t o = 0; o < out; ++o) {
    b[o] = static_cast<float>(o % 7) - 3;
    for (nexa::index_t c = 0; c < in; ++c) w[o * in + c] = static_cast<float>((o * 3 + c) % 5) - 2;
  }
  for (nexa::index_t r = 0; r < rows; ++r)
    for (nexa::index_t c = 0; c < in; ++c) x[r * in + c] = static_cast<float>((r + 2 * c) % 7) - 3;
  linear.weight.value = nexa::Tensor<float>::from_host({out, in}, w);
  linear.bias.value = nexa::Tensor<float>::from_host({out}, b);

  const auto y = linear.apply(nexa::Tensor<float>::from_host({rows, in}, x));
  long mismatches = 0;
  for (nexa::index_t r = 0; r < rows; ++r) {
    for (nexa::index_t o = 0; o < out; ++o) {
      double ref = b[o];
      for (nexa::index_t c = 0; c < in; ++c) ref += double(x[r * in + c]) * w[o * in + c];
      if (y(r, o) != static_cast<float>(ref)) ++mismatches;
    }
  }

  bool threw = false;  // bad input raises nexa::Error
  try {
    (void)linear.apply(nexa::Tensor<float>::zeros({2, in + 1}));
  } catch (const nexa::Error&) {
    threw = true;
  }

  // The umbrella header's MoE layer: forward and backward keep the shape and stay finite.
  using Layer = nexa::MoELayer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::GatedGelu>,
                               nexa::SharedExpert<nexa::T5FFN<nexa::GatedGelu>>>;
  Layer moe({.d_model = 32, .d_ff = 64, .num_experts = 4}, rng);
  Layer::Cache cache;
  const auto moe_x = nexa::Tensor<float>::randn({16, 32}, rng);
  const auto moe_y = moe.forward(moe_x, cache);
  const auto moe_dx = moe.backward(moe_y, cache);
  bool moe_ok = moe_y.shape() == moe_x.shape() && moe_dx.shape() == moe_x.shape();
  for (float v : moe_dx.to_host()) moe_ok = moe_ok && std::isfinite(v);

  std::printf("nexa consumer: y[0,0]=%g, %ld mismatches, error on bad shape: %s, MoE layer: %s (BLAS %s, OpenMP %s)\n",
              y(0, 0), mismatches, threw ? "yes" : "no", moe_ok ? "ok" : "FAILED", have_blas ? "on" : "off",
              have_openmp ? "on" : "off");
  return mismatches == 0 && threw && moe_ok ? 0 : 1;
}
