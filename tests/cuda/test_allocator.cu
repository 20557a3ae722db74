// The caching allocator behind Buffer<T, cuda>: no cudaMalloc after warm-up, ownership across
// contexts. The bookkeeping itself is tested without a GPU in tests/alloc.
#include <memory>
#include <optional>

#include "support.hpp"

using namespace nexa_test;
using nexa::Tensor;
using nexa::Trans;

namespace {

// A small forward/backward-shaped step: temporaries of several sizes created and dropped.
float step(const DeviceTensor<float>& x, const DeviceTensor<float>& w) {
  auto h = nexa::ops::matmul(x, Trans::N, w, Trans::T);
  auto dx = nexa::ops::matmul(h, Trans::N, w, Trans::N);
  auto dw = nexa::ops::matmul(h, Trans::T, x, Trans::N);
  DeviceTensor<float> copy = dx;
  return copy.to_host().at(0) + dw.to_host().at(0);
}

}  // namespace

TEST_CASE("after a warm-up step, repeated steps make no cudaMalloc and give the same results") {
  cudaStream_t stream = nullptr;
  NEXA_CUDA_CHECK(cudaStreamCreate(&stream));
  {
    nexa::CudaContext context(stream);
    nexa::CudaContextScope use(context);
    nexa::Rng rng(31);
    const auto x = Tensor<float>::randn({300, 64}, rng).to<nexa::cuda>();
    const auto w = Tensor<float>::randn({512, 64}, rng).to<nexa::cuda>();
    const float first = step(x, w);
    const auto warm = context.allocator()->stats();
    CHECK(warm.raw_allocations > 0);
    for (int i = 0; i < 4; ++i) CHECK(step(x, w) == first);
    const auto after = context.allocator()->stats();
    CHECK(after.raw_allocations == warm.raw_allocations);
    CHECK(after.bytes_in_use == warm.bytes_in_use);
    CHECK(after.requests > warm.requests);
  }
  NEXA_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST_CASE("a cuda buffer frees to the allocator it came from, which outlives its context") {
  std::optional<nexa::CudaContext> first;
  first.emplace();
  std::shared_ptr<nexa::CachingAllocator> allocator = first->allocator();
  std::optional<DeviceTensor<float>> kept;
  {
    nexa::CudaContextScope use(*first);
    kept = DeviceTensor<float>::full({1000}, 2.f);
  }
  CHECK(allocator->stats().bytes_in_use >= 4000);
  first.reset();  // the tensor keeps the allocator alive
  nexa::CudaContext second;
  nexa::CudaContextScope use(second);
  CHECK(kept->to_host() == std::vector<float>(1000, 2.f));
  kept.reset();  // freed into the first context's allocator while the second is current
  CHECK(allocator->stats().bytes_in_use == 0);
  CHECK(second.allocator()->stats().bytes_in_use == 0);
  allocator->release_cached();
  CHECK(allocator->stats().bytes_reserved == 0);
}
