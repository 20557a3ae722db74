#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "nexa/core/half.hpp"
#include "nexa/io/dtype.hpp"

using nexa::bfloat16;
using nexa::half;

namespace {

float bits_to_float(std::uint32_t b) { return std::bit_cast<float>(b); }
std::uint32_t float_bits(float f) { return std::bit_cast<std::uint32_t>(f); }

bool half_is_nan(std::uint16_t h) { return (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0; }
bool bf16_is_nan(std::uint16_t h) { return (h & 0x7F80u) == 0x7F80u && (h & 0x7Fu) != 0; }

}  // namespace

static_assert(sizeof(half) == 2 && sizeof(bfloat16) == 2);
static_assert(std::is_trivially_copyable_v<half> && std::is_trivially_copyable_v<bfloat16>);
static_assert(nexa::float_to_half_bits(1.0f) == 0x3C00 && nexa::half_bits_to_float(0x3C00) == 1.0f);
static_assert(nexa::float_to_bfloat16_bits(1.0f) == 0x3F80 && nexa::bfloat16_bits_to_float(0x3F80) == 1.0f);
static_assert(static_cast<float>(half(2.5f)) == 2.5f && half::from_bits(0xC000).bits() == 0xC000);

TEST_CASE("half: every bit pattern round-trips through float") {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    const float f = nexa::half_bits_to_float(h);
    const std::uint16_t back = nexa::float_to_half_bits(f);
    if (half_is_nan(h)) {
      INFO("bits ", b);
      REQUIRE(std::isnan(f));
      REQUIRE(half_is_nan(back));
      REQUIRE((back & 0x8000u) == (h & 0x8000u));  // sign kept
      REQUIRE((back & 0x200u) != 0);               // quiet
      if (h & 0x200u) REQUIRE(back == h);          // a quiet NaN keeps its payload
    } else {
      INFO("bits ", b);
      REQUIRE(!std::isnan(f));
      REQUIRE(back == h);
      REQUIRE(half::from_bits(h).bits() == h);
      REQUIRE(static_cast<float>(half(f)) == f);
    }
  }
}

TEST_CASE("bfloat16: every bit pattern round-trips through float") {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    const float f = nexa::bfloat16_bits_to_float(h);
    REQUIRE(float_bits(f) == b << 16);  // exact widening
    const std::uint16_t back = nexa::float_to_bfloat16_bits(f);
    INFO("bits ", b);
    if (bf16_is_nan(h)) {
      REQUIRE(bf16_is_nan(back));
      REQUIRE((back & 0x8000u) == (h & 0x8000u));
      REQUIRE((back & 0x40u) != 0);
    } else {
      REQUIRE(back == h);
    }
  }
}

TEST_CASE("half: rounding to nearest even at every midpoint between adjacent values") {
  // For every pair of adjacent finite halves (a, a + 1), the float midpoint is exact; it must round
  // to the even one, and the floats just either side of it to the nearer one.
  for (std::uint32_t a = 0; a < 0x7C00; ++a) {
    const auto lo = static_cast<std::uint16_t>(a), hi = static_cast<std::uint16_t>(a + 1);
    // The successor of 65504 (0x7BFF) is the overflow threshold 65536 (encoded as infinity).
    const float flo = nexa::half_bits_to_float(lo);
    const float fhi = hi == 0x7C00 ? 65536.0f : nexa::half_bits_to_float(hi);
    const float mid = (flo + fhi) / 2;
    INFO("between ", a, " and ", a + 1);
    REQUIRE(mid > flo);
    REQUIRE(mid < fhi);
    const std::uint16_t even = (lo & 1u) ? hi : lo;
    for (const float sign : {1.0f, -1.0f}) {
      const std::uint16_t s = sign < 0 ? 0x8000 : 0;
      REQUIRE(nexa::float_to_half_bits(sign * mid) == (even | s));
      REQUIRE(nexa::float_to_half_bits(sign * std::nextafter(mid, 0.0f)) == (lo | s));
      REQUIRE(nexa::float_to_half_bits(sign * std::nextafter(mid, fhi)) == (hi | s));
      REQUIRE(nexa::float_to_half_bits(sign * flo) == (lo | s));
    }
  }
}

TEST_CASE("bfloat16: rounding to nearest even at every midpoint between adjacent values") {
  for (std::uint32_t a = 0; a < 0x7F80; ++a) {
    const std::uint32_t lo = a, hi = a + 1;
    const float mid = bits_to_float((lo << 16) | 0x8000u);  // exactly halfway in float
    const std::uint32_t even = (lo & 1u) ? hi : lo;
    INFO("between ", a, " and ", a + 1);
    for (const std::uint32_t s : {0u, 0x8000u}) {
      const float m = s ? -mid : mid;
      REQUIRE(nexa::float_to_bfloat16_bits(m) == (even | s));
      REQUIRE(nexa::float_to_bfloat16_bits(bits_to_float(float_bits(m) - 1)) == (lo | s));
      REQUIRE(nexa::float_to_bfloat16_bits(bits_to_float(float_bits(m) + 1)) == (hi | s));
    }
  }
}

