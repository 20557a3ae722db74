// mgf.hpp: reads MS/MS spectra in Mascot Generic Format (MGF), the plain-text format that
// spectral libraries and search engines exchange:
//   BEGIN IONS
//   TITLE=...            any KEY=VALUE; PEPMASS (precursor m/z, optionally followed by its
//   PEPMASS=457.72       intensity) and CHARGE (e.g. 2+) are kept, the others ignored
//   CHARGE=2+
//   147.29 3.43          one peak per line: m/z and intensity (a third column, the fragment
//   ...                  charge, is allowed and ignored)
//   END IONS
// Outside BEGIN/END, blank lines, comments (#, ;, !, /) and global KEY=VALUE lines are skipped.
// Every malformation raises nexa::Error "mgf: <name>:<line>: <what>": a peak line that is not
// two or three numbers, a negative or non-finite value, BEGIN inside a spectrum, END outside one,
// a file that ends inside a spectrum, a PEPMASS that is not a number.
#pragma once

#include <charconv>
#include <cmath>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "../common/files.hpp"
#include "nexa/core/error.hpp"

namespace nexa_spec {

struct Spectrum {
  std::string source = {};  // the file's name, for the split and messages
  std::string title = {};
  double precursor_mz = 0;  // 0 when the file gives none
  int charge = 0;           // 0 when the file gives none
  std::vector<double> mz = {}, intensity = {};
};

namespace mgf_detail {

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits on blanks and tabs.
inline std::vector<std::string_view> fields(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// A finite number and nothing else, or false.
inline bool number(std::string_view s, double& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && std::isfinite(out);
}

}  // namespace mgf_detail

// Parses MGF text; `name` appears in error messages and as each spectrum's source.
[[nodiscard]] inline std::vector<Spectrum> parse_mgf(std::string_view text, const std::string& name) {
  using namespace mgf_detail;
  std::vector<Spectrum> out;
  bool inside = false;
  std::size_t begin_line = 0;
  Spectrum current;
  examples::for_each_line(text, [&](std::string_view raw, std::size_t line_no) {
    const auto fail = [&](const auto&... what) {
      throw nexa::Error(nexa::detail::concat("mgf: ", name, ":", line_no, ": ", what...));
    };
    const std::string_view line = trim(raw);
    if (line.empty()) return;
    if (line == "BEGIN IONS") {
      if (inside) fail("BEGIN IONS inside the spectrum that began on line ", begin_line);
      inside = true;
      begin_line = line_no;
      current = Spectrum{.source = name};
      return;
    }
    if (line == "END IONS") {
      if (!inside) fail("END IONS without BEGIN IONS");
      inside = false;
      out.push_back(std::move(current));
      return;
    }
    const char first = line.front();
    const bool starts_number = (first >= '0' && first <= '9') || first == '.' || first == '-' || first == '+';
    if (!inside) {
      if (first == '#' || first == ';' || first == '!' || first == '/' || line.find('=') != std::string_view::npos)
        return;
      fail("expected BEGIN IONS, a KEY=VALUE line or a comment, got '", line, "'");
    }
    if (!starts_number) {
      const std::size_t eq = line.find('=');
      if (eq == std::string_view::npos) fail("expected a peak (m/z intensity) or KEY=VALUE, got '", line, "'");
      const std::string_view key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
      if (key == "TITLE") {
        current.title = std::string(value);
      } else if (key == "PEPMASS") {
        const std::vector<std::string_view> parts = fields(value);
        if (parts.empty() || !number(parts[0], current.precursor_mz) || current.precursor_mz < 0)
          fail("PEPMASS expects a non-negative m/z, got '", value, "'");
      } else if (key == "CHARGE") {
        std::string_view digits = value;
        while (!digits.empty() && (digits.back() == '+' || digits.back() == '-')) digits.remove_suffix(1);
        int charge = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), charge);
        // Multiple charges ("2+ and 3+") leave the charge unknown (0).
        current.charge = (ec == std::errc() && end == digits.data() + digits.size()) ? charge : 0;
      }
      return;
    }
    const std::vector<std::string_view> parts = fields(line);
    double mz = 0, intensity = 0;
    if ((parts.size() != 2 && parts.size() != 3) || !number(parts[0], mz) || !number(parts[1], intensity))
      fail("expected a peak 'm/z intensity', got '", line, "'");
    if (mz < 0 || intensity < 0) fail("m/z and intensity must be non-negative, got '", line, "'");
    current.mz.push_back(mz);
    current.intensity.push_back(intensity);
  });
  if (inside)
    throw nexa::Error(
        nexa::detail::concat("mgf: ", name, ": the spectrum that began on line ", begin_line, " has no END IONS"));
  return out;
}

[[nodiscard]] inline std::vector<Spectrum> read_mgf(const std::filesystem::path& path) {
  return parse_mgf(examples::read_file(path, "mgf"), path.filename().string());
}

}  // namespace nexa_spec
