#pragma once
// Helpers for the tokenizer tests: fixture files, JSON arrays, a scratch directory.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/io/json.hpp"

namespace nexa::tokenizer_testing {

inline std::filesystem::path fixture_dir() { return NEXA_TOKENIZER_FIXTURE_DIR; }

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open ", p.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_text(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline json::Value load_json(const std::filesystem::path& p) { return json::parse(read_text(p), p.string()); }

// Throws (rather than asserting) so that it is safe inside CAPTURE and other assertions.
inline const json::Value& member(const json::Value& v, std::string_view key) {
  const json::Value* m = v.find(key);
  if (m == nullptr) throw nexa::Error("fixture member missing: " + std::string(key));
  return *m;
}

inline std::vector<std::int32_t> int_array(const json::Value& v) {
  std::vector<std::int32_t> out;
  for (const auto& x : v.array) out.push_back(static_cast<std::int32_t>(x.integer));
  return out;
}

inline std::vector<std::string> string_array(const json::Value& v) {
  std::vector<std::string> out;
  for (const auto& x : v.array) out.push_back(x.string);
  return out;
}

// The directory holding all-MiniLM-L6-v2's vocab.txt, or nullopt (the test then skips).
inline std::optional<std::filesystem::path> minilm_dir() {
  std::filesystem::path dir;
  if (const char* env = std::getenv("NEXA_MINILM_DIR"); env && *env) {
    dir = env;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    dir = std::filesystem::path(home) / ".cache" / "nexa" / "all-MiniLM-L6-v2";
  } else {
    return std::nullopt;
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(dir / "vocab.txt", ec)) return std::nullopt;
  return dir;
}

// The message of the nexa::Error that f() throws ("" when it throws none).
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const nexa::Error& e) {
    return e.what();
  }
  return {};
}

inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// A fresh directory under the system temp dir, removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::random_device device;
    path_ = std::filesystem::temp_directory_path() /
            ("nexa_tokenizer_test_" + std::to_string(device()) + "_" + std::to_string(device()));
    std::filesystem::create_directories(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace nexa::tokenizer_testing
