#pragma once
// Small formatting helpers the example programs share for progress lines, tables and JSON lines.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "nexa/core/error.hpp"

namespace examples {

// One number through a printf format ("%.4f").
inline std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// Whole seconds as "42s" or "3m07s".
inline std::string duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  return s >= 60 ? nexa::detail::concat(s / 60, "m", s % 60 < 10 ? "0" : "", s % 60, "s")
                 : nexa::detail::concat(s, "s");
}

// A JSON array of numbers, each through `format`; NaN and infinities (an empty set's accuracy)
// become null, which JSON has and they are not.
inline std::string json_array(const std::vector<double>& v, const char* format = "%.4f") {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += ',';
    out += std::isfinite(v[i]) ? fmt(format, v[i]) : std::string("null");
  }
  return out + "]";
}

}  // namespace examples
