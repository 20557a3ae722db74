// CachingAllocator over a fake raw allocator that hands out distinct addresses and counts calls.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "nexa/core/caching_allocator.hpp"

namespace {

using nexa::CachingAllocator;

constexpr std::size_t KiB = 1024, MiB = 1024 * KiB;

// Addresses are never reused, so a stale pointer cannot pass for a fresh one; `limit` models a
// device that runs out of memory.
struct FakeDevice {
  std::uintptr_t next = std::uintptr_t{1} << 40;
  std::map<void*, std::size_t> live;
  std::size_t live_bytes = 0, limit = std::size_t(-1), allocations = 0, frees = 0;
  std::vector<std::size_t> sizes;

  nexa::RawMemory raw() {
    return {[this](std::size_t bytes) -> void* {
              if (live_bytes + bytes > limit) throw nexa::Error("fake: out of memory");
              void* p = reinterpret_cast<void*>(next);
              next += bytes + 64 * MiB;  // a gap: segments are never adjacent
              live.emplace(p, bytes);
              live_bytes += bytes;
              sizes.push_back(bytes);
              ++allocations;
              return p;
            },
            [this](void* p) {
              live_bytes -= live.at(p);
              live.erase(p);
              ++frees;
            }};
  }
};

// One "training step": activations of several sizes allocated, then freed in another order.
void step(CachingAllocator& allocator, CachingAllocator::Stream stream) {
  const std::vector<std::size_t> sizes{4 * KiB, 100, 3 * MiB, 256 * KiB, 17 * MiB, 1, 700 * KiB, 5 * MiB + 3};
  std::vector<void*> blocks;
  for (std::size_t bytes : sizes) blocks.push_back(allocator.allocate(bytes, stream));
  for (std::size_t i = 0; i < blocks.size(); i += 2) allocator.deallocate(blocks[i]);
  for (std::size_t i = 1; i < blocks.size(); i += 2) allocator.deallocate(blocks[i]);
}

}  // namespace

TEST_CASE("after a warm-up step, a repeated step makes zero raw allocations") {
  FakeDevice device;
  CachingAllocator allocator(device.raw());
  step(allocator, nullptr);
  const auto warm = allocator.stats();
  CHECK(warm.raw_allocations > 0);
  CHECK(warm.bytes_in_use == 0);
  for (int i = 0; i < 5; ++i) step(allocator, nullptr);
  const auto after = allocator.stats();
  CHECK(after.raw_allocations == warm.raw_allocations);
  CHECK(after.raw_frees == 0);
  CHECK(after.bytes_reserved == warm.bytes_reserved);
  CHECK(after.requests == 6 * warm.requests);
  CHECK(device.allocations == warm.raw_allocations);
}

TEST_CASE("sizes are rounded to 512 bytes and small blocks are cut from one 2 MiB segment") {
  FakeDevice device;
  CachingAllocator allocator(device.raw());
  auto* a = static_cast<char*>(allocator.allocate(1, nullptr));
  auto* b = static_cast<char*>(allocator.allocate(513, nullptr));
  auto* c = static_cast<char*>(allocator.allocate(512, nullptr));
  CHECK(device.allocations == 1);
  CHECK(device.sizes.at(0) == 2 * MiB);
  CHECK(b == a + 512);
  CHECK(c == b + 1024);
  for (auto* p : {a, b, c}) CHECK(reinterpret_cast<std::uintptr_t>(p) % CachingAllocator::alignment == 0);
  auto stats = allocator.stats();
  CHECK(stats.bytes_in_use == 2048);
  CHECK(stats.bytes_reserved == 2 * MiB);
  allocator.deallocate(b);
  // Best fit: the 1024-byte hole is reused for a request that fits it, not the big remainder.
  CHECK(allocator.allocate(1000, nullptr) == b);
  CHECK(allocator.allocate(1 * MiB, nullptr) == c + 512);
  CHECK(allocator.allocate(1 * MiB - 2048, nullptr) == c + 512 + 1 * MiB);  // exactly the rest of the segment
  CHECK(device.allocations == 1);
  (void)allocator.allocate(1, nullptr);  // the segment is full: a second one
  CHECK(device.allocations == 2);
}

