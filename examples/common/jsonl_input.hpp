#pragma once
// jsonl_input.hpp: the JSON-lines input of the example CLIs (nexa-route, nexa-generate): a file or
// standard input, one object per line, each with a string "text". A malformed line is reported on
// standard error as "<program>: line N: <what> (skipped)" and the rest go on: the caller returns
// exit code 2 when any was skipped.
//
//   examples::InputLines input(opt.input);            // std::optional<path>: standard input when empty
//   const std::size_t malformed = examples::for_each_text_line(input.stream(), kProgram,
//       [&](const examples::TextLine& line, const nexa::json::Value& object) { ... });  // may throw nexa::Error
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "nexa/core/error.hpp"
#include "nexa/io/json.hpp"

namespace examples {

class InputLines {
 public:
  explicit InputLines(const std::optional<std::filesystem::path>& path) {
    if (!path) return;
    file_.open(*path);
    nexa::require(file_.is_open(), "--input", "cannot open ", path->string());
    from_file_ = true;
  }
  [[nodiscard]] std::istream& stream() { return from_file_ ? static_cast<std::istream&>(file_) : std::cin; }

 private:
  std::ifstream file_;
  bool from_file_ = false;
};

struct TextLine {
  std::size_t number = 0;  // from 1
  std::string where;       // "line N", for error messages
  std::string text;
};

// Calls f(line, object) for every non-blank line; returns the number of malformed lines (not
// JSON, no string "text", or f threw nexa::Error), each reported on standard error.
template <class F>
std::size_t for_each_text_line(std::istream& in, std::string_view program, F&& f) {
  std::size_t malformed = 0, number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    TextLine item{number, nexa::detail::concat("line ", number), {}};
    try {
      const nexa::json::Value v = nexa::json::parse(line, item.where);
      const nexa::json::Value* text = v.is_object() ? v.find("text") : nullptr;
      nexa::require(text && text->is_string(), item.where, "expected an object with a string \"text\"");
      item.text = text->string;
      f(item, v);
    } catch (const nexa::Error& e) {
      ++malformed;
      std::fprintf(stderr, "%.*s: %s (skipped)\n", static_cast<int>(program.size()), program.data(), e.what());
    }
  }
  if (malformed > 0)
    std::fprintf(stderr, "%.*s: %zu malformed line%s skipped\n", static_cast<int>(program.size()), program.data(),
                 malformed, malformed == 1 ? "" : "s");
  return malformed;
}

}  // namespace examples