TEST_CASE("half: known values") {
  struct Case {
    float f;
    std::uint16_t bits;
  };
  const float inf = std::numeric_limits<float>::infinity();
  const Case cases[] = {
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {1.0f, 0x3C00},
      {-2.0f, 0xC000},
      {0.5f, 0x3800},
      {65504.0f, 0x7BFF},                           // largest finite
      {65519.99609375f, 0x7BFF},                    // just below the overflow threshold
      {65520.0f, 0x7C00},                           // the threshold ties to even: infinity
      {1e10f, 0x7C00},                              // overflow
      {-1e10f, 0xFC00},                             //
      {inf, 0x7C00},                                //
      {-inf, 0xFC00},                               //
      {0x1p-14f, 0x0400},                           // smallest normal
      {0x1p-24f, 0x0001},                           // smallest subnormal
      {0x1p-25f, 0x0000},                           // half of it ties to even: zero
      {0x1.000002p-25f, 0x0001},                    // just above: rounds up
      {0x1.8p-24f, 0x0002},                         // 1.5 ulp ties to even: 2
      {0x1.ff8p-15f, 0x03FF},                       // largest subnormal
      {0x1.ffcp-15f, 0x0400},                       // ... plus half an ulp ties into the smallest normal
      {0x1p-26f, 0x0000},                           //
      {-0x1p-30f, 0x8000},                          // underflow keeps the sign
      {1.0f + 0x1p-11f, 0x3C00},                    // tie, even is 1.0
      {1.0f + 3 * 0x1p-11f, 0x3C02},                // tie, even is the next one up
      {0.333251953125f, 0x3555},                    //
      {3.140625f, 0x4248},                          //
      {0.1f, 0x2E66},                               // 0.0999755859375
      {std::bit_cast<float>(0x7FFFFFFFu), 0x7FFF},  // quiet NaN, payload truncated
  };
  for (const Case& c : cases) {
    INFO("value ", c.f);
    CHECK(nexa::float_to_half_bits(c.f) == c.bits);
    if (c.bits != 0x7FFF && (c.bits & 0x7FFF) < 0x7C00) {
      // Decoding gives the representable value nearest c.f.
      CHECK(std::fabs(nexa::half_bits_to_float(c.bits) - c.f) <=
            std::fabs(nexa::half_bits_to_float(c.bits ^ 1u) - c.f));
    }
  }
  CHECK(nexa::half_bits_to_float(0x7C00) == inf);
  CHECK(nexa::half_bits_to_float(0xFC00) == -inf);
  CHECK(nexa::half_bits_to_float(0x0001) == 0x1p-24f);
  CHECK(nexa::half_bits_to_float(0x03FF) == 0x1.ff8p-15f);
  CHECK(std::signbit(nexa::half_bits_to_float(0x8000)));
  // A signalling NaN (quiet bit clear, payload in the low bits only) must not become infinity.
  const std::uint16_t snan = nexa::float_to_half_bits(std::bit_cast<float>(0x7F800001u));
  CHECK(half_is_nan(snan));
  CHECK(half_is_nan(nexa::float_to_half_bits(std::bit_cast<float>(0xFFC00000u))));
  CHECK((nexa::float_to_half_bits(std::bit_cast<float>(0xFFC00000u)) & 0x8000u) != 0);
}

