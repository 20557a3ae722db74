#pragma once
// MpiComm: the Communicator over MPI (OpenMPI from Debian), for host buffers: CPU processes on
// one machine or across nodes. Link MPI::MPI_CXX (CMake's FindMPI) where you include it.
//
// It duplicates the communicator it is given, so nexa's messages never match the caller's, and
// sets MPI_ERRORS_RETURN on the duplicate: a failed call raises nexa::Error naming the call and
// MPI's error string instead of aborting the job.
//
// Sums are taken in rank order (see communicator.hpp): all_reduce_sum is a reduce-scatter (each
// rank receives every rank's copy of its block through MPI_Alltoallv and adds them rank 0
// first) followed by an all-gather, the same traffic as a ring all-reduce, with identical bits
// on every rank. MPI counts are ints: a call over more than INT_MAX elements raises nexa::Error.
//
// Errors and collectives: a check that could pass on one rank and fail on another would leave
// the passing ranks waiting in the collective for ever. So every check made before a collective
// is either a function of arguments that all ranks must pass equal (n, root: the limits of
// all_reduce_sum come from n alone) or, for all_to_allv's per-rank counts, agreed on first with
// one MPI_Allreduce: either every rank proceeds or every rank raises nexa::Error.
//
// MpiSession initialises MPI for the lifetime of an object (main owns it); MpiComm requires MPI
// to be initialised and must be destroyed before MPI is finalised.
// nexa uses MPI's C API only: the deprecated C++ bindings are kept out (they do not compile
// warning-free).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/dist/communicator.hpp"

namespace nexa::dist {

namespace mpi_detail {

inline void check(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(status, text, &length) != MPI_SUCCESS) std::strcpy(text, "unknown MPI error");
  throw Error(
      nexa::detail::concat("MpiComm: ", call, " failed: ", std::string(text, static_cast<std::size_t>(length))));
}

// The MPI datatype of a nexa scalar; 16-bit storage types (half, bfloat16) travel as raw bits.
template <class T>
MPI_Datatype datatype() {
  if constexpr (std::is_same_v<T, float>)
    return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>)
    return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return MPI_INT32_T;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return MPI_INT64_T;
  else if constexpr (sizeof(T) == 2 && std::is_trivially_copyable_v<T>)
    return MPI_UINT16_T;
  else
    static_assert(sizeof(T) == 0, "MpiComm: unsupported element type");
}

inline int to_int(index_t n, const char* what) {
  require(n >= 0 && n <= INT_MAX, "MpiComm", what, " must be in [0, ", INT_MAX, "] elements for MPI, got ", n);
  return static_cast<int>(n);
}

}  // namespace mpi_detail

#define NEXA_MPI_CHECK(call) ::nexa::dist::mpi_detail::check((call), #call)

// Initialises MPI (thread level MPI_THREAD_FUNNELED: only the main thread calls MPI) unless it
// already is, and finalises it at destruction if it initialised it. Raises nexa::Error if MPI
// provides a lower thread level (nexa's OpenMP regions run beside the main thread's MPI calls).
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv) {
    int initialized = 0;
    NEXA_MPI_CHECK(MPI_Initialized(&initialized));
    int provided = 0;
    if (!initialized) {
      NEXA_MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
      owns_ = true;
    } else {
      NEXA_MPI_CHECK(MPI_Query_thread(&provided));
    }
    if (provided < MPI_THREAD_FUNNELED) {
      // The destructor will not run for a constructor that throws: finalise here.
      if (owns_) (void)MPI_Finalize();
      throw Error(nexa::detail::concat("MpiSession: MPI must provide thread level MPI_THREAD_FUNNELED (",
                                       MPI_THREAD_FUNNELED, ") or higher, got ", provided));
    }
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  ~MpiSession() {
    int finalized = 0;
    if (owns_ && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) (void)MPI_Finalize();
  }

 private:
  bool owns_ = false;
};

class MpiComm {
 public:
  using device = cpu;