TEST_CASE("large requests get their own segments rounded to 2 MiB and split only above 1 MiB") {
  FakeDevice device;
  CachingAllocator allocator(device.raw());
  void* big = allocator.allocate(5 * MiB + 1, nullptr);
  CHECK(device.sizes.at(0) == 6 * MiB);
  CHECK(allocator.stats().bytes_in_use == 6 * MiB);  // a rest of 1 MiB - 512 is not split off
  void* rest = allocator.allocate(1 * MiB + 512, nullptr);
  CHECK(device.allocations == 2);
  allocator.deallocate(rest);
  allocator.deallocate(big);
  // A small request never takes a large block: small blocks would fragment it.
  (void)allocator.allocate(4 * KiB, nullptr);
  CHECK(device.allocations == 3);
  CHECK(device.sizes.at(2) == 2 * MiB);
  // The freed 6 MiB segment has merged back: two 3 MiB requests fit in it.
  char* x = static_cast<char*>(allocator.allocate(3 * MiB, nullptr));
  char* y = static_cast<char*>(allocator.allocate(3 * MiB, nullptr));
  CHECK(device.allocations == 3);
  CHECK(y == x + 3 * MiB);
}

TEST_CASE("freed blocks merge with free neighbours of their segment") {
  FakeDevice device;
  CachingAllocator allocator(device.raw());
  std::vector<void*> blocks;
  for (int i = 0; i < 4; ++i) blocks.push_back(allocator.allocate(512 * KiB, nullptr));
  CHECK(device.allocations == 1);
  for (int i : {1, 3, 0, 2}) allocator.deallocate(blocks[static_cast<std::size_t>(i)]);
  // One free block again: two 1 MiB requests (the largest small ones) fill the segment.
  CHECK(allocator.allocate(1 * MiB, nullptr) == blocks[0]);
  CHECK(allocator.allocate(1 * MiB, nullptr) == blocks[2]);
  CHECK(device.allocations == 1);
}

TEST_CASE("blocks are reused only on the stream they were freed on") {
  FakeDevice device;
  CachingAllocator allocator(device.raw());
  int s1 = 0, s2 = 0;
  void* a = allocator.allocate(64 * KiB, &s1);
  allocator.deallocate(a);
  void* b = allocator.allocate(64 * KiB, &s2);
  CHECK(b != a);
  CHECK(device.allocations == 2);
  CHECK(allocator.allocate(64 * KiB, &s1) == a);
  allocator.deallocate(b);
  CHECK(allocator.allocate(64 * KiB, &s2) == b);
  CHECK(device.allocations == 2);
}

TEST_CASE("statistics track reserved, in-use and peak bytes") {
  FakeDevice device;
  CachingAllocator allocator(device.raw());
  void* a = allocator.allocate(3 * MiB, nullptr);
  void* b = allocator.allocate(10 * KiB, nullptr);
  auto stats = allocator.stats();
  CHECK(stats.requests == 2);
  CHECK(stats.raw_allocations == 2);
  CHECK(stats.bytes_reserved == 4 * MiB + 2 * MiB);
  // The 1 MiB left of the 4 MiB segment is not split off (only a rest above 1 MiB is).
  CHECK(stats.bytes_in_use == 4 * MiB + 10 * KiB);
  allocator.deallocate(a);
  stats = allocator.stats();
  CHECK(stats.bytes_in_use == 10 * KiB);
  CHECK(stats.peak_bytes_in_use == 4 * MiB + 10 * KiB);
  CHECK(stats.peak_bytes_reserved == 6 * MiB);
  allocator.reset_peaks();
  CHECK(allocator.stats().peak_bytes_in_use == 10 * KiB);
  allocator.deallocate(b);
  CHECK(allocator.stats().bytes_in_use == 0);
  CHECK(allocator.stats().bytes_reserved == 6 * MiB);
}

TEST_CASE("release_cached returns unused segments and keeps segments in use") {
  FakeDevice device;
  CachingAllocator allocator(device.raw());
  void* big = allocator.allocate(8 * MiB, nullptr);
  void* small_a = allocator.allocate(4 * KiB, nullptr);
  void* small_b = allocator.allocate(4 * KiB, nullptr);
  allocator.deallocate(big);
  allocator.deallocate(small_a);
  allocator.release_cached();
  auto stats = allocator.stats();
  CHECK(stats.raw_frees == 1);
  CHECK(stats.bytes_reserved == 2 * MiB);
  CHECK(device.live.size() == 1);
  CHECK(allocator.allocate(4 * KiB, nullptr) == small_a);  // the kept segment still serves requests
  allocator.deallocate(small_a);
  allocator.deallocate(small_b);
  allocator.release_cached();
  CHECK(device.live.empty());
  CHECK(allocator.stats().bytes_reserved == 0);
  (void)allocator.allocate(8 * MiB, nullptr);
  CHECK(device.allocations == 3);
}

