#pragma once
// NcclComm: the Communicator over NCCL, for GPU buffers (device `cuda`): one rank per GPU, within
// a node or across nodes. Link CUDA's runtime and libnccl where you include it. Plain C++ (no
// kernels), so it compiles with g++ given CUDA's include directory.
//
// Setup: make the rank's GPU current (cudaSetDevice) first; the communicator belongs to that
// device. Construct it from a host communicator (an MpiComm: rank 0 creates the ncclUniqueId and
// broadcasts it) or from a unique id, a rank and a size that the caller distributed itself.
//
// Every collective is enqueued on the current CudaContext's stream (backend/cuda/context.hpp)
// and returns without waiting: the results are ready in stream order (a copy to the host, or
// context.synchronize(), waits for them), unlike NoComm and MpiComm, which return when done.
// barrier() waits for the stream. all_to_allv is one NCCL group of ncclSend / ncclRecv (a rank's
// block to itself is a device-to-device copy, enqueued outside the group); every pair of ranks
// must agree on its counts.
//
// Errors and collectives: the counts of all_to_allv differ from rank to rank, so their checks
// are agreed on first through a one-int ncclAllReduce (ncclMin of the lowest failing rank), read
// back with a stream synchronisation: either every rank raises nexa::Error or every rank
// proceeds. That costs all_to_allv one host wait per call. The other checks (n, root) are on
// arguments every rank must pass equal, so they agree without communication.
//
// Element types: float, double, int32, int64, nexa::half and nexa::bfloat16 (sums on the 16-bit
// types use NCCL's ncclFloat16 / ncclBfloat16 reductions).
//
// Reproducibility: NCCL chooses its own reduction order (ring or tree, channels, protocol), so
// NcclComm does not promise the rank-order bits of nexa's host communicators: sums may differ in
// the last bits from MpiComm's and between NCCL versions or topologies. Every rank does receive
// the same result of one all_reduce.
//
// Errors: every NCCL call goes through NEXA_NCCL_CHECK, which raises nexa::Error naming the call
// and ncclGetErrorString's text; CUDA runtime calls go through NEXA_CUDA_CHECK.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <type_traits>

#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/core/error.hpp"
#include "nexa/core/half.hpp"
#include "nexa/dist/communicator.hpp"

namespace nexa::dist {

namespace nccl_detail {

inline void check(ncclResult_t status, const char* call) {
  if (status != ncclSuccess)
    throw Error(nexa::detail::concat("NcclComm: ", call, " failed: ", ncclGetErrorString(status)));
}

template <class T>
ncclDataType_t datatype() {
  if constexpr (std::is_same_v<T, float>)
    return ncclFloat32;
  else if constexpr (std::is_same_v<T, double>)
    return ncclFloat64;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return ncclInt32;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return ncclInt64;
  else if constexpr (std::is_same_v<T, half>)
    return ncclFloat16;
  else if constexpr (std::is_same_v<T, bfloat16>)
    return ncclBfloat16;
  else
    static_assert(sizeof(T) == 0, "NcclComm: unsupported element type");
}

inline std::size_t count(index_t n, const char* what) {
  require(n >= 0, "NcclComm", what, " must be non-negative, got ", n);
  return static_cast<std::size_t>(n);
}

// The unique id travels through a host communicator as 32-bit words.
inline constexpr int id_words = (NCCL_UNIQUE_ID_BYTES + 3) / 4;

}  // namespace nccl_detail

#define NEXA_NCCL_CHECK(call) ::nexa::dist::nccl_detail::check((call), #call)

class NcclComm {
 public:
  using device = cuda;

  // A new unique id, to be handed to every rank (NCCL's bootstrap address; create one per group).
  [[nodiscard]] static ncclUniqueId make_unique_id() {
    ncclUniqueId id;
    NEXA_NCCL_CHECK(ncclGetUniqueId(&id));
    return id;
  }

  // Rank `rank` of `size`, on the current device; every rank passes the same id. Blocks until
  // every rank has joined.
  NcclComm(const ncclUniqueId& id, int rank, int size) {
    require(size >= 1 && rank >= 0 && rank < size, "NcclComm", "rank must be in [0, size) with size >= 1, got rank ",
            rank, " of ", size);
    NEXA_CUDA_CHECK(cudaGetDevice(&device_));
    NEXA_NCCL_CHECK(ncclCommInitRank(&comm_, size, id, rank));
    rank_ = rank;
    size_ = size;
    // The barrier sums a zero word (defined bits), and the agreement word is written before use.
    cudaError_t status = cudaMalloc(reinterpret_cast<void**>(&scratch_), 2 * sizeof(std::int32_t));
    if (status == cudaSuccess) status = cudaMemset(scratch_, 0, 2 * sizeof(std::int32_t));
    if (status != cudaSuccess) {
      if (scratch_) (void)cudaFree(scratch_);
      (void)ncclCommDestroy(comm_);
    }
    NEXA_CUDA_CHECK(status);
  }

