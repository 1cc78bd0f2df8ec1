#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "engine/report/render_internal.h"

namespace driftscope::render_internal {

namespace {

const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                          "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
                          "#7f7f7f", "#bcbd22"};

}  // namespace

std::string Esc(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A line plot as inline SVG. With log_y, values ≤ 0 are drawn on a floor
// line a decade below the smallest positive value, labelled "0".
std::string LinePlot(const std::string& title, const std::string& xlabel,
                     const std::string& ylabel,
                     const std::vector<Series>& series, bool log_y, int x0) {
  const double W = 720, H = 300, L = 70, R = 170, T = 30, B = 45;
  double ymin = std::numeric_limits<double>::infinity(), ymax = -ymin;
  size_t n = 0;
  bool has_zero = false;
  for (const Series& s : series) {
    n = std::max(n, s.y.size());
    for (double v : s.y) {
      if (!std::isfinite(v)) continue;
      if (log_y && v <= 0) {
        has_zero = true;
        continue;
      }
      ymin = std::min(ymin, v);
      ymax = std::max(ymax, v);
    }
  }
  std::string svg = absl::StrFormat(
      "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" "
      "height=\"%g\" viewBox=\"0 0 %g %g\" role=\"img\" aria-label=\"%s\">"
      "<text x=\"%g\" y=\"18\" class=\"title\">%s</text>",
      W, H, W, H, Esc(title), L, Esc(title));
  if (n == 0 || !std::isfinite(ymin)) {
    if (has_zero) {
      ymin = ymax = 1;
    } else {
      return svg +
             absl::StrFormat("<text x=\"%g\" y=\"%g\">no data</text></svg>", L,
                             H / 2);
    }
  }
  double floor_v = ymin;
  if (log_y) {
    ymin = std::log10(ymin);
    ymax = std::log10(ymax);
    if (has_zero) {
      ymin -= 1;
      floor_v = ymin;
    }
    ymin = std::floor(ymin);
    ymax = std::ceil(ymax);
    if (ymax <= ymin) ymax = ymin + 1;
  } else {
    if (ymax == ymin) {
      ymax += std::max(1e-12, std::fabs(ymax) * 0.1);
      ymin -= std::max(1e-12, std::fabs(ymin) * 0.1);
    }
  }
  auto px = [&](double i) {
    return L + (n > 1 ? i / double(n - 1) : 0.5) * (W - L - R);
  };
  auto py = [&](double v) {
    double t;
    if (log_y) {
      t = v <= 0 ? floor_v : std::log10(v);
    } else {
      t = v;
    }
    return T + (1 - (t - ymin) / (ymax - ymin)) * (H - T - B);
  };
  // Axes and ticks.
  absl::StrAppendFormat(&svg,
                        "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" "
                        "class=\"axis\"/><line x1=\"%g\" y1=\"%g\" x2=\"%g\" "
                        "y2=\"%g\" class=\"axis\"/>",
                        L, T, L, H - B, L, H - B, W - R, H - B);
  const int yticks = 5;
  for (int k = 0; k <= yticks; ++k) {
    const double t = ymin + (ymax - ymin) * k / yticks;
    const double y = T + (1 - double(k) / yticks) * (H - T - B);
    std::string label =
        log_y ? absl::StrFormat("1e%d", int(std::lround(t))) : Num(t);
    if (log_y && std::fabs(t - std::round(t)) > 1e-9)
      label = Num(std::pow(10, t));
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" "
                          "class=\"grid\"/><text x=\"%g\" y=\"%g\" "
                          "class=\"tick\" text-anchor=\"end\">%s</text>",
                          L, y, W - R, y, L - 5, y + 4, label);
  }
  const int xt = static_cast<int>(std::min<size_t>(n, 10));
  for (int k = 0; k < xt; ++k) {
    const double i = xt > 1 ? double(k) * (n - 1) / (xt - 1) : 0;
    absl::StrAppendFormat(&svg,
                          "<text x=\"%g\" y=\"%g\" class=\"tick\" "
                          "text-anchor=\"middle\">%d</text>",
                          px(i), H - B + 15, int(std::lround(i)) + x0);
  }
  absl::StrAppendFormat(&svg,
                        "<text x=\"%g\" y=\"%g\" class=\"label\" "
                        "text-anchor=\"middle\">%s</text>",
                        (L + W - R) / 2, H - 8, Esc(xlabel));
  absl::StrAppendFormat(&svg,
                        "<text x=\"14\" y=\"%g\" class=\"label\" "
                        "transform=\"rotate(-90 14 %g)\" "
                        "text-anchor=\"middle\">%s</text>",
                        (T + H - B) / 2, (T + H - B) / 2, Esc(ylabel));
  if (log_y && has_zero) {
    absl::StrAppendFormat(&svg,
                          "<text x=\"%g\" y=\"%g\" class=\"tick\">0 "
                          "(identical)</text>",
                          W - R + 4, py(0) + 4);
  }
  // Series.
  for (size_t s = 0; s < series.size(); ++s) {
    const char* color = kPalette[s % 10];
    std::vector<std::string> pts;
    for (size_t i = 0; i < series[s].y.size(); ++i) {
      const double v = series[s].y[i];
      if (!std::isfinite(v)) continue;
      pts.push_back(absl::StrFormat("%.1f,%.1f", px(double(i)), py(v)));
    }
    if (pts.size() == 1) {
      absl::StrAppendFormat(&svg, "<circle cx=\"%s\" r=\"3\" fill=\"%s\"/>",
                            absl::StrReplaceAll(pts[0], {{",", "\" cy=\""}}),
                            color);
    } else if (!pts.empty()) {
      absl::StrAppendFormat(&svg,
                            "<polyline fill=\"none\" stroke=\"%s\" "
                            "stroke-width=\"1.6\" points=\"%s\"/>",
                            color, absl::StrJoin(pts, " "));
    }
    absl::StrAppendFormat(&svg,
                          "<rect x=\"%g\" y=\"%g\" width=\"12\" height=\"3\" "
                          "fill=\"%s\"/><text x=\"%g\" y=\"%g\" "
                          "class=\"legend\">%s</text>",
                          W - R + 10, T + 14 * s + 4, color, W - R + 26,
                          T + 14 * s + 9, Esc(series[s].name));
  }
  return svg + "</svg>";
}

