// Test driver for the CUDA backend. Without a usable GPU (cudaGetDeviceCount fails, e.g. with
// "CUDA driver version is insufficient for CUDA runtime version", or finds none) it runs nothing,
// says why, and exits with 77, which CMakeLists.txt registers as SKIP_RETURN_CODE: ctest then
// reports the tests as skipped, not passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <cuda_runtime_api.h>
#include <doctest/doctest.h>

#include <cstdio>

namespace {
constexpr int skip_return_code = 77;
}

int main(int argc, char** argv) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    std::printf("SKIPPED: no CUDA device available (%s); the CUDA backend tests need a GPU.\n",
                status != cudaSuccess ? cudaGetErrorString(status) : "cudaGetDeviceCount found 0 devices");
    return skip_return_code;
  }
  doctest::Context context(argc, argv);
  const int result = context.run();
  return result == skip_return_code ? 1 : result;
}
