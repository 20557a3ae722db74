#pragma once
// NoComm: the one-rank communicator. Every collective is a copy, so code written against the
// Communicator policy runs unchanged (and at no cost) in a single process.
#include <algorithm>
#include <span>

#include "nexa/core/error.hpp"
#include "nexa/dist/communicator.hpp"

namespace nexa::dist {

struct NoComm {
  using device = cpu;

  [[nodiscard]] int rank() const { return 0; }
  [[nodiscard]] int size() const { return 1; }

  template <class T>
  void all_reduce_sum(const T* send, T* recv, index_t n) {
    if (send != recv) std::copy_n(send, n, recv);
  }
  template <class T>
  void reduce_scatter_sum(const T* send, T* recv, index_t n) {
    if (send != recv) std::copy_n(send, n, recv);
  }
  template <class T>
  void all_gather(const T* send, index_t n, T* recv) {
    if (send != recv) std::copy_n(send, n, recv);
  }
  template <class T>
  void all_to_allv(const T* send, std::span<const index_t> send_counts, T* recv, std::span<const index_t> recv_counts) {
    require(send_counts.size() == 1 && recv_counts.size() == 1, "NoComm", "all_to_allv expects 1 count per side, got ",
            send_counts.size(), " and ", recv_counts.size());
    require(send_counts[0] == recv_counts[0], "NoComm", "all_to_allv sends ", send_counts[0],
            " elements to itself but ", "expects to receive ", recv_counts[0]);
    if (send != recv) std::copy_n(send, send_counts[0], recv);
  }
  template <class T>
  void broadcast(T*, index_t, int root) {
    require(root == 0, "NoComm", "broadcast root expected 0, got ", root);
  }
  void barrier() {}
};

static_assert(Communicator<NoComm>);

}  // namespace nexa::dist
