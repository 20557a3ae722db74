#pragma once
// CachingAllocator: the bookkeeping of a caching device allocator, in plain C++ over an injected
// raw allocate/free pair (cudaMalloc/cudaFree in backend/cuda/allocator.hpp; a fake in the tests),
// so that a training step makes no raw allocation once the cache is warm.
//
// Policy.
// - Sizes are rounded up to a multiple of 512 bytes (every block stays 512-byte aligned).
// - Small requests (<= 1 MiB) are cut from 2 MiB segments; a large request gets a segment of its
//   size rounded up to 2 MiB. The two pools never share blocks, so small blocks cannot fragment
//   the segments large activations need.
// - A request takes the smallest cached block of its pool and stream that fits (best fit); the
//   rest of the block is split off as a new free block when it is at least 512 bytes (small pool)
//   or more than 1 MiB (large pool). A freed block merges with its free neighbours of the same
//   segment.
// - Stream-ordered reuse: a block belongs to the stream it was first allocated on and is handed
//   out again only to requests on that stream. Work on one stream runs in order, so a block freed
//   while kernels on its stream still read it may be reused at once by later work on that stream
//   without a synchronisation. Memory used on another stream must be freed only once that stream
//   has finished with it (the caller synchronises), as with cudaFree.
// - A raw allocation that fails releases the cache (release_cached) and retries once.
// - release_cached() returns to the raw allocator every segment with no block in use.
// Thread safe (one mutex): a buffer may be freed on another thread than the one that allocated it.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <utility>

#include "nexa/core/error.hpp"

namespace nexa {

// The allocator's view of the device memory it caches: `allocate(bytes)` returns memory or throws
// (nexa::Error), `deallocate(ptr)` returns it and must not throw.
struct RawMemory {
  std::function<void*(std::size_t)> allocate;
  std::function<void(void*)> deallocate;
};

struct AllocatorStats {
  std::size_t raw_allocations = 0;      // calls to the raw allocate (cudaMalloc)
  std::size_t raw_frees = 0;            // calls to the raw deallocate (cudaFree)
  std::size_t requests = 0;             // allocate() calls with a non-zero size
  std::size_t bytes_reserved = 0;       // held from the raw allocator (in use or cached)
  std::size_t bytes_in_use = 0;         // in blocks handed out (rounded sizes)
  std::size_t peak_bytes_reserved = 0;  // maxima since construction or reset_peaks()
  std::size_t peak_bytes_in_use = 0;
};

class CachingAllocator {
 public:
  using Stream = const void*;  // an opaque stream key (cudaStream_t); nullptr is a stream too

  static constexpr std::size_t alignment = 512;
  static constexpr std::size_t small_request_limit = std::size_t{1} << 20;
  static constexpr std::size_t segment_granularity = std::size_t{2} << 20;

  explicit CachingAllocator(RawMemory raw) : raw_(std::move(raw)) {
    require(raw_.allocate && raw_.deallocate, "CachingAllocator", "expected a raw allocate and deallocate, got ",
            raw_.allocate ? "no deallocate" : "no allocate");
  }
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;
  // Returns every segment. Owners (buffers) keep the allocator alive, so no block is in use here.
  ~CachingAllocator() {
    for (const auto& [id, segment] : segments_) raw_.deallocate(segment.base);
  }

  // Memory for `bytes` bytes on `stream`; nullptr for 0 bytes.
  [[nodiscard]] void* allocate(std::size_t bytes, Stream stream) {
    if (bytes == 0) return nullptr;
    require(bytes <= std::numeric_limits<std::size_t>::max() - segment_granularity, "CachingAllocator",
            "expected a request the allocator can round up, got ", bytes, " bytes");
    const std::size_t size = round_up(bytes, alignment);
    const bool small = size <= small_request_limit;
    std::lock_guard lock(mutex_);
    ++stats_.requests;
    auto found = free_.lower_bound(FreeKey{stream, small, size, 0});
    if (found == free_.end() || std::get<0>(*found) != stream || std::get<1>(*found) != small) {
      new_segment(small ? segment_granularity : round_up(size, segment_granularity), stream, small);
      found = free_.lower_bound(FreeKey{stream, small, size, 0});
    }
    const std::uintptr_t address = std::get<3>(*found);
    free_.erase(found);
    Block& block = blocks_.at(address);
    const std::size_t rest = block.size - size;
    if (rest >= (small ? alignment : small_request_limit + 1)) {
      blocks_.emplace(address + size, Block{rest, block.stream, block.segment, block.small, false});
      free_.insert(FreeKey{block.stream, block.small, rest, address + size});
      block.size = size;
    }
    block.in_use = true;
    stats_.bytes_in_use += block.size;
    stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
    return reinterpret_cast<void*>(address);
  }

