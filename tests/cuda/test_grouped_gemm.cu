// GroupedGemmKernel<cuda> (one cuBLAS grouped launch) against the CPU's grouped GEMM, in float,
// double, bfloat16 and half, with empty experts and an empty inner dimension among the problems.
#include <tuple>

// support.hpp first: it brings in nexa/backend/cuda.hpp, which keeps Eigen host-only.
#include "support.hpp"

#include "nexa/backend/cuda/grouped_gemm.hpp"
#include "nexa/ops/grouped_gemm.hpp"

using namespace nexa_test;
using nexa::Tensor;
using nexa::Trans;

namespace {

using Shapes = std::vector<std::tuple<index_t, index_t, index_t>>;

template <class T, class D>
std::vector<nexa::TensorView<const T, D>> read_views(const std::vector<Tensor<T, D>>& ts) {
  std::vector<nexa::TensorView<const T, D>> views;
  for (const auto& t : ts) views.push_back(t.view());
  return views;
}

template <class T, class D>
std::vector<nexa::TensorView<T, D>> write_views(std::vector<Tensor<T, D>>& ts) {
  std::vector<nexa::TensorView<T, D>> views;
  for (auto& t : ts) views.push_back(t.view());
  return views;
}

// Inputs are drawn in float, rounded to T, and the CPU reference runs in Ref on the rounded values.
template <class T, class Ref>
void compare_grouped(const Shapes& shapes, Trans ta, Trans tb, float alpha, float beta, nexa::Rng& rng) {
  CAPTURE(alpha);
  CAPTURE(beta);
  std::vector<Tensor<Ref>> a_cpu, b_cpu, c_cpu;
  std::vector<DeviceTensor<T>> a_gpu, b_gpu, c_gpu;
  auto round = [](const std::vector<float>& v) {
    std::vector<T> out;
    for (float x : v) out.push_back(T(x));
    return out;
  };
  auto widen = [](const std::vector<T>& v) { return std::vector<Ref>(v.begin(), v.end()); };
  for (const auto& [m, n, k] : shapes) {
    const nexa::Shape as = ta == Trans::N ? nexa::Shape{m, k} : nexa::Shape{k, m};
    const nexa::Shape bs = tb == Trans::N ? nexa::Shape{k, n} : nexa::Shape{n, k};
    const auto a = round(random_normal<float>(m * k, rng)), b = round(random_normal<float>(k * n, rng));
    const auto c = round(random_normal<float>(m * n, rng));
    a_cpu.push_back(Tensor<Ref>::from_host(as, widen(a)));
    b_cpu.push_back(Tensor<Ref>::from_host(bs, widen(b)));
    c_cpu.push_back(Tensor<Ref>::from_host({m, n}, widen(c)));
    a_gpu.push_back(DeviceTensor<T>::from_host(as, a));
    b_gpu.push_back(DeviceTensor<T>::from_host(bs, b));
    c_gpu.push_back(beta == 0.f ? poisoned<T>({m, n}) : DeviceTensor<T>::from_host({m, n}, c));
  }
  nexa::ops::grouped_gemm(read_views(a_cpu), ta, read_views(b_cpu), tb, write_views(c_cpu), Ref(alpha), Ref(beta));
  nexa::ops::grouped_gemm(read_views(a_gpu), ta, read_views(b_gpu), tb, write_views(c_gpu), T(alpha), T(beta));
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    CAPTURE(i);
    const auto got = c_gpu[i].to_host();
    CHECK(rel_error(std::vector<Ref>(got.begin(), got.end()), c_cpu[i].to_host()) < tolerance<T>());
  }
}

const Shapes expert_shapes{{7, 5, 3}, {0, 5, 3}, {33, 17, 64}, {1, 1, 1}, {4, 6, 0}, {130, 96, 40}, {64, 96, 40}};

template <class T, class Ref>
void grouped_suite(std::uint64_t seed) {
  nexa::Rng rng(seed);
  for (Trans ta : {Trans::N, Trans::T})
    for (Trans tb : {Trans::N, Trans::T}) {
      compare_grouped<T, Ref>(expert_shapes, ta, tb, 1.f, 0.f, rng);
      compare_grouped<T, Ref>(expert_shapes, ta, tb, -0.5f, 2.f, rng);
    }
}

}  // namespace

TEST_CASE("cuda grouped gemm matches the CPU in float") { grouped_suite<float, float>(51); }

TEST_CASE("cuda grouped gemm matches the CPU in double") { grouped_suite<double, double>(52); }

TEST_CASE("cuda grouped gemm in bfloat16 matches the CPU's fp32 grouped gemm") {
  grouped_suite<nexa::bfloat16, float>(53);
}

TEST_CASE("cuda grouped gemm in half matches the CPU's fp32 grouped gemm") { grouped_suite<nexa::half, float>(56); }

TEST_CASE("cuda grouped_gemm_rows runs each expert's rows against its weight, as on the CPU") {
  nexa::Rng rng(54);
  const index_t d_in = 48, d_out = 40;
  const std::vector<index_t> offsets{0, 17, 17, 80, 81, 200};
  const auto x = Tensor<float>::randn({200, d_in}, rng);
  std::vector<Tensor<float>> w;
  std::vector<DeviceTensor<float>> w_gpu;
  for (int e = 0; e < 5; ++e) {
    w.push_back(Tensor<float>::randn({d_out, d_in}, rng));
    w_gpu.push_back(w.back().to<nexa::cuda>());
  }
  auto y = Tensor<float>::uninitialized({200, d_out});
  nexa::ops::grouped_gemm_rows(x.view(), offsets, read_views(w), Trans::T, y.view());
  auto y_gpu = poisoned<float>({200, d_out});
  const auto x_gpu = x.to<nexa::cuda>();
  nexa::ops::grouped_gemm_rows(x_gpu.view(), offsets, read_views(w_gpu), Trans::T, y_gpu.view());
  CHECK(rel_error(y_gpu.to_host(), y.to_host()) < tolerance<float>());
}

TEST_CASE("a repeated cuda grouped gemm allocates nothing new") {
  nexa::CudaContext context;
  nexa::CudaContextScope use(context);
  nexa::Rng rng(55);
  compare_grouped<float, float>(expert_shapes, Trans::N, Trans::T, 1.f, 0.f, rng);
  std::vector<DeviceTensor<float>> a, b, c;
  for (int e = 0; e < 4; ++e) {
    a.push_back(DeviceTensor<float>::zeros({10, 8}));
    b.push_back(DeviceTensor<float>::zeros({6, 8}));
    c.push_back(DeviceTensor<float>::zeros({10, 6}));
  }
  nexa::ops::grouped_gemm(read_views(a), Trans::N, read_views(b), Trans::T, write_views(c));
  const auto warm = context.allocator()->stats().raw_allocations;
  for (int i = 0; i < 3; ++i) nexa::ops::grouped_gemm(read_views(a), Trans::N, read_views(b), Trans::T, write_views(c));
  context.synchronize();
  CHECK(context.allocator()->stats().raw_allocations == warm);
}