  // The ranks of a host communicator (an MpiComm) as one NCCL communicator: rank 0 creates the
  // id and broadcasts it (with its status, so that a failure raises nexa::Error on every rank).
  template <Communicator Host>
  requires std::same_as<typename Host::device, cpu> && requires(Host& host, std::int32_t* words) {
    host.broadcast(words, index_t{1}, 0);
  }
  explicit NcclComm(Host& host) : NcclComm(shared_id(host), host.rank(), host.size()) {}

  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;
  ~NcclComm() {
    // A destructor must not throw: statuses are dropped. Destroyed while an exception unwinds
    // (one raised after this communicator was made), other ranks may be blocked in a collective
    // this rank will never join: ncclCommAbort ends the pending operations instead of waiting
    // for them, as ncclCommDestroy may.
    if (scratch_) (void)cudaFree(scratch_);
    if (!comm_) return;
    if (std::uncaught_exceptions() > uncaught_at_construction_)
      (void)ncclCommAbort(comm_);
    else
      (void)ncclCommDestroy(comm_);
  }

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  [[nodiscard]] int cuda_device() const { return device_; }
  [[nodiscard]] ncclComm_t handle() const { return comm_; }

  template <class T>
  void all_reduce_sum(const T* send, T* recv, index_t n) {
    const std::size_t count = nccl_detail::count(n, "all_reduce_sum count");
    NEXA_NCCL_CHECK(ncclAllReduce(send, recv, count, nccl_detail::datatype<T>(), ncclSum, comm_, stream()));
  }

  // send: size() blocks of n elements; recv: the sum over ranks of block rank().
  template <class T>
  void reduce_scatter_sum(const T* send, T* recv, index_t n) {
    const std::size_t count = nccl_detail::count(n, "reduce_scatter_sum count");
    NEXA_NCCL_CHECK(ncclReduceScatter(send, recv, count, nccl_detail::datatype<T>(), ncclSum, comm_, stream()));
  }

  template <class T>
  void all_gather(const T* send, index_t n, T* recv) {
    const std::size_t count = nccl_detail::count(n, "all_gather count");
    NEXA_NCCL_CHECK(ncclAllGather(send, recv, count, nccl_detail::datatype<T>(), comm_, stream()));
  }

  template <class T>
  void all_to_allv(const T* send, std::span<const index_t> send_counts, T* recv, std::span<const index_t> recv_counts) {
    const auto me = static_cast<std::size_t>(rank_);
    std::string problem;
    if (static_cast<int>(send_counts.size()) != size_ || static_cast<int>(recv_counts.size()) != size_) {
      problem = nexa::detail::concat("all_to_allv expects ", size_, " send and receive counts, got ",
                                     send_counts.size(), " and ", recv_counts.size());
    } else if (send_counts[me] != recv_counts[me]) {
      problem = nexa::detail::concat("all_to_allv sends ", send_counts[me],
                                     " elements to its own rank but expects to receive ", recv_counts[me]);
    } else {
      for (std::size_t r = 0; r < send_counts.size() && problem.empty(); ++r) {
        if (send_counts[r] < 0)
          problem = nexa::detail::concat("all_to_allv send count for rank ", r, " must be non-negative, got ",
                                         send_counts[r]);
        else if (recv_counts[r] < 0)
          problem = nexa::detail::concat("all_to_allv receive count for rank ", r, " must be non-negative, got ",
                                         recv_counts[r]);
      }
    }
    const cudaStream_t s = stream();
    agree(problem);

    const ncclDataType_t type = nccl_detail::datatype<T>();
    index_t send_offset = 0, recv_offset = 0, self_send = 0, self_recv = 0;
    NEXA_NCCL_CHECK(ncclGroupStart());
    // The group must be closed whatever happens inside it, or the next NCCL call on this thread
    // would join a half-built group. Only NCCL calls go inside it (the copy to itself follows).
    try {
      for (std::size_t r = 0; r < send_counts.size(); ++r) {
        const auto sc = static_cast<std::size_t>(send_counts[r]), rc = static_cast<std::size_t>(recv_counts[r]);
        const int peer = static_cast<int>(r);
        if (r == me) {
          self_send = send_offset;
          self_recv = recv_offset;
        } else {
          if (sc) NEXA_NCCL_CHECK(ncclSend(send + send_offset, sc, type, peer, comm_, s));
          if (rc) NEXA_NCCL_CHECK(ncclRecv(recv + recv_offset, rc, type, peer, comm_, s));
        }
        send_offset += send_counts[r];
        recv_offset += recv_counts[r];
      }
    } catch (...) {
      (void)ncclGroupEnd();
      throw;
    }
    NEXA_NCCL_CHECK(ncclGroupEnd());
    if (const auto n = static_cast<std::size_t>(send_counts[me]))
      NEXA_CUDA_CHECK(cudaMemcpyAsync(recv + self_recv, send + self_send, n * sizeof(T), cudaMemcpyDeviceToDevice, s));
  }

