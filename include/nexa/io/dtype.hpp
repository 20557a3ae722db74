#pragma once
// Dtype: the element types a checkpoint file can hold, named as safetensors names them, and the
// conversions between their little-endian bytes and float/double buffers in memory.
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <ostream>
#include <string_view>
#include <type_traits>

#include "nexa/core/half.hpp"

namespace nexa {

// The enumerators are in the order of the reference implementation's Dtype, whose writer sorts
// tensors by descending dtype, then by name.
enum class Dtype : std::uint8_t { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

namespace detail {
struct DtypeInfo {
  Dtype dtype;
  std::string_view name;
  std::size_t size;
};
inline constexpr std::array<DtypeInfo, 15> dtype_table{{
    {Dtype::BOOL, "BOOL", 1},
    {Dtype::U8, "U8", 1},
    {Dtype::I8, "I8", 1},
    {Dtype::F8_E5M2, "F8_E5M2", 1},
    {Dtype::F8_E4M3, "F8_E4M3", 1},
    {Dtype::I16, "I16", 2},
    {Dtype::U16, "U16", 2},
    {Dtype::F16, "F16", 2},
    {Dtype::BF16, "BF16", 2},
    {Dtype::I32, "I32", 4},
    {Dtype::U32, "U32", 4},
    {Dtype::F32, "F32", 4},
    {Dtype::F64, "F64", 8},
    {Dtype::I64, "I64", 8},
    {Dtype::U64, "U64", 8},
}};
}  // namespace detail

// "F32", "BF16", ...
[[nodiscard]] constexpr std::string_view dtype_name(Dtype d) noexcept {
  return detail::dtype_table[static_cast<std::size_t>(d)].name;
}
// Bytes per element.
[[nodiscard]] constexpr std::size_t dtype_size(Dtype d) noexcept {
  return detail::dtype_table[static_cast<std::size_t>(d)].size;
}
// The dtype called `name`, or nothing when the name is unknown.
[[nodiscard]] constexpr std::optional<Dtype> parse_dtype(std::string_view name) noexcept {
  for (const auto& info : detail::dtype_table)
    if (info.name == name) return info.dtype;
  return std::nullopt;
}
// The dtypes that convert to and from float and double: F64, F32, F16, BF16.
[[nodiscard]] constexpr bool is_float_dtype(Dtype d) noexcept {
  return d == Dtype::F64 || d == Dtype::F32 || d == Dtype::F16 || d == Dtype::BF16;
}
// The file dtype matching a C++ scalar type.
template <class T>
inline constexpr Dtype dtype_of = [] {
  if constexpr (std::is_same_v<T, double>)
    return Dtype::F64;
  else if constexpr (std::is_same_v<T, float>)
    return Dtype::F32;
  else if constexpr (std::is_same_v<T, half>)
    return Dtype::F16;
  else if constexpr (std::is_same_v<T, bfloat16>)
    return Dtype::BF16;
  else
    static_assert(sizeof(T) == 0, "nexa::dtype_of: no file dtype for this type");
}();

inline std::ostream& operator<<(std::ostream& out, Dtype d) { return out << dtype_name(d); }

namespace detail {

template <class U>
constexpr U byteswap(U u) noexcept {
  U r = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) r = static_cast<U>((r << 8) | ((u >> (8 * i)) & 0xFFu));
  return r;
}

template <class U>
U load_le(const std::byte* src) noexcept {
  U u;
  std::memcpy(&u, src, sizeof(U));
  if constexpr (std::endian::native == std::endian::big) u = byteswap(u);
  return u;
}
template <class U>
void store_le(std::byte* dst, U u) noexcept {
  if constexpr (std::endian::native == std::endian::big) u = byteswap(u);
  std::memcpy(dst, &u, sizeof(U));
}

// double -> float rounding to odd (truncate, then set the last bit when inexact). Rounding that
// result to nearest even at 16 bits equals rounding the double directly, which a plain
// double -> float -> half conversion does not guarantee.
inline float narrow_round_to_odd(double d) noexcept {
  const float f = static_cast<float>(d);
  if (d != d || static_cast<double>(f) == d || f - f != 0.0f) return f;  // NaN, exact, or overflow to inf
  std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
  if ((f < 0 ? -static_cast<double>(f) : static_cast<double>(f)) > (d < 0 ? -d : d)) --bits;  // toward zero
  return std::bit_cast<float>(bits | 1u);
}

template <class T>
float to_float_for_16bit(T v) noexcept {
  if constexpr (std::is_same_v<T, float>)
    return v;
  else
    return narrow_round_to_odd(static_cast<double>(v));
}

}  // namespace detail

// Converts n little-endian elements of dtype `from` (F64, F32, F16 or BF16) into `dst`
// (float or double), rounding to nearest even where precision is lost.
template <class T>
void decode_elements(Dtype from, const std::byte* src, T* dst, std::size_t n) noexcept {
  static_assert(std::is_floating_point_v<T>, "nexa::decode_elements: T must be float or double");
  switch (from) {
    case Dtype::F64:
      for (std::size_t i = 0; i < n; ++i)
        dst[i] = static_cast<T>(std::bit_cast<double>(detail::load_le<std::uint64_t>(src + 8 * i)));
      break;
    case Dtype::F32:
      if constexpr (std::is_same_v<T, float> && std::endian::native == std::endian::little) {
        if (n) std::memcpy(dst, src, n * sizeof(float));
      } else {
        for (std::size_t i = 0; i < n; ++i)
          dst[i] = static_cast<T>(std::bit_cast<float>(detail::load_le<std::uint32_t>(src + 4 * i)));
      }
      break;
    case Dtype::F16:
      for (std::size_t i = 0; i < n; ++i)
        dst[i] = static_cast<T>(half_bits_to_float(detail::load_le<std::uint16_t>(src + 2 * i)));
      break;
    case Dtype::BF16:
      for (std::size_t i = 0; i < n; ++i)
        dst[i] = static_cast<T>(bfloat16_bits_to_float(detail::load_le<std::uint16_t>(src + 2 * i)));
      break;
    default:
      break;  // callers check is_float_dtype first
  }
}

// Converts n elements of `src` (float or double) into little-endian dtype `to` (F64, F32, F16 or
// BF16), rounding to nearest even (double -> 16 bit rounds once, not via float).
template <class T>
void encode_elements(Dtype to, const T* src, std::byte* dst, std::size_t n) noexcept {
  static_assert(std::is_floating_point_v<T>, "nexa::encode_elements: T must be float or double");
  switch (to) {
    case Dtype::F64:
      for (std::size_t i = 0; i < n; ++i)
        detail::store_le(dst + 8 * i, std::bit_cast<std::uint64_t>(static_cast<double>(src[i])));
      break;
    case Dtype::F32:
      if constexpr (std::is_same_v<T, float> && std::endian::native == std::endian::little) {
        if (n) std::memcpy(dst, src, n * sizeof(float));
      } else {
        for (std::size_t i = 0; i < n; ++i)
          detail::store_le(dst + 4 * i, std::bit_cast<std::uint32_t>(static_cast<float>(src[i])));
      }
      break;
    case Dtype::F16:
      for (std::size_t i = 0; i < n; ++i)
        detail::store_le(dst + 2 * i, float_to_half_bits(detail::to_float_for_16bit(src[i])));
      break;
    case Dtype::BF16:
      for (std::size_t i = 0; i < n; ++i)
        detail::store_le(dst + 2 * i, float_to_bfloat16_bits(detail::to_float_for_16bit(src[i])));
      break;
    default:
      break;  // callers check is_float_dtype first
  }
}

}  // namespace nexa
