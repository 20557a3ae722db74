// Buffer<T, cuda>, Transfer<cuda> and CudaContext through Tensor<T, cuda>.
#include "support.hpp"

using namespace nexa_test;
using nexa::Tensor;

TEST_CASE("cuda tensors round-trip host data for float, double and int32") {
  nexa::Rng rng(11);
  const auto f = random_normal<float>(1000, rng);
  const auto d = random_normal<double>(77, rng);
  const std::vector<std::int32_t> i{3, -1, 7, 0, 42};
  CHECK(DeviceTensor<float>::from_host({10, 100}, f).to_host() == f);
  CHECK(DeviceTensor<double>::from_host({77}, d).to_host() == d);
  CHECK(DeviceTensor<std::int32_t>::from_host({5}, i).to_host() == i);
  const auto cpu = Tensor<float>::from_host({10, 100}, f);
  const auto back = cpu.to<nexa::cuda>().to<nexa::cpu>();
  CHECK(back.shape() == cpu.shape());
  CHECK(back.to_host() == f);
}

TEST_CASE("zeros and set_zero overwrite every element") {
  CHECK(DeviceTensor<float>::zeros({3, 333}).to_host() == std::vector<float>(999, 0.f));
  auto t = poisoned<double>({4, 5});
  t.set_zero();
  CHECK(t.to_host() == std::vector<double>(20, 0.0));
  CHECK(DeviceTensor<float>::full({7}, 2.5f).to_host() == std::vector<float>(7, 2.5f));
}

TEST_CASE("copying a cuda tensor copies the device memory; moving transfers it") {
  nexa::Rng rng(12);
  const auto v = random_normal<float>(513, rng);
  auto a = DeviceTensor<float>::from_host({513}, v);
  DeviceTensor<float> b = a;
  CHECK(b.data() != a.data());
  a = DeviceTensor<float>::zeros({513});  // b must not change
  CHECK(b.to_host() == v);
  const float* storage = b.data();
  DeviceTensor<float> c = std::move(b);
  CHECK(c.data() == storage);
  CHECK(c.to_host() == v);
  auto cl = nexa::clone(c.cview());
  CHECK(cl.data() != c.data());
  CHECK(cl.to_host() == v);
}

TEST_CASE("empty cuda tensors allocate nothing and transfer nothing") {
  auto e = DeviceTensor<float>::uninitialized({0, 4});
  CHECK(e.data() == nullptr);
  CHECK(e.to_host().empty());
  CHECK(e.to<nexa::cpu>().shape() == nexa::Shape{0, 4});
}

TEST_CASE("a failed cudaMalloc raises nexa::Error and leaves later launches unaffected") {
  CHECK_THROWS_WITH_AS((void)DeviceTensor<float>::uninitialized({index_t{1} << 42}), doctest::Contains("cudaMalloc"),
                       nexa::Error);
  // The failure was reported once; it must not resurface as a launch error.
  auto x = DeviceTensor<float>::from_host({2, 2}, {1, 2, 3, 4});
  auto y = nexa::ops::matmul(x, nexa::Trans::N, x, nexa::Trans::N);
  CHECK(y.to_host() == std::vector<float>{7, 10, 15, 22});
  auto idx = DeviceTensor<std::int32_t>::from_host({2, 1}, {1, 0});
  auto plan = nexa::ops::group_by_expert(idx, 2);
  CHECK(plan.offsets == std::vector<index_t>{0, 1, 2});
}

TEST_CASE("a caller-owned CudaContext on its own stream is used while scoped") {
  cudaStream_t stream = nullptr;
  NEXA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  {
    nexa::CudaContext context(stream);
    CHECK(context.stream() == stream);
    CHECK(&nexa::cuda_backend::current_context() != &context);
    {
      nexa::CudaContextScope use(context);
      CHECK(&nexa::cuda_backend::current_context() == &context);
      nexa::Rng rng(13);
      const auto a = Tensor<float>::randn({40, 30}, rng), b = Tensor<float>::randn({30, 20}, rng);
      const auto want = nexa::ops::matmul(a, nexa::Trans::N, b, nexa::Trans::N).to_host();
      const auto got = nexa::ops::matmul(a.to<nexa::cuda>(), nexa::Trans::N, b.to<nexa::cuda>(), nexa::Trans::N);
      CHECK(rel_error(got.to_host(), want) < tolerance<float>());
      {
        nexa::CudaContext inner;  // legacy default stream
        nexa::CudaContextScope use_inner(inner);
        CHECK(&nexa::cuda_backend::current_context() == &inner);
      }
      CHECK(&nexa::cuda_backend::current_context() == &context);
      context.synchronize();
    }
    CHECK(nexa::cuda_backend::installed_context() == nullptr);
  }
  NEXA_CUDA_CHECK(cudaStreamDestroy(stream));
}
