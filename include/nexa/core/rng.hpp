#pragma once
// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011). A value is a pure function
// of (key, stream, index), so initialisation and dropout masks are the same whatever the thread
// count or device. `Rng` only hands out fresh stream ids; it holds no hidden per-thread state.
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace nexa {

namespace detail {

inline std::array<std::uint32_t, 4> philox4x32_10(std::array<std::uint32_t, 4> ctr, std::array<std::uint32_t, 2> key) {
  constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
  constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t{m0} * ctr[0];
    const std::uint64_t p1 = std::uint64_t{m1} * ctr[2];
    ctr = {static_cast<std::uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<std::uint32_t>(p1),
           static_cast<std::uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<std::uint32_t>(p0)};
    key[0] += w0;
    key[1] += w1;
  }
  return ctr;
}

// Uniform in (0, 1]: never 0, so log() in Box-Muller is finite.
inline double to_unit_open0(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t bits = (std::uint64_t{hi} << 21) ^ lo;  // 53 random bits
  return (static_cast<double>(bits & ((std::uint64_t{1} << 53) - 1)) + 1.0) * 0x1.0p-53;
}

}  // namespace detail

// One independent random stream: element i of anything drawn from it depends only on (seed, id, i).
class RandomStream {
 public:
  RandomStream() = default;
  RandomStream(std::uint64_t seed, std::uint64_t id) : seed_(seed), id_(id) {}

  // Four 32-bit words for counter `index`.
  [[nodiscard]] std::array<std::uint32_t, 4> bits(std::uint64_t index) const {
    return detail::philox4x32_10({static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32),
                                  static_cast<std::uint32_t>(id_), static_cast<std::uint32_t>(id_ >> 32)},
                                 {static_cast<std::uint32_t>(seed_), static_cast<std::uint32_t>(seed_ >> 32)});
  }

  // Uniform in (0, 1].
  [[nodiscard]] double uniform(std::uint64_t index) const {
    const auto b = bits(index);
    return detail::to_unit_open0(b[0], b[1]);
  }

  // Standard normal (Box-Muller on the counter's four words).
  [[nodiscard]] double normal(std::uint64_t index) const {
    const auto b = bits(index);
    const double u1 = detail::to_unit_open0(b[0], b[1]);
    const double u2 = detail::to_unit_open0(b[2], b[3]);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

  [[nodiscard]] std::uint64_t seed() const { return seed_; }
  [[nodiscard]] std::uint64_t id() const { return id_; }

 private:
  std::uint64_t seed_ = 0;
  std::uint64_t id_ = 0;
};

// Hands out consecutive streams from one seed. Constructing modules in the same order from the
// same seed reproduces them exactly.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : seed_(seed) {}
  [[nodiscard]] RandomStream stream() { return RandomStream(seed_, next_++); }
  [[nodiscard]] std::uint64_t seed() const { return seed_; }

 private:
  std::uint64_t seed_;
  std::uint64_t next_ = 0;
};

}  // namespace nexa
