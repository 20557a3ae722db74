#pragma once
// File helpers for the example programs: a whole file's bytes (or nexa::Error "<module>: cannot
// open <path>" / "<module>: error reading <path>"), a whole file written atomically, and lines.
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>

#include "nexa/core/error.hpp"
#include "nexa/io/file.hpp"

namespace examples {

[[nodiscard]] inline std::string read_file(const std::filesystem::path& path, std::string_view module) {
  std::error_code ec;
  nexa::require(std::filesystem::is_regular_file(path, ec), module, "cannot open ", path.string(),
                std::filesystem::is_directory(path, ec) ? " (a directory)" : "");
  std::ifstream in(path, std::ios::binary);
  nexa::require(static_cast<bool>(in), module, "cannot open ", path.string());
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nexa::require(!in.bad(), module, "error reading ", path.string());
  return data;
}

// Writes `text` to `path` (parent folders created), through a temporary file renamed into place,
// so a failure never leaves a half-written file.
inline void write_file(const std::filesystem::path& path, std::string_view text, std::string_view module) {
  if (path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    nexa::require(!ec, module, "cannot create ", path.parent_path().string(), ": ", ec.message());
  }
  nexa::detail::AtomicFileWriter writer(path, nexa::detail::io_context(module, path));
  writer.write(text);
  writer.commit();
}

// Calls f(line, line_no) for every line of `text` (numbered from 1; a final line needs no
// newline; a trailing '\r' is dropped, so CRLF files read the same).
template <class F>
void for_each_line(std::string_view text, F&& f) {
  std::size_t start = 0, line_no = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    f(line, line_no);
  }
}

}  // namespace examples
