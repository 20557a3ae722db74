#pragma once
// svg_plot.hpp: line charts as a standalone SVG file, so the example trainers can draw their
// curves without a plotting library.
//
//   svg::Chart loss{.title = "training loss", .x_label = "step", .y_label = "cross-entropy"};
//   loss.series.push_back({.name = "dense", .points = {{0, 9.1}, {10, 7.3}}});
//   examples::write_file(out / "curves.svg", svg::render({loss, load}), "nexa-moe");
//
// Charts are laid out side by side, each with its own axes (nice round ticks), a legend and a
// palette colour per series (or Series::color). Non-finite points are skipped. Series with a
// dashed style draw the same way as solid ones, with stroke-dasharray.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/io/json.hpp"

namespace svg {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y)
  std::string color = {};                         // empty: the palette's next colour
  bool dashed = false;
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
};

namespace detail {

inline constexpr std::array<std::string_view, 8> kPalette = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                                             "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

// Markup-safe text (the JSON escaper covers quotes and backslashes; SVG needs &, < and >).
inline std::string text(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// A tick's value for its label: the sum of steps leaves rounding (6.9e-18 where 0 is meant).
inline double tick_label(double v, double step) { return std::abs(v) < step * 1e-9 ? 0.0 : v; }

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over span.
inline double tick_step(double span, int target) {
  const double raw = span / target, mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  void settle() {
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12) lo -= 0.5, hi += 0.5;
  }
};

inline void render_chart(const Chart& c, double ox, double width, double height, std::string& out) {
  constexpr double left = 62, right = 16, top = 34, bottom = 48;
  const double pw = width - left - right, ph = height - top - bottom;
  Range xr, yr;
  for (const Series& s : c.series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) xr.add(x), yr.add(y);
  xr.settle();
  yr.settle();
  const double ys = tick_step(yr.hi - yr.lo, 6), xs = tick_step(xr.hi - xr.lo, 6);
  yr.lo = std::floor(yr.lo / ys) * ys;
  yr.hi = std::ceil(yr.hi / ys) * ys;
  const auto px = [&](double x) { return ox + left + (x - xr.lo) / (xr.hi - xr.lo) * pw; };
  const auto py = [&](double y) { return top + (yr.hi - y) / (yr.hi - yr.lo) * ph; };

  out += nexa::detail::concat("<text x=\"", num(ox + left + pw / 2), "\" y=\"20\" text-anchor=\"middle\" ",
                              "font-size=\"15\" font-weight=\"bold\">", text(c.title), "</text>\n");
  out += nexa::detail::concat("<rect x=\"", num(ox + left), "\" y=\"", num(top), "\" width=\"", num(pw), "\" height=\"",
                              num(ph), "\" fill=\"none\" stroke=\"#444\"/>\n");
  for (double y = yr.lo; y <= yr.hi + ys / 2; y += ys) {
    out += nexa::detail::concat("<line x1=\"", num(ox + left), "\" x2=\"", num(ox + left + pw), "\" y1=\"", num(py(y)),
                                "\" y2=\"", num(py(y)), "\" stroke=\"#ddd\"/>");
    out += nexa::detail::concat("<text x=\"", num(ox + left - 6), "\" y=\"", num(py(y) + 4),
                                "\" text-anchor=\"end\" font-size=\"11\">", num(tick_label(y, ys)), "</text>\n");
  }
  for (double x = std::ceil(xr.lo / xs) * xs; x <= xr.hi + xs / 1e6; x += xs)
    out += nexa::detail::concat("<text x=\"", num(px(x)), "\" y=\"", num(top + ph + 16),
                                "\" text-anchor=\"middle\" font-size=\"11\">", num(tick_label(x, xs)), "</text>\n");
  out += nexa::detail::concat("<text x=\"", num(ox + left + pw / 2), "\" y=\"", num(height - 10),
                              "\" text-anchor=\"middle\" font-size=\"12\">", text(c.x_label), "</text>\n");
  out += nexa::detail::concat("<text transform=\"translate(", num(ox + 16), ",", num(top + ph / 2),
                              ") rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">", text(c.y_label), "</text>\n");
  for (std::size_t i = 0; i < c.series.size(); ++i) {
    const Series& s = c.series[i];
    const std::string color = s.color.empty() ? std::string(kPalette[i % kPalette.size()]) : s.color;
    std::string path;
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      path += nexa::detail::concat(path.empty() ? "M" : " L", num(px(x)), ",", num(py(y)));
    }
    if (!path.empty())
      out += nexa::detail::concat("<path d=\"", path, "\" fill=\"none\" stroke=\"", color, "\" stroke-width=\"1.6\"",
                                  s.dashed ? " stroke-dasharray=\"5,3\"" : "", "/>\n");
    // The legend sits in the top-right corner, as wide as its longest name (about 6.5 px a character).
    std::size_t longest = 0;
    for (const Series& other : c.series) longest = std::max(longest, other.name.size());
    const double ly = top + 14 + 16 * static_cast<double>(i),
                 lx = ox + left + pw - 36 - 6.5 * static_cast<double>(longest);
    out += nexa::detail::concat("<line x1=\"", num(lx), "\" x2=\"", num(lx + 18), "\" y1=\"", num(ly - 4), "\" y2=\"",
                                num(ly - 4), "\" stroke=\"", color, "\" stroke-width=\"2\"",
                                s.dashed ? " stroke-dasharray=\"5,3\"" : "", "/>");
    out += nexa::detail::concat("<text x=\"", num(lx + 24), "\" y=\"", num(ly), "\" font-size=\"11\">", text(s.name),
                                "</text>\n");
  }
}

}  // namespace detail

// The charts side by side, each `width` x `height` pixels.
[[nodiscard]] inline std::string render(const std::vector<Chart>& charts, double width = 520, double height = 360) {
  nexa::require(!charts.empty(), "svg", "nothing to plot: no charts");
  const double total = width * static_cast<double>(charts.size());
  std::string out = nexa::detail::concat("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", detail::num(total),
                                         "\" height=\"", detail::num(height), "\" font-family=\"sans-serif\">\n",
                                         "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
  for (std::size_t i = 0; i < charts.size(); ++i)
    detail::render_chart(charts[i], width * static_cast<double>(i), width, height, out);
  out += "</svg>\n";
  return out;
}

}  // namespace svg
