#pragma once
// Heap accounting for benchmarks: replaces the global operator new / delete (every form: plain,
// array, nothrow, sized, aligned) with versions that count live bytes, so a benchmark can measure
// how much memory the code it times allocated, rather than compute it from a formula.
//
// Include this header in exactly ONE translation unit of a benchmark executable (it defines the
// replacement functions, which the standard forbids declaring inline). Never in the library.
//
//   nexa::bench::alloc::reset_peak();                      // peak = current
//   const auto base = nexa::bench::alloc::current_bytes();
//   ... run the measured code ...
//   const auto used = nexa::bench::alloc::peak_bytes() - base;  // the region's high-water mark
//
// What is counted: every allocation made through operator new, from any thread (the counters are
// atomics; OpenMP workers allocate too): nexa's Buffer (aligned operator new), std::vector and
// std::string, ... Each block counts as malloc_usable_size reports it (the requested size rounded
// up to the allocator's granule: at most 24 bytes more for small blocks, a page for large ones).
// What is NOT counted: memory taken with malloc directly, notably Eigen's internal GEMM blocking
// workspace (Eigen's aligned_malloc) and OpenBLAS's buffers (its own allocator), nor thread stacks.
// Those are bounded per thread and do not grow with the problem size beyond the GEMM block sizes.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace nexa::bench::alloc {

namespace detail {
inline std::atomic<std::int64_t> current{0};
inline std::atomic<std::int64_t> peak{0};
inline std::atomic<std::int64_t> count{0};

inline void on_alloc(void* p) {
  const auto bytes = static_cast<std::int64_t>(malloc_usable_size(p));
  const std::int64_t now = current.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  count.fetch_add(1, std::memory_order_relaxed);
  std::int64_t seen = peak.load(std::memory_order_relaxed);
  while (now > seen && !peak.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
  }
}
inline void on_free(void* p) {
  if (p) current.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
}

inline void* allocate(std::size_t bytes) {
  void* p = std::malloc(bytes == 0 ? 1 : bytes);
  if (p) on_alloc(p);
  return p;
}
inline void* allocate_aligned(std::size_t bytes, std::align_val_t alignment) {
  const auto align = std::max(static_cast<std::size_t>(alignment), sizeof(void*));
  void* p = nullptr;
  if (posix_memalign(&p, align, bytes == 0 ? 1 : bytes) != 0) return nullptr;
  on_alloc(p);
  return p;
}
// Not inlined: g++ would see free() on a pointer from operator new and warn
// (-Wmismatched-new-delete), not knowing this operator new is the malloc-based replacement.
[[gnu::noinline]] inline void release(void* p) noexcept {
  on_free(p);
  std::free(p);  // posix_memalign's blocks are freed with free() too
}
}  // namespace detail

// Bytes allocated through operator new and not yet freed.
inline std::int64_t current_bytes() { return detail::current.load(std::memory_order_relaxed); }
// The most current_bytes() has been since the last reset_peak().
inline std::int64_t peak_bytes() { return detail::peak.load(std::memory_order_relaxed); }
// Number of allocations so far.
inline std::int64_t allocations() { return detail::count.load(std::memory_order_relaxed); }
// Starts a new measured region: the peak becomes the current live size.
inline void reset_peak() {
  detail::peak.store(detail::current.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

// The high-water mark of the bytes `fn` allocated over what was live when it started (what it
// returns and keeps alive included, while it is alive).
template <class F>
std::int64_t measure_peak(F&& fn) {
  reset_peak();
  const std::int64_t base = current_bytes();
  fn();
  return peak_bytes() - base;
}

}  // namespace nexa::bench::alloc

// The replacements ([new.delete]). Each form pairs with free(): the aligned ones come from
// posix_memalign, whose blocks free() releases.
void* operator new(std::size_t bytes) {
  if (void* p = nexa::bench::alloc::detail::allocate(bytes)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t bytes) {
  if (void* p = nexa::bench::alloc::detail::allocate(bytes)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept {
  return nexa::bench::alloc::detail::allocate(bytes);
}
void* operator new[](std::size_t bytes, const std::nothrow_t&) noexcept {
  return nexa::bench::alloc::detail::allocate(bytes);
}
void* operator new(std::size_t bytes, std::align_val_t alignment) {
  if (void* p = nexa::bench::alloc::detail::allocate_aligned(bytes, alignment)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t bytes, std::align_val_t alignment) {
  if (void* p = nexa::bench::alloc::detail::allocate_aligned(bytes, alignment)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t bytes, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return nexa::bench::alloc::detail::allocate_aligned(bytes, alignment);
}
void* operator new[](std::size_t bytes, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return nexa::bench::alloc::detail::allocate_aligned(bytes, alignment);
}

void operator delete(void* p) noexcept { nexa::bench::alloc::detail::release(p); }
void operator delete[](void* p) noexcept { nexa::bench::alloc::detail::release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { nexa::bench::alloc::detail::release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { nexa::bench::alloc::detail::release(p); }
void operator delete(void* p, std::size_t) noexcept { nexa::bench::alloc::detail::release(p); }
void operator delete[](void* p, std::size_t) noexcept { nexa::bench::alloc::detail::release(p); }
void operator delete(void* p, std::align_val_t) noexcept { nexa::bench::alloc::detail::release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { nexa::bench::alloc::detail::release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { nexa::bench::alloc::detail::release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { nexa::bench::alloc::detail::release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  nexa::bench::alloc::detail::release(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  nexa::bench::alloc::detail::release(p);
}
