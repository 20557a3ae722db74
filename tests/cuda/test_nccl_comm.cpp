// NcclComm on one GPU: a communicator of one rank runs every collective through NCCL (and the
// all_to_allv's copy to itself), so each result must equal its input; outputs are poisoned first
// so that an element NCCL fails to write shows. Multi-rank NCCL runs need one GPU per rank.
#include "nexa/dist/nccl_comm.hpp"

#include <cuda_runtime_api.h>
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "nexa/backend/cuda/buffer.hpp"
#include "nexa/dist/no_comm.hpp"

using nexa::index_t;
using nexa::dist::NcclComm;

namespace {

template <class T>
using DeviceTensor = nexa::Tensor<T, nexa::cuda>;

// Distinct, exactly representable values of every element type.
template <class T>
std::vector<T> ramp(index_t n) {
  std::vector<T> v;
  for (index_t i = 0; i < n; ++i) {
    const float x = static_cast<float>(i % 61) * 0.5f - 7.0f;
    if constexpr (std::is_integral_v<T>)
      v.push_back(static_cast<T>(3 * i - 50));
    else
      v.push_back(static_cast<T>(x));
  }
  return v;
}

// NaN (or an absurd integer): bits no collective produces from ramp().
template <class T>
DeviceTensor<T> poisoned(index_t n) {
  if constexpr (std::is_integral_v<T>)
    return DeviceTensor<T>::full({n}, T(-1234567));
  else
    return DeviceTensor<T>::full({n}, static_cast<T>(std::numeric_limits<float>::quiet_NaN()));
}

template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

NcclComm one_rank() { return NcclComm(NcclComm::make_unique_id(), 0, 1); }

}  // namespace

TEST_CASE_TEMPLATE("NcclComm of one rank: all_reduce_sum, reduce_scatter_sum, all_gather, broadcast", T, float, double,
                   std::int32_t, std::int64_t, nexa::half, nexa::bfloat16) {
  NcclComm comm(NcclComm::make_unique_id(), 0, 1);
  CHECK(comm.rank() == 0);
  CHECK(comm.size() == 1);
  const index_t n = 1000;
  const std::vector<T> want = ramp<T>(n);
  const auto send = DeviceTensor<T>::from_host({n}, want);

  auto sum = poisoned<T>(n);
  comm.all_reduce_sum(send.data(), sum.data(), n);
  CHECK(bitwise_equal(sum.to_host(), want));
  auto in_place = DeviceTensor<T>::from_host({n}, want);
  comm.all_reduce_sum(in_place.data(), in_place.data(), n);
  CHECK(bitwise_equal(in_place.to_host(), want));

  auto scattered = poisoned<T>(n);
  comm.reduce_scatter_sum(send.data(), scattered.data(), n);
  CHECK(bitwise_equal(scattered.to_host(), want));

  auto gathered = poisoned<T>(n);
  comm.all_gather(send.data(), n, gathered.data());
  CHECK(bitwise_equal(gathered.to_host(), want));

  auto data = DeviceTensor<T>::from_host({n}, want);
  comm.broadcast(data.data(), n, 0);
  CHECK(bitwise_equal(data.to_host(), want));
  comm.barrier();
}

TEST_CASE("NcclComm of one rank: all_to_allv copies the block to itself; bad counts raise nexa::Error") {
  NcclComm comm = one_rank();
  const std::vector<float> want = ramp<float>(37);
  const auto send = DeviceTensor<float>::from_host({37}, want);
  auto recv = poisoned<float>(37);
  const std::vector<index_t> counts{37};
  comm.all_to_allv(send.data(), counts, recv.data(), counts);
  CHECK(bitwise_equal(recv.to_host(), want));

  const std::vector<index_t> two{1, 1}, fewer{36}, negative{-1};
  CHECK_THROWS_WITH_AS(comm.all_to_allv(send.data(), two, recv.data(), two),
                       doctest::Contains("NcclComm: all_to_allv expects 1 send and receive counts, got 2 and 2"),
                       nexa::Error);
  CHECK_THROWS_WITH_AS(comm.all_to_allv(send.data(), counts, recv.data(), fewer),
                       doctest::Contains("sends 37 elements to its own rank but expects to receive 36"), nexa::Error);
  CHECK_THROWS_WITH_AS(comm.all_to_allv(send.data(), negative, recv.data(), negative),
                       doctest::Contains("must be non-negative, got -1"), nexa::Error);
  CHECK_THROWS_WITH_AS(comm.broadcast(recv.data(), 37, 1), doctest::Contains("broadcast root must be in [0, 1)"),
                       nexa::Error);
  CHECK_THROWS_WITH_AS(comm.all_reduce_sum(send.data(), recv.data(), -2),
                       doctest::Contains("all_reduce_sum count must be non-negative"), nexa::Error);
}

TEST_CASE("NcclComm from a host communicator, on a caller's stream") {
  nexa::dist::NoComm host;
  NcclComm comm(host);
  CHECK(comm.size() == 1);
  int device = -1;
  REQUIRE(cudaGetDevice(&device) == cudaSuccess);
  CHECK(comm.cuda_device() == device);

  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreate(&stream) == cudaSuccess);
  {
    nexa::CudaContext context(stream);
    nexa::CudaContextScope use(context);
    const std::vector<double> want = ramp<double>(513);
    const auto send = DeviceTensor<double>::from_host({513}, want);
    auto recv = poisoned<double>(513);
    comm.all_reduce_sum(send.data(), recv.data(), 513);
    context.synchronize();
    CHECK(bitwise_equal(recv.to_host(), want));
  }
  CHECK(cudaStreamDestroy(stream) == cudaSuccess);
}

TEST_CASE("NCCL failures raise nexa::Error naming the call and NCCL's message") {
  CHECK_THROWS_WITH_AS(NEXA_NCCL_CHECK(ncclInvalidArgument),
                       doctest::Contains("NcclComm: ncclInvalidArgument failed: "), nexa::Error);
  CHECK_NOTHROW(NEXA_NCCL_CHECK(ncclSuccess));
  CHECK_THROWS_WITH_AS(NcclComm(NcclComm::make_unique_id(), 1, 1), doctest::Contains("rank must be in [0, size)"),
                       nexa::Error);
}