  // Returns a block to the cache (nullptr: nothing). Throws for a pointer this allocator did not
  // hand out or that is already free.
  void deallocate(void* ptr) {
    if (ptr == nullptr) return;
    std::lock_guard lock(mutex_);
    auto it = blocks_.find(reinterpret_cast<std::uintptr_t>(ptr));
    require(it != blocks_.end() && it->second.in_use, "CachingAllocator",
            "expected a pointer from allocate() that is still in use, got ", ptr,
            it == blocks_.end() ? " (not allocated here)" : " (already freed)");
    it->second.in_use = false;
    stats_.bytes_in_use -= it->second.size;
    if (auto next = std::next(it); next != blocks_.end() && mergeable(it->second, next->second)) {
      free_.erase(key(*next));
      it->second.size += next->second.size;
      blocks_.erase(next);
    }
    if (it != blocks_.begin()) {
      if (auto prev = std::prev(it); mergeable(it->second, prev->second)) {
        free_.erase(key(*prev));
        prev->second.size += it->second.size;
        blocks_.erase(it);
        it = prev;
      }
    }
    free_.insert(key(*it));
  }

  // Returns every segment with no block in use to the raw allocator.
  void release_cached() {
    std::lock_guard lock(mutex_);
    release_cached_locked();
  }

  [[nodiscard]] AllocatorStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }
  void reset_peaks() {
    std::lock_guard lock(mutex_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
    stats_.peak_bytes_reserved = stats_.bytes_reserved;
  }

 private:
  struct Block {
    std::size_t size;
    Stream stream;
    std::size_t segment;
    bool small;
    bool in_use;
  };
  struct Segment {
    void* base;
    std::size_t size;
  };
  // Ordered so that lower_bound finds the smallest fitting block of a stream's pool.
  using FreeKey = std::tuple<Stream, bool, std::size_t, std::uintptr_t>;

  static std::size_t round_up(std::size_t n, std::size_t multiple) { return (n + multiple - 1) / multiple * multiple; }
  static FreeKey key(const std::pair<const std::uintptr_t, Block>& entry) {
    return {entry.second.stream, entry.second.small, entry.second.size, entry.first};
  }
  static bool mergeable(const Block& freed, const Block& neighbour) {
    return !neighbour.in_use && neighbour.segment == freed.segment;
  }

  void new_segment(std::size_t size, Stream stream, bool small) {
    void* base = nullptr;
    try {
      base = raw_.allocate(size);
    } catch (const Error&) {  // out of memory, perhaps only because of the cache: empty it, retry once
      release_cached_locked();
      base = raw_.allocate(size);
    }
    require(base != nullptr, "CachingAllocator", "expected memory from the raw allocator, got nullptr for ", size,
            " bytes");
    ++stats_.raw_allocations;
    stats_.bytes_reserved += size;
    stats_.peak_bytes_reserved = std::max(stats_.peak_bytes_reserved, stats_.bytes_reserved);
    const std::size_t id = next_segment_++;
    segments_.emplace(id, Segment{base, size});
    const auto address = reinterpret_cast<std::uintptr_t>(base);
    blocks_.emplace(address, Block{size, stream, id, small, false});
    free_.insert(FreeKey{stream, small, size, address});
  }

  void release_cached_locked() {
    for (auto it = segments_.begin(); it != segments_.end();) {
      const auto address = reinterpret_cast<std::uintptr_t>(it->second.base);
      const Block& block = blocks_.at(address);
      if (block.in_use || block.size != it->second.size) {  // part of the segment is in use
        ++it;
        continue;
      }
      free_.erase(key(*blocks_.find(address)));
      blocks_.erase(address);
      raw_.deallocate(it->second.base);
      ++stats_.raw_frees;
      stats_.bytes_reserved -= it->second.size;
      it = segments_.erase(it);
    }
  }

  RawMemory raw_;
  mutable std::mutex mutex_;
  std::map<std::uintptr_t, Block> blocks_;  // every block, in use or free, by address
  std::set<FreeKey> free_;                  // the free blocks
  std::map<std::size_t, Segment> segments_;
  std::size_t next_segment_ = 0;
  AllocatorStats stats_;
};

}  // namespace nexa
