#pragma once
// IEEE 754 binary16 (`nexa::half`) and bfloat16 (`nexa::bfloat16`) storage types, and the bit-level
// conversions to and from float behind them. Float -> 16 bit rounds to nearest, ties to even;
// overflow gives a signed infinity; subnormals are produced and read exactly; a NaN stays a NaN
// (quietened, sign and leading payload bits kept). 16 bit -> float is exact.
// Everything is constexpr and independent of the floating-point environment.
#include <bit>
#include <cstdint>
#include <type_traits>

namespace nexa {

// ---- binary16 --------------------------------------------------------------------------------

[[nodiscard]] constexpr std::uint16_t float_to_half_bits(float value) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t abs = x & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) {  // NaN: keep the top 10 payload bits and force the quiet bit
    return static_cast<std::uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));
  }
  if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // >= 65520 rounds to inf
  const std::uint32_t exponent = abs >> 23;
  if (abs < 0x38800000u) {            // below 2^-14: a half subnormal (or zero)
    if (exponent < 102) return sign;  // below 2^-25: rounds to zero (never a tie)
    const std::uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126 - exponent;  // 14..24: value / 2^-24 = mantissa >> shift
    std::uint32_t result = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
    const std::uint32_t halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (result & 1u))) ++result;  // may carry into the smallest normal
    return static_cast<std::uint16_t>(sign | result);
  }
  std::uint32_t result = ((exponent - 112u) << 10) | ((abs >> 13) & 0x3FFu);
  const std::uint32_t rest = abs & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) ++result;  // a carry moves to the next binade
  return static_cast<std::uint16_t>(sign | result);
}

[[nodiscard]] constexpr float half_bits_to_float(std::uint16_t bits) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1Fu;
  const std::uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));  // inf, NaN
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float.
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// ---- bfloat16 --------------------------------------------------------------------------------

[[nodiscard]] constexpr std::uint16_t float_to_bfloat16_bits(float value) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x0040u);  // quiet NaN
  // Round to nearest even; a carry out of the mantissa correctly reaches the exponent (and inf).
  return static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

[[nodiscard]] constexpr float bfloat16_bits_to_float(std::uint16_t bits) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

// ---- storage types ---------------------------------------------------------------------------
// Two bytes, trivially copyable, default construction leaves the value uninitialised (like float).
// They convert to float implicitly and from float explicitly (the conversion rounds).

class half {
 public:
  half() = default;
  constexpr explicit half(float value) noexcept : bits_(float_to_half_bits(value)) {}
  [[nodiscard]] static constexpr half from_bits(std::uint16_t bits) noexcept { return half(bits, raw{}); }
  [[nodiscard]] constexpr std::uint16_t bits() const noexcept { return bits_; }
  constexpr operator float() const noexcept { return half_bits_to_float(bits_); }

 private:
  struct raw {};
  constexpr half(std::uint16_t bits, raw) noexcept : bits_(bits) {}
  std::uint16_t bits_;
};

class bfloat16 {
 public:
  bfloat16() = default;
  constexpr explicit bfloat16(float value) noexcept : bits_(float_to_bfloat16_bits(value)) {}
  [[nodiscard]] static constexpr bfloat16 from_bits(std::uint16_t bits) noexcept { return bfloat16(bits, raw{}); }
  [[nodiscard]] constexpr std::uint16_t bits() const noexcept { return bits_; }
  constexpr operator float() const noexcept { return bfloat16_bits_to_float(bits_); }

 private:
  struct raw {};
  constexpr bfloat16(std::uint16_t bits, raw) noexcept : bits_(bits) {}
  std::uint16_t bits_;
};

static_assert(sizeof(half) == 2 && std::is_trivially_copyable_v<half> && std::is_standard_layout_v<half>);
static_assert(sizeof(bfloat16) == 2 && std::is_trivially_copyable_v<bfloat16> && std::is_standard_layout_v<bfloat16>);

}  // namespace nexa