  // A duplicate of `comm` (MPI_COMM_WORLD by default).
  explicit MpiComm(MPI_Comm comm = MPI_COMM_WORLD) {
    int initialized = 0;
    NEXA_MPI_CHECK(MPI_Initialized(&initialized));
    require(initialized != 0, "MpiComm", "MPI is not initialised (create an MpiSession in main first)");
    NEXA_MPI_CHECK(MPI_Comm_dup(comm, &comm_));
    NEXA_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    NEXA_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    NEXA_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  }
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;
  ~MpiComm() {
    int finalized = 0;
    if (comm_ != MPI_COMM_NULL && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) (void)MPI_Comm_free(&comm_);
  }

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  [[nodiscard]] MPI_Comm handle() const { return comm_; }

  template <class T>
  void all_reduce_sum(const T* send, T* recv, index_t n) {
    static_assert(std::is_floating_point_v<T> || std::is_integral_v<T>, "MpiComm: sums need an arithmetic type");
    check_reduction_size(n, "all_reduce_sum");
    const Share mine = share_of(n, size_, rank_);
    std::vector<T> block(static_cast<std::size_t>(mine.count()));
    reduce_blocks(send, n, block.data());
    std::vector<int> counts(static_cast<std::size_t>(size_)), displs(static_cast<std::size_t>(size_));
    for (int r = 0; r < size_; ++r) {
      const Share s = share_of(n, size_, r);
      counts[static_cast<std::size_t>(r)] = static_cast<int>(s.count());
      displs[static_cast<std::size_t>(r)] = static_cast<int>(s.begin);
    }
    NEXA_MPI_CHECK(MPI_Allgatherv(block.data(), counts[static_cast<std::size_t>(rank_)], mpi_detail::datatype<T>(),
                                  recv, counts.data(), displs.data(), mpi_detail::datatype<T>(), comm_));
  }

  // send: size() blocks of n; recv: the rank-order sum of this rank's block. Allocates a
  // temporary of size() * n elements (the blocks every rank sends to this one).
  template <class T>
  void reduce_scatter_sum(const T* send, T* recv, index_t n) {
    static_assert(std::is_floating_point_v<T> || std::is_integral_v<T>, "MpiComm: sums need an arithmetic type");
    const int count = mpi_detail::to_int(n, "reduce_scatter_sum");
    std::vector<T> gathered(static_cast<std::size_t>(n * size_));
    NEXA_MPI_CHECK(
        MPI_Alltoall(send, count, mpi_detail::datatype<T>(), gathered.data(), count, mpi_detail::datatype<T>(), comm_));
    sum_in_rank_order(gathered.data(), n, recv);
  }

  template <class T>
  void all_gather(const T* send, index_t n, T* recv) {
    const int count = mpi_detail::to_int(n, "all_gather");
    NEXA_MPI_CHECK(
        MPI_Allgather(send, count, mpi_detail::datatype<T>(), recv, count, mpi_detail::datatype<T>(), comm_));
  }