  template <class T>
  void broadcast(T* data, index_t n, int root) {
    require(root >= 0 && root < size_, "NcclComm", "broadcast root must be in [0, ", size_, "), got ", root);
    const std::size_t count = nccl_detail::count(n, "broadcast count");
    NEXA_NCCL_CHECK(ncclBroadcast(data, data, count, nccl_detail::datatype<T>(), root, comm_, stream()));
  }

  // Returns once every rank has reached it and this rank's earlier collectives have completed.
  void barrier() {
    const cudaStream_t s = stream();
    NEXA_NCCL_CHECK(ncclAllReduce(scratch_, scratch_, 1, ncclInt32, ncclSum, comm_, s));
    NEXA_CUDA_CHECK(cudaStreamSynchronize(s));
  }

 private:
  // Raises nexa::Error on every rank if `problem` is set on any: the lowest failing rank is
  // found with a one-int all-reduce and read back on the host.
  void agree(const std::string& problem) {
    const cudaStream_t s = stream();
    std::int32_t first_bad = problem.empty() ? size_ : rank_;
    NEXA_CUDA_CHECK(cudaMemcpyAsync(scratch_ + 1, &first_bad, sizeof first_bad, cudaMemcpyHostToDevice, s));
    NEXA_NCCL_CHECK(ncclAllReduce(scratch_ + 1, scratch_ + 1, 1, ncclInt32, ncclMin, comm_, s));
    NEXA_CUDA_CHECK(cudaMemcpyAsync(&first_bad, scratch_ + 1, sizeof first_bad, cudaMemcpyDeviceToHost, s));
    NEXA_CUDA_CHECK(cudaStreamSynchronize(s));
    if (!problem.empty()) throw Error(nexa::detail::concat("NcclComm: ", problem));
    if (first_bad < size_)
      throw Error(nexa::detail::concat("NcclComm: all_to_allv was called with invalid counts on rank ", first_bad,
                                       " (another rank's counts were invalid; this rank's were fine)"));
  }

  template <class Host>
  static ncclUniqueId shared_id(Host& host) {
    std::int32_t words[1 + nccl_detail::id_words] = {};
    if (host.rank() == 0) {
      ncclUniqueId id;
      const ncclResult_t status = ncclGetUniqueId(&id);
      words[0] = static_cast<std::int32_t>(status);
      if (status == ncclSuccess) std::memcpy(words + 1, &id, sizeof id);
    }
    host.broadcast(words, 1 + nccl_detail::id_words, 0);
    nccl_detail::check(static_cast<ncclResult_t>(words[0]), "ncclGetUniqueId(&id) on rank 0");
    ncclUniqueId id;
    std::memcpy(&id, words + 1, sizeof id);
    return id;
  }

  // The current context's stream, after checking that the communicator's device is current.
  [[nodiscard]] cudaStream_t stream() const {
    int current = 0;
    NEXA_CUDA_CHECK(cudaGetDevice(&current));
    require(current == device_, "NcclComm", "the communicator belongs to device ", device_, " but device ", current,
            " is current");
    return cuda_backend::current_stream();
  }

  ncclComm_t comm_ = nullptr;
  std::int32_t* scratch_ = nullptr;  // device words: [0] barrier() sums it, [1] agree()'s flag
  int uncaught_at_construction_ = std::uncaught_exceptions();
  int rank_ = 0;
  int size_ = 1;
  int device_ = 0;
};

static_assert(Communicator<NcclComm>);

}  // namespace nexa::dist
