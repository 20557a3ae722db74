#pragma once
// NumPy .npy files for CPU tensors, through xtensor's reader and writer (xt::load_npy,
// xt::dump_npy). nexa checks the file's preamble, dtype and size first, so that a truncated or
// malformed file raises nexa::Error("npy: <path>: ...") instead of reaching xtensor's
// unchecked reads; xtensor's own exceptions are translated into nexa::Error too.
//   save_npy(path, tensor)     atomic (temporary file + rename), native little-endian dtype
//   load_npy<T>(path)          float <-> double files convert; other dtypes must match T exactly;
//                              Fortran-ordered files are reordered to row-major
#include <bit>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xnpy.hpp>

#include "nexa/core/error.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/io/file.hpp"
#include "nexa/io/xtensor.hpp"

namespace nexa {

namespace detail {

struct NpyPreamble {
  std::string descr;  // e.g. "<f4"
  bool fortran_order = false;
  std::vector<std::uint64_t> shape;
  std::uint64_t data_start = 0;  // bytes before the array data
  std::uint64_t word_size = 0;
};

// The value of 'key' in the header dictionary: the text after "'key':" up to the next
// top-level ',' or '}' (tuples kept whole), trimmed.
inline std::string npy_header_value(std::string_view header, std::string_view key, const std::string& context) {
  const std::string quoted = detail::concat("'", key, "'");
  const std::size_t at = header.find(quoted);
  require(at != std::string_view::npos, context, "header has no ", quoted, " key");
  std::size_t pos = header.find(':', at + quoted.size());
  require(pos != std::string_view::npos, context, "header key ", quoted, " has no value");
  ++pos;
  int depth = 0;
  std::size_t end = pos;
  for (; end < header.size(); ++end) {
    const char c = header[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
    if (depth < 0) break;
  }
  std::string value(header.substr(pos, end - pos));
  const auto first = value.find_first_not_of(" \t");
  const auto last = value.find_last_not_of(" \t");
  return first == std::string::npos ? std::string() : value.substr(first, last - first + 1);
}

inline NpyPreamble parse_npy_preamble(std::string_view bytes, const std::string& context) {
  constexpr std::string_view magic("\x93NUMPY", 6);
  require(bytes.size() >= 10, context, "file truncated: ", bytes.size(), " bytes, shorter than the npy preamble");
  require(bytes.substr(0, 6) == magic, context, "not an npy file (bad magic string)");
  const auto major = static_cast<unsigned char>(bytes[6]);
  const auto minor = static_cast<unsigned char>(bytes[7]);
  require((major == 1 || major == 2) && minor == 0, context, "unsupported npy format version ", static_cast<int>(major),
          ".", static_cast<int>(minor), " (1.0 and 2.0 are supported)");
  const auto byte = [&](std::size_t i) { return static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i])); };
  std::uint64_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = byte(8) | (byte(9) << 8);
    header_start = 10;
  } else {
    require(bytes.size() >= 12, context, "file truncated inside the npy preamble");
    header_len = byte(8) | (byte(9) << 8) | (byte(10) << 16) | (byte(11) << 24);
    header_start = 12;
  }
  require(header_len <= bytes.size() - header_start, context, "header length ", header_len,
          " runs past the end of the file (", bytes.size(), " bytes)");
  const std::string_view header = bytes.substr(header_start, header_len);
  require(!header.empty() && header.back() == '\n', context, "header does not end with a newline");
  require(header.find('{') != std::string_view::npos && header.find('}') != std::string_view::npos, context,
          "header is not a dictionary");

  NpyPreamble p;
  p.data_start = header_start + header_len;
  std::string descr = npy_header_value(header, "descr", context);
  require(descr.size() >= 5 && descr.front() == '\'' && descr.back() == '\'', context, "unsupported descr ", descr,
          " (only simple dtypes such as '<f4' are supported)");
  p.descr = descr.substr(1, descr.size() - 2);
  std::uint64_t word = 0;
  for (std::size_t i = 2; i < p.descr.size(); ++i) {
    const char c = p.descr[i];
    require(c >= '0' && c <= '9' && word < 1000, context, "unsupported descr '", p.descr, "'");
    word = word * 10 + static_cast<std::uint64_t>(c - '0');
  }
  require(word > 0, context, "unsupported descr '", p.descr, "'");
  p.word_size = word;

  const std::string fortran = npy_header_value(header, "fortran_order", context);
  require(fortran == "True" || fortran == "False", context, "invalid fortran_order ", fortran);
  p.fortran_order = fortran == "True";

  const std::string shape = npy_header_value(header, "shape", context);
  require(shape.size() >= 2 && shape.front() == '(' && shape.back() == ')', context, "invalid shape ", shape);
  std::uint64_t numel = 1;
  std::size_t i = 1;
  while (i + 1 < shape.size()) {
    while (i + 1 < shape.size() && (shape[i] == ' ' || shape[i] == ',')) ++i;
    if (i + 1 >= shape.size()) break;
    std::uint64_t d = 0;
    const std::size_t start = i;
    while (i + 1 < shape.size() && shape[i] >= '0' && shape[i] <= '9') {
      const auto digit = static_cast<std::uint64_t>(shape[i] - '0');
      require(d <= (static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()) - digit) / 10, context,
              "shape extent too large in ", shape);
      d = d * 10 + digit;
      ++i;
    }
    require(i > start, context, "invalid shape ", shape);
    if (d != 0) {
      require(numel <= static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()) / d, context, "shape ", shape,
              " has too many elements");
    }
    numel *= d;
    p.shape.push_back(d);
  }
  require(numel <= std::numeric_limits<std::uint64_t>::max() / p.word_size, context, "shape ", shape,
          " has too many bytes");
  const std::uint64_t data_bytes = numel * p.word_size;
  require(data_bytes <= bytes.size() - p.data_start, context, "file truncated: shape ", shape, " of '", p.descr,
          "' needs ", data_bytes, " data bytes, the file has ", bytes.size() - p.data_start);
  return p;
}

