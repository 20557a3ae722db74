// The CUDA backend's host-side pieces, compiled as plain C++: error reporting and the paths that
// need no device (empty buffers), plus the no-device behaviour where there is no GPU.
#include <cuda_runtime_api.h>
#include <doctest/doctest.h>

#include "nexa/backend/cuda/buffer.hpp"
#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/gemm.hpp"

namespace {
bool have_device() {
  int count = 0;
  const bool ok = cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
  (void)cudaGetLastError();
  return ok;
}
}  // namespace

TEST_CASE("CUDA runtime failures raise nexa::Error naming the call and the error") {
  CHECK_THROWS_WITH_AS(nexa::cuda_backend::check_cuda(cudaErrorInvalidValue, "cudaMemcpy(dst, src, n)"),
                       "cuda: cudaMemcpy(dst, src, n) failed: cudaErrorInvalidValue: invalid argument", nexa::Error);
  cudaDeviceProp props{};
  auto failing = [&] { NEXA_CUDA_CHECK(cudaGetDeviceProperties(&props, -1)); };
  CHECK_THROWS_WITH_AS(failing(), doctest::Contains("cuda: cudaGetDeviceProperties(&props, -1) failed: cudaError"),
                       nexa::Error);
  CHECK_NOTHROW(NEXA_CUDA_CHECK(cudaSuccess));
}

TEST_CASE("cuBLAS failures raise nexa::Error naming the call and the status") {
  CHECK_THROWS_WITH_AS(NEXA_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE),
                       doctest::Contains("cuda: CUBLAS_STATUS_INVALID_VALUE failed: CUBLAS_STATUS_INVALID_VALUE: "),
                       nexa::Error);
  CHECK_NOTHROW(NEXA_CUBLAS_CHECK(CUBLAS_STATUS_SUCCESS));
}

TEST_CASE("empty cuda buffers and tensors touch no device") {
  nexa::Buffer<float, nexa::cuda> none(0);
  CHECK(none.data() == nullptr);
  nexa::Buffer<float, nexa::cuda> copy = none;
  CHECK(copy.size() == 0);
  auto t = nexa::Tensor<float, nexa::cuda>::uninitialized({0, 3});
  CHECK(t.to_host().empty());
  CHECK(nexa::Tensor<double, nexa::cuda>::zeros({4, 0}).numel() == 0);
  // A gemm with an empty output is a no-op.
  nexa::GemmKernel<nexa::cuda>::run<float>(nexa::Trans::N, nexa::Trans::N, 0, 3, 2, 1.f, nullptr, nullptr, 0.f,
                                           nullptr);
}

TEST_CASE("without a GPU, cuda tensors and contexts raise nexa::Error instead of aborting") {
  if (have_device()) {
    MESSAGE("a CUDA device is present: the no-device path is not exercised here");
    return;
  }
  using DeviceTensor = nexa::Tensor<float, nexa::cuda>;
  // Memory comes from the current context's allocator: finding the context fails first.
  CHECK_THROWS_WITH_AS((void)DeviceTensor::uninitialized({4}), doctest::Contains("cuda: cudaGetDevice"), nexa::Error);
  CHECK_THROWS_AS((void)DeviceTensor::zeros({2, 2}), nexa::Error);
  CHECK_THROWS_WITH_AS(nexa::CudaContext{}, doctest::Contains("cudaGetDevice"), nexa::Error);
}
