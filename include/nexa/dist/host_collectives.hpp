#pragma once
// Collectives on small host arrays (per-rank counts, layout checks, auxiliary-loss sums) whatever
// the communicator's device: a host communicator (NoComm, MpiComm) takes them as they are, a
// device one (NcclComm) takes device buffers, so there they go to the device and back. The copies
// are synchronous on the current stream, the one the collectives run on.
#include <algorithm>
#include <concepts>
#include <vector>

#include "nexa/core/device.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/dist/communicator.hpp"

namespace nexa::dist {

// all = concat over ranks of their n-element `mine` (all holds size() * n).
template <Communicator Comm, class U>
void host_all_gather(Comm& comm, const U* mine, index_t n, U* all) {
  using D = typename Comm::device;
  if constexpr (std::same_as<D, cpu>) {
    comm.all_gather(mine, n, all);
  } else {
    const auto send = Tensor<U, D>::from_host({n}, std::vector<U>(mine, mine + n));
    auto received = Tensor<U, D>::uninitialized({n * comm.size()});
    comm.all_gather(send.data(), n, received.data());
    const std::vector<U> host = received.to_host();
    std::copy(host.begin(), host.end(), all);
  }
}

// values[i] <- sum over ranks of values[i], i < n.
template <Communicator Comm, class U>
void host_all_reduce_sum(Comm& comm, U* values, index_t n) {
  using D = typename Comm::device;
  if constexpr (std::same_as<D, cpu>) {
    comm.all_reduce_sum(values, values, n);
  } else {
    auto buffer = Tensor<U, D>::from_host({n}, std::vector<U>(values, values + n));
    comm.all_reduce_sum(buffer.data(), buffer.data(), n);
    const std::vector<U> host = buffer.to_host();
    std::copy(host.begin(), host.end(), values);
  }
}

}  // namespace nexa::dist