std::string Heatmap(const std::string& title,
                    const std::vector<std::string>& names,
                    const std::vector<std::vector<double>>& m) {
  const size_t n = names.size();
  const double cell = 56, L = 130, T = 40;
  const double W = L + cell * n + 20, H = T + cell * n + 30;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& row : m)
    for (double v : row)
      if (std::isfinite(v) && v > 0) {
        lo = std::min(lo, std::log10(v));
        hi = std::max(hi, std::log10(v));
      }
  if (!std::isfinite(lo)) lo = hi = 0;
  std::string svg = absl::StrFormat(
      "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" "
      "height=\"%g\" viewBox=\"0 0 %g %g\" role=\"img\" aria-label=\"%s\">"
      "<text x=\"10\" y=\"18\" class=\"title\">%s</text>",
      W, H, W, H, Esc(title), Esc(title));
  for (size_t i = 0; i < n; ++i) {
    absl::StrAppendFormat(&svg,
                          "<text x=\"%g\" y=\"%g\" class=\"tick\" "
                          "text-anchor=\"end\">%s</text>",
                          L - 6, T + cell * i + cell / 2 + 4, Esc(names[i]));
    absl::StrAppendFormat(&svg,
                          "<text x=\"%g\" y=\"%g\" class=\"tick\" "
                          "text-anchor=\"middle\">%s</text>",
                          L + cell * i + cell / 2, T + cell * n + 16,
                          Esc(names[i].substr(0, 9)));
    for (size_t j = 0; j < n; ++j) {
      const double v = i < m.size() && j < m[i].size() ? m[i][j] : NAN;
      std::string fill = "#eeeeee";
      if (std::isfinite(v) && v > 0) {
        const double t = hi > lo ? (std::log10(v) - lo) / (hi - lo) : 1.0;
        const int r = 255, g = int(230 - 180 * t), b = int(200 - 180 * t);
        fill =
            absl::StrFormat("#%02x%02x%02x", r, std::max(g, 0), std::max(b, 0));
      } else if (v == 0) {
        fill = "#ffffff";
      }
      absl::StrAppendFormat(
          &svg,
          "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"%s\" "
          "stroke=\"#999\"/><text x=\"%g\" y=\"%g\" class=\"cell\" "
          "text-anchor=\"middle\">%s</text>",
          L + cell * j, T + cell * i, cell, cell, fill, L + cell * j + cell / 2,
          T + cell * i + cell / 2 + 4, Num(v));
    }
  }
  return svg + "</svg>";
}