  // The counts differ from rank to rank, so their checks are agreed on first (one MPI_Allreduce
  // of the lowest failing rank): a bad count on one rank raises nexa::Error on every rank.
  template <class T>
  void all_to_allv(const T* send, std::span<const index_t> send_counts, T* recv, std::span<const index_t> recv_counts) {
    std::vector<int> sc, sd, rc, rd;
    std::string problem;
    if (static_cast<int>(send_counts.size()) != size_ || static_cast<int>(recv_counts.size()) != size_)
      problem = nexa::detail::concat("all_to_allv expects ", size_, " send and receive counts, got ",
                                     send_counts.size(), " and ", recv_counts.size());
    else if (problem = packed(send_counts, sc, sd, "send"); problem.empty())
      problem = packed(recv_counts, rc, rd, "receive");
    int first_bad = problem.empty() ? size_ : rank_;
    NEXA_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &first_bad, 1, MPI_INT, MPI_MIN, comm_));
    if (!problem.empty()) throw Error(nexa::detail::concat("MpiComm: ", problem));
    if (first_bad < size_)
      throw Error(nexa::detail::concat("MpiComm: all_to_allv was called with invalid counts on rank ", first_bad,
                                       " (another rank's counts were invalid; this rank's were fine)"));
    NEXA_MPI_CHECK(MPI_Alltoallv(send, sc.data(), sd.data(), mpi_detail::datatype<T>(), recv, rc.data(), rd.data(),
                                 mpi_detail::datatype<T>(), comm_));
  }

  template <class T>
  void broadcast(T* data, index_t n, int root) {
    require(root >= 0 && root < size_, "MpiComm", "broadcast root must be in [0, ", size_, "), got ", root);
    NEXA_MPI_CHECK(MPI_Bcast(data, mpi_detail::to_int(n, "broadcast"), mpi_detail::datatype<T>(), root, comm_));
  }

  void barrier() { NEXA_MPI_CHECK(MPI_Barrier(comm_)); }

 private:
  // The limits of a reduction over n elements, from n alone so that every rank decides alike: the
  // offsets are below n, and the receive offsets below size() * (the largest share, rank 0's).
  void check_reduction_size(index_t n, const char* what) const {
    require(n >= 0 && n <= INT_MAX, "MpiComm", what, " must be in [0, ", INT_MAX, "] elements for MPI, got ", n);
    const index_t largest = share_of(n, size_, 0).count();
    require(largest * size_ <= INT_MAX, "MpiComm", what, " needs ", size_, " blocks of ", largest,
            " elements, more than MPI's ", INT_MAX);
  }

  // This rank's share of the rank-order sum of every rank's `send` (n elements each); n passed
  // check_reduction_size.
  template <class T>
  void reduce_blocks(const T* send, index_t n, T* block) {
    std::vector<int> sc(static_cast<std::size_t>(size_)), sd(sc.size()), rc(sc.size()), rd(sc.size());
    const Share mine = share_of(n, size_, rank_);
    for (int r = 0; r < size_; ++r) {
      const Share s = share_of(n, size_, r);
      const auto i = static_cast<std::size_t>(r);
      sc[i] = static_cast<int>(s.count());
      sd[i] = static_cast<int>(s.begin);
      rc[i] = static_cast<int>(mine.count());
      rd[i] = static_cast<int>(mine.count() * r);
    }
    std::vector<T> gathered(static_cast<std::size_t>(mine.count() * size_));
    NEXA_MPI_CHECK(MPI_Alltoallv(send, sc.data(), sd.data(), mpi_detail::datatype<T>(), gathered.data(), rc.data(),
                                 rd.data(), mpi_detail::datatype<T>(), comm_));
    sum_in_rank_order(gathered.data(), mine.count(), block);
  }

  template <class T>
  void sum_in_rank_order(const T* blocks, index_t n, T* out) const {
    for (index_t i = 0; i < n; ++i) {
      T acc = blocks[i];
      for (index_t r = 1; r < size_; ++r) acc += blocks[r * n + i];
      out[i] = acc;
    }
  }

  // MPI's counts and offsets for blocks packed in rank order, or what is wrong with them.
  static std::string packed(std::span<const index_t> counts, std::vector<int>& c, std::vector<int>& displs,
                            const char* side) {
    c.resize(counts.size());
    displs.resize(counts.size());
    index_t offset = 0;
    for (std::size_t r = 0; r < counts.size(); ++r) {
      if (counts[r] < 0 || counts[r] > INT_MAX || offset > INT_MAX)
        return nexa::detail::concat("all_to_allv ", side, " count for rank ", r,
                                    " must be non-negative, with every count ", "and offset in [0, ", INT_MAX,
                                    "] for MPI; got count ", counts[r], " at offset ", offset);
      c[r] = static_cast<int>(counts[r]);
      displs[r] = static_cast<int>(offset);
      offset += counts[r];
    }
    return {};
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

static_assert(Communicator<MpiComm>);

}  // namespace nexa::dist