TEST_CASE("bfloat16: known values") {
  CHECK(nexa::float_to_bfloat16_bits(1.0f) == 0x3F80);
  CHECK(nexa::float_to_bfloat16_bits(-3.5f) == 0xC060);
  CHECK(nexa::float_to_bfloat16_bits(3.14159265f) == 0x4049);                        // 0x40490FDB rounds down
  CHECK(nexa::float_to_bfloat16_bits(bits_to_float(0x3F808000u)) == 0x3F80);         // tie to even (down)
  CHECK(nexa::float_to_bfloat16_bits(bits_to_float(0x3F818000u)) == 0x3F82);         // tie to even (up)
  CHECK(nexa::float_to_bfloat16_bits(std::numeric_limits<float>::max()) == 0x7F80);  // rounds to infinity
  CHECK(nexa::float_to_bfloat16_bits(bits_to_float(0x7F7F7FFFu)) == 0x7F7F);
  CHECK(nexa::float_to_bfloat16_bits(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(nexa::float_to_bfloat16_bits(-std::numeric_limits<float>::infinity()) == 0xFF80);
  CHECK(nexa::float_to_bfloat16_bits(std::numeric_limits<float>::denorm_min()) == 0x0000);
  CHECK(nexa::float_to_bfloat16_bits(bits_to_float(0x00008000u)) == 0x0000);  // subnormal tie to even
  CHECK(nexa::float_to_bfloat16_bits(bits_to_float(0x00018000u)) == 0x0002);
  CHECK(nexa::float_to_bfloat16_bits(-0.0f) == 0x8000);
  // NaNs whose payload lies only in the low 16 bits stay NaN (never infinity).
  CHECK(bf16_is_nan(nexa::float_to_bfloat16_bits(bits_to_float(0x7F800001u))));
  CHECK(bf16_is_nan(nexa::float_to_bfloat16_bits(bits_to_float(0xFF800001u))));
  CHECK(nexa::bfloat16_bits_to_float(0x4049) == 3.140625f);
}

#if defined(__FLT16_MAX__) && (defined(__x86_64__) || defined(__aarch64__))
TEST_CASE("half: float -> half agrees with the compiler's _Float16 conversion") {
  // A stride co-prime with 2^32 visits ~2.7 million float bit patterns across every binade.
  std::uint32_t mismatches = 0;
  for (std::uint64_t b = 0; b < (std::uint64_t{1} << 32); b += 1601) {
    const float f = bits_to_float(static_cast<std::uint32_t>(b));
    if (std::isnan(f)) continue;
    const _Float16 ref = static_cast<_Float16>(f);
    if (std::bit_cast<std::uint16_t>(ref) != nexa::float_to_half_bits(f)) ++mismatches;
  }
  CHECK(mismatches == 0);
}
#endif

TEST_CASE("encode_elements: double -> F16/BF16 rounds once (not via a float tie)") {
  // 1 + 2^-11 + 2^-40 lies just above a half tie; via float it would become the tie and round to 1.0.
  const double d = 1.0 + 0x1p-11 + 0x1p-40;
  std::byte out[2];
  nexa::encode_elements(nexa::Dtype::F16, &d, out, 1);
  CHECK(nexa::detail::load_le<std::uint16_t>(out) == 0x3C01);
  const double e = 1.0 + 0x1p-8 + 0x1p-40;  // just above a bf16 tie
  nexa::encode_elements(nexa::Dtype::BF16, &e, out, 1);
  CHECK(nexa::detail::load_le<std::uint16_t>(out) == 0x3F81);
  const double exact_tie = 1.0 + 0x1p-11;
  nexa::encode_elements(nexa::Dtype::F16, &exact_tie, out, 1);
  CHECK(nexa::detail::load_le<std::uint16_t>(out) == 0x3C00);
  const double tiny = -1e-300;
  nexa::encode_elements(nexa::Dtype::F16, &tiny, out, 1);
  CHECK(nexa::detail::load_le<std::uint16_t>(out) == 0x8000);
  const double big = 1e300;
  nexa::encode_elements(nexa::Dtype::BF16, &big, out, 1);
  CHECK(nexa::detail::load_le<std::uint16_t>(out) == 0x7F80);
  // Every double that is exactly a float converts like the float.
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const double x = nexa::half_bits_to_float(static_cast<std::uint16_t>(b));
    if (std::isnan(x)) continue;
    nexa::encode_elements(nexa::Dtype::F16, &x, out, 1);
    REQUIRE(nexa::detail::load_le<std::uint16_t>(out) == b);
  }
}

TEST_CASE("decode/encode F32 and F64 are exact and little-endian") {
  const std::vector<float> f{1.5f, -0.0f, std::numeric_limits<float>::denorm_min(), 3e38f};
  std::vector<std::byte> bytes(f.size() * 4);
  nexa::encode_elements(nexa::Dtype::F32, f.data(), bytes.data(), f.size());
  CHECK(std::to_integer<int>(bytes[3]) == 0x3F);  // 1.5f = 0x3FC00000, little-endian
  std::vector<double> d(f.size());
  nexa::decode_elements(nexa::Dtype::F32, bytes.data(), d.data(), f.size());
  for (std::size_t i = 0; i < f.size(); ++i)
    CHECK(std::bit_cast<std::uint64_t>(d[i]) == std::bit_cast<std::uint64_t>(static_cast<double>(f[i])));
  std::vector<std::byte> b64(d.size() * 8);
  nexa::encode_elements(nexa::Dtype::F64, d.data(), b64.data(), d.size());
  std::vector<float> back(f.size());
  nexa::decode_elements(nexa::Dtype::F64, b64.data(), back.data(), f.size());
  for (std::size_t i = 0; i < f.size(); ++i) CHECK(float_bits(back[i]) == float_bits(f[i]));
}

TEST_CASE("Dtype names and sizes") {
  CHECK(nexa::dtype_name(nexa::Dtype::BF16) == "BF16");
  CHECK(nexa::dtype_size(nexa::Dtype::F64) == 8);
  CHECK(nexa::dtype_size(nexa::Dtype::F8_E4M3) == 1);
  CHECK(nexa::parse_dtype("F16") == nexa::Dtype::F16);
  CHECK(!nexa::parse_dtype("F17").has_value());
  CHECK(!nexa::parse_dtype("f32").has_value());
  CHECK(nexa::dtype_of<float> == nexa::Dtype::F32);
  CHECK(nexa::dtype_of<nexa::bfloat16> == nexa::Dtype::BF16);
  for (const auto& info : nexa::detail::dtype_table) CHECK(nexa::parse_dtype(info.name) == info.dtype);
}
