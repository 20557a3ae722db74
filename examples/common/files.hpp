#pragma once
// Whole-file reads for the example programs: a file's bytes, or nexa::Error "<module>: cannot
// open <path>" / "<module>: error reading <path>".
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "nexa/core/error.hpp"

namespace examples {

[[nodiscard]] inline std::string read_file(const std::filesystem::path& path, std::string_view module) {
  std::ifstream in(path, std::ios::binary);
  nexa::require(static_cast<bool>(in), module, "cannot open ", path.string());
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nexa::require(!in.bad(), module, "error reading ", path.string());
  return data;
}

}  // namespace examples