TEST_CASE("an out-of-memory raw allocation empties the cache and retries once") {
  FakeDevice device;
  device.limit = 10 * MiB;
  CachingAllocator allocator(device.raw());
  allocator.deallocate(allocator.allocate(8 * MiB, nullptr));
  void* p = allocator.allocate(9 * MiB, nullptr);  // fits only once the cached 8 MiB is returned
  CHECK(p != nullptr);
  CHECK(device.frees == 1);
  CHECK_THROWS_WITH_AS((void)allocator.allocate(4 * MiB, nullptr), "fake: out of memory", nexa::Error);
  CHECK(allocator.stats().bytes_in_use == 10 * MiB);
}

TEST_CASE("the destructor returns every segment") {
  FakeDevice device;
  {
    CachingAllocator allocator(device.raw());
    allocator.deallocate(allocator.allocate(3 * MiB, nullptr));
    (void)allocator.allocate(1, nullptr);
  }
  CHECK(device.live.empty());
  CHECK(device.frees == 2);
}

TEST_CASE("bad calls raise nexa::Error naming the allocator") {
  FakeDevice device;
  CachingAllocator allocator(device.raw());
  CHECK(allocator.allocate(0, nullptr) == nullptr);
  CHECK_NOTHROW(allocator.deallocate(nullptr));
  void* p = allocator.allocate(100, nullptr);
  int unrelated = 0;
  CHECK_THROWS_WITH_AS(allocator.deallocate(&unrelated), doctest::Contains("CachingAllocator: expected a pointer"),
                       nexa::Error);
  allocator.deallocate(p);
  CHECK_THROWS_WITH_AS(allocator.deallocate(p), doctest::Contains("(already freed)"), nexa::Error);
  CHECK_THROWS_WITH_AS((void)allocator.allocate(std::size_t(-1), nullptr),
                       doctest::Contains("CachingAllocator: expected a request the allocator can round up"),
                       nexa::Error);
  CHECK_THROWS_AS(CachingAllocator(nexa::RawMemory{}), nexa::Error);
}

TEST_CASE("random allocations on two streams never overlap and account for every byte") {
  FakeDevice device;
  CachingAllocator allocator(device.raw());
  int streams[2] = {0, 0};
  struct Live {
    std::uintptr_t begin;
    std::size_t bytes;
  };
  std::vector<Live> live;
  std::uint64_t state = 12345;
  auto next = [&state] {  // a fixed LCG: the sequence is the same on every run
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  for (int step = 0; step < 4000; ++step) {
    if (live.empty() || next() % 3 != 0) {
      const std::size_t bytes = next() % 4 == 0 ? 1 + next() % (6 * MiB) : 1 + next() % (64 * KiB);
      void* p = allocator.allocate(bytes, &streams[next() % 2]);
      live.push_back({reinterpret_cast<std::uintptr_t>(p), bytes});
    } else {
      const std::size_t victim = next() % live.size();
      allocator.deallocate(reinterpret_cast<void*>(live[victim].begin));
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(victim));
    }
  }
  std::vector<Live> sorted = live;
  std::sort(sorted.begin(), sorted.end(), [](const Live& a, const Live& b) { return a.begin < b.begin; });
  bool disjoint = true;
  for (std::size_t i = 1; i < sorted.size(); ++i)
    disjoint = disjoint && sorted[i - 1].begin + sorted[i - 1].bytes <= sorted[i].begin;
  CHECK(disjoint);
  std::size_t requested = 0;
  for (const Live& l : live) requested += l.bytes;
  const auto stats = allocator.stats();
  CHECK(stats.bytes_in_use >= requested);
  CHECK(stats.bytes_in_use <= stats.bytes_reserved);
  CHECK(stats.bytes_reserved == [&] {
    std::size_t sum = 0;
    for (const auto& [p, bytes] : device.live) sum += bytes;
    return sum;
  }());
  for (const Live& l : live) allocator.deallocate(reinterpret_cast<void*>(l.begin));
  CHECK(allocator.stats().bytes_in_use == 0);
  allocator.release_cached();  // every segment merged back into one free block
  CHECK(allocator.stats().bytes_reserved == 0);
  CHECK(device.live.empty());
}