// numpy's typestring for T on this machine: "<f4", "|u1", ...
template <class T>
std::string npy_typestring() {
  const char order = sizeof(T) == 1 ? '|' : (std::endian::native == std::endian::little ? '<' : '>');
  const char kind = std::is_same_v<T, bool> ? 'b' : std::is_floating_point_v<T> ? 'f' : std::is_signed_v<T> ? 'i' : 'u';
  return detail::concat(order, kind, sizeof(T));
}

// The same file with a format 2.0 preamble whose header length has no byte >= 0x80: xtensor
// 0.24 assembles the length from plain (signed) chars and misreads such bytes. Padding the
// header with spaces is allowed by the format.
inline std::string npy_for_xtensor(std::string_view bytes, const NpyPreamble& p) {
  const std::uint64_t header_start = static_cast<unsigned char>(bytes[6]) == 1 ? 10 : 12;
  std::string_view header = bytes.substr(header_start, p.data_start - header_start);
  header.remove_suffix(1);  // the newline, re-added after the padding
  std::uint64_t len = header.size() + 1;
  for (std::uint64_t unit = 1; unit <= (std::uint64_t{1} << 24); unit <<= 8) {
    if (((len / unit) & 0xFF) >= 0x80) len = (len / (unit << 8) + 1) * (unit << 8);
  }
  std::string out("\x93NUMPY\x02\x00", 8);
  for (int k = 0; k < 4; ++k) out += static_cast<char>((len >> (8 * k)) & 0x7F);
  out += header;
  out.append(static_cast<std::size_t>(len - header.size() - 1), ' ');
  out += '\n';
  out += bytes.substr(static_cast<std::size_t>(p.data_start));
  return out;
}

template <class U, class T>
Tensor<T, cpu> npy_read_as(const std::string& bytes, const std::string& context) {
  try {
    std::istringstream stream(bytes);
    auto a = xt::load_npy<U>(stream);
    if constexpr (std::is_same_v<U, T>) {
      return from_xarray(a);
    } else {
      return from_xarray(xt::cast<T>(a));
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(detail::concat(context, ": ", e.what()));
  }
}

}  // namespace detail

// Writes `v` as a .npy file (row-major, native little-endian dtype), atomically.
template <class T>
void save_npy(const std::filesystem::path& path, TensorView<T, cpu> v) {
  using U = std::remove_const_t<T>;
  static_assert(std::is_arithmetic_v<U>, "nexa::save_npy: T must be an arithmetic type");
  const std::string context = detail::io_context("npy", path);
  std::string bytes;
  try {
    bytes = xt::dump_npy(xt_adapt(TensorView<const U, cpu>(v)));
  } catch (const std::exception& e) {
    throw Error(detail::concat(context, ": ", e.what()));
  }
  detail::AtomicFileWriter file(path, context);
  file.write(bytes);
  file.commit();
}
template <class T>
void save_npy(const std::filesystem::path& path, const Tensor<T, cpu>& t) {
  save_npy(path, t.cview());
}

// Reads a .npy file into a row-major Tensor<T, cpu>. Files of float32 or float64 load into
// float or double tensors (converting); any other dtype must match T exactly.
template <class T>
[[nodiscard]] Tensor<T, cpu> load_npy(const std::filesystem::path& path) {
  static_assert(std::is_arithmetic_v<T>, "nexa::load_npy: T must be an arithmetic type");
  const std::string context = detail::io_context("npy", path);
  detail::InputFile file(path, context);
  require(file.size() <= static_cast<std::uint64_t>(std::numeric_limits<std::streamsize>::max()), context,
          "file too large");
  std::string bytes(static_cast<std::size_t>(file.size()), '\0');
  file.read(0, bytes.data(), file.size(), "the file");
  const detail::NpyPreamble p = detail::parse_npy_preamble(bytes, context);
  const std::string expected = detail::npy_typestring<T>();
  const bool float_file = p.descr == detail::npy_typestring<float>() || p.descr == detail::npy_typestring<double>();
  require(p.descr == expected || (std::is_floating_point_v<T> && float_file), context, "dtype '", p.descr,
          "' does not match the tensor's '", expected, "'",
          std::is_floating_point_v<T> ? " (float32 and float64 files convert)" : "");
  bytes = detail::npy_for_xtensor(bytes, p);
  if constexpr (std::is_floating_point_v<T>) {
    if (p.descr == detail::npy_typestring<float>()) return detail::npy_read_as<float, T>(bytes, context);
    if (p.descr == detail::npy_typestring<double>()) return detail::npy_read_as<double, T>(bytes, context);
  }
  return detail::npy_read_as<T, T>(bytes, context);
}

}  // namespace nexa