std::string UlpBars(const std::string& title,
                    const std::vector<PairDrift>& pairs) {
  size_t buckets = 1;
  for (const PairDrift& p : pairs) {
    const auto& h = p.outputs.overall.ulp_histogram;
    for (size_t b = 0; b < h.size(); ++b)
      if (h[b]) buckets = std::max(buckets, b + 1);
  }
  std::vector<Series> series;
  for (const PairDrift& p : pairs) {
    Series s{p.environment, {}};
    const auto& h = p.outputs.overall.ulp_histogram;
    const double total = std::max<int64_t>(1, p.outputs.overall.numeric);
    for (size_t b = 0; b < buckets; ++b) s.y.push_back(h[b] / total);
    series.push_back(s);
  }
  // Grouped bars: one group per bucket, one bar per environment.
  const double W = 720, H = 300, L = 70, R = 170, T = 30, B = 55;
  const double gw = (W - L - R) / double(buckets);
  const double bw = std::max(1.0, gw / (series.size() + 1));
  std::string svg = absl::StrFormat(
      "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" "
      "height=\"%g\" viewBox=\"0 0 %g %g\" role=\"img\" aria-label=\"%s\">"
      "<text x=\"%g\" y=\"18\" class=\"title\">%s</text>"
      "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" class=\"axis\"/>",
      W, H, W, H, Esc(title), L, Esc(title), L, H - B, W - R, H - B);
  for (int k = 0; k <= 4; ++k) {
    const double y = T + (1 - k / 4.0) * (H - T - B);
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" "
                          "class=\"grid\"/><text x=\"%g\" y=\"%g\" "
                          "class=\"tick\" text-anchor=\"end\">%d%%</text>",
                          L, y, W - R, y, L - 5, y + 4, k * 25);
  }
  const size_t label_every = buckets > 12 ? (buckets + 11) / 12 : 1;
  for (size_t b = 0; b < buckets; ++b) {
    const std::string label = b == 0   ? "0"
                              : b == 1 ? "1"
                                       : absl::StrCat("2^", b - 1);
    absl::StrAppendFormat(&svg,
                          "<text x=\"%g\" y=\"%g\" class=\"tick\" "
                          "text-anchor=\"middle\">%s</text>",
                          L + gw * b + gw / 2, H - B + 15,
                          b % label_every == 0 ? label : std::string());
    for (size_t s = 0; s < series.size(); ++s) {
      const double v = series[s].y[b];
      const double h = v * (H - T - B);
      absl::StrAppendFormat(
          &svg,
          "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" "
          "fill=\"%s\"><title>%s: %.4g%%</title></rect>",
          L + gw * b + bw * (s + 0.5), H - B - h, bw * 0.9, h, kPalette[s % 10],
          Esc(series[s].name), 100 * v);
    }
  }
  for (size_t s = 0; s < series.size(); ++s) {
    absl::StrAppendFormat(&svg,
                          "<rect x=\"%g\" y=\"%g\" width=\"12\" height=\"8\" "
                          "fill=\"%s\"/><text x=\"%g\" y=\"%g\" "
                          "class=\"legend\">%s</text>",
                          W - R + 10, T + 14 * s, kPalette[s % 10], W - R + 26,
                          T + 14 * s + 8, Esc(series[s].name));
  }
  absl::StrAppendFormat(&svg,
                        "<text x=\"%g\" y=\"%g\" class=\"label\" "
                        "text-anchor=\"middle\">ULP distance bucket (lower "
                        "bound)</text>",
                        (L + W - R) / 2, H - 12);
  return svg + "</svg>";
}

}  // namespace driftscope::render_internal
