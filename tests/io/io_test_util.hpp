#pragma once
// Helpers for the I/O tests: a scratch directory, raw file access, crafted safetensors files,
// and the message of the nexa::Error an expression throws.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "nexa/core/error.hpp"

namespace nexa::testing {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::random_device device;
    path_ = std::filesystem::temp_directory_path() /
            ("nexa_io_test_" + std::to_string(device()) + "_" + std::to_string(device()));
    std::filesystem::create_directories(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  // Number of entries in the directory (to spot leftover temporaries).
  [[nodiscard]] std::size_t entries() const {
    return static_cast<std::size_t>(
        std::distance(std::filesystem::directory_iterator(path_), std::filesystem::directory_iterator()));
  }

 private:
  std::filesystem::path path_;
};

inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in.is_open());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  REQUIRE(out.is_open());
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline std::string le64(std::uint64_t n) {
  std::string out(8, '\0');
  for (int k = 0; k < 8; ++k) out[static_cast<std::size_t>(k)] = static_cast<char>((n >> (8 * k)) & 0xFF);
  return out;
}

// A safetensors file from a header text and a data buffer; `length` overrides the header length.
inline std::string craft_safetensors(std::string_view header, std::string_view data,
                                     std::optional<std::uint64_t> length = std::nullopt) {
  return le64(length.value_or(header.size())) + std::string(header) + std::string(data);
}

// The message of the nexa::Error that `f()` throws; fails the test if it throws nothing or
// anything else.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const nexa::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("threw a non-nexa exception: ", e.what());
    return {};
  }
  FAIL("no exception thrown");
  return {};
}

inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace nexa::testing

// Checks that `expr` throws nexa::Error whose message contains every one of the given strings.
#define NEXA_CHECK_ERROR_CONTAINS(expr, ...)                                        \
  do {                                                                              \
    const std::string nexa_msg_ = ::nexa::testing::error_of([&] { (void)(expr); }); \
    const std::vector<std::string> nexa_parts_{__VA_ARGS__};                        \
    INFO("message: ", nexa_msg_);                                                   \
    for (const std::string& nexa_part_ : nexa_parts_) {                             \
      INFO("expected part: ", nexa_part_);                                          \
      CHECK(::nexa::testing::contains(nexa_msg_, nexa_part_));                      \
    }                                                                               \
  } while (0)
