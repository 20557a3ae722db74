#pragma once
// The communicator policy behind nexa's distributed training. A communicator is a group of
// `size()` ranks; every collective is called by all of them with matching arguments. Buffers
// live on the communicator's device (`C::device`): host memory for NoComm and MpiComm, GPU
// memory for NcclComm. Reductions sum; `send == recv` (in place) is allowed for all_reduce_sum.
//
//   all_reduce_sum(send, recv, n)          recv[i] = sum over ranks of send[i], i < n
//   reduce_scatter_sum(send, recv, n)      send holds size()*n; rank r gets the sum of block r
//   all_gather(send, n, recv)              recv = concat over ranks of their n-element send
//   all_to_allv(send, send_counts, recv, recv_counts)
//                                          send_counts[r] elements go to rank r (blocks packed in
//                                          rank order); recv_counts[r] come from rank r
//   broadcast(data, n, root)               data = root's data
//   barrier()
//
// Reproducibility: NoComm and MpiComm sum in rank order (rank 0 first), so a reduction gives the
// same bits on every rank and on every run, whatever the transport chose to do. NcclComm sums in
// NCCL's own order (see nccl_comm.hpp): no such promise.
#include <concepts>
#include <cstdint>
#include <span>

#include "nexa/core/device.hpp"
#include "nexa/core/shape.hpp"

namespace nexa::dist {

template <class C>
concept Communicator = Device<typename C::device> &&
    requires(C& c, const float* cs, float* s, const double* cd, double* d, const std::int32_t* ci, std::int32_t* i,
             index_t n, std::span<const index_t> counts) {
  { c.rank() } -> std::convertible_to<int>;
  { c.size() } -> std::convertible_to<int>;
  c.all_reduce_sum(cs, s, n);
  c.all_reduce_sum(cd, d, n);
  c.reduce_scatter_sum(cs, s, n);
  c.all_gather(cs, n, s);
  c.all_gather(ci, n, i);
  c.all_to_allv(cs, counts, s, counts);
  c.all_to_allv(cd, counts, d, counts);
  c.broadcast(s, n, 0);
  c.barrier();
};

// Elements [begin, end) of rank `rank`'s share when `n` elements are split over `size` ranks as
// evenly as possible (the first n % size ranks get one more).
struct Share {
  index_t begin = 0, end = 0;
  [[nodiscard]] index_t count() const { return end - begin; }
};
[[nodiscard]] inline Share share_of(index_t n, int size, int rank) {
  const index_t p = size, r = rank, base = n / p, extra = n % p;
  const index_t begin = r * base + (r < extra ? r : extra);
  return {begin, begin + base + (r < extra ? 1 : 0)};
}

}  // namespace nexa::dist
