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
// block to itself is a device-to-device copy); every pair of ranks must agree on its counts.
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
#include <span>
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
    const cudaError_t status = cudaMalloc(reinterpret_cast<void**>(&barrier_word_), sizeof(std::int32_t));
    if (status != cudaSuccess) (void)ncclCommDestroy(comm_);
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
    // A destructor must not throw: statuses are dropped.
    if (barrier_word_) (void)cudaFree(barrier_word_);
    if (comm_) (void)ncclCommDestroy(comm_);
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
    require(static_cast<int>(send_counts.size()) == size_ && static_cast<int>(recv_counts.size()) == size_, "NcclComm",
            "all_to_allv expects ", size_, " send and receive counts, got ", send_counts.size(), " and ",
            recv_counts.size());
    const auto me = static_cast<std::size_t>(rank_);
    require(send_counts[me] == recv_counts[me], "NcclComm", "all_to_allv sends ", send_counts[me],
            " elements to its own rank but expects to receive ", recv_counts[me]);
    for (std::size_t r = 0; r < send_counts.size(); ++r) {
      (void)nccl_detail::count(send_counts[r], "an all_to_allv send count");
      (void)nccl_detail::count(recv_counts[r], "an all_to_allv receive count");
    }
    const cudaStream_t s = stream();
    const ncclDataType_t type = nccl_detail::datatype<T>();
    index_t send_offset = 0, recv_offset = 0;
    NEXA_NCCL_CHECK(ncclGroupStart());
    // The group must be closed whatever happens inside it, or the next NCCL call on this thread
    // would join a half-built group.
    try {
      for (std::size_t r = 0; r < send_counts.size(); ++r) {
        const auto sc = static_cast<std::size_t>(send_counts[r]), rc = static_cast<std::size_t>(recv_counts[r]);
        const int peer = static_cast<int>(r);
        if (r == me) {
          if (sc)
            NEXA_CUDA_CHECK(
                cudaMemcpyAsync(recv + recv_offset, send + send_offset, sc * sizeof(T), cudaMemcpyDeviceToDevice, s));
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
    NEXA_NCCL_CHECK(ncclAllReduce(barrier_word_, barrier_word_, 1, ncclInt32, ncclSum, comm_, s));
    NEXA_CUDA_CHECK(cudaStreamSynchronize(s));
  }

 private:
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
  std::int32_t* barrier_word_ = nullptr;  // device scratch for barrier()
  int rank_ = 0;
  int size_ = 1;
  int device_ = 0;
};

static_assert(Communicator<NcclComm>);

}  // namespace nexa::dist
