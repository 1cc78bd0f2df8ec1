#include "engine/report/report_render.h"

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

namespace driftscope {

namespace {

// ---------------------------------------------------------------- text ---

std::string Num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return "0";
  return absl::StrFormat("%.3g", v);
}

std::string Cause(const PairDrift& p) {
  if (p.attribution == "numerics") {
    return absl::StrCat("numerics from step ", p.first_divergent_step);
  }
  return p.attribution;
}

std::string Pad(const std::string& s, size_t w, bool right = false) {
  if (s.size() >= w) return s;
  return right ? std::string(w - s.size(), ' ') + s
               : s + std::string(w - s.size(), ' ');
}

}  // namespace

std::string FormatTable(const std::vector<std::vector<std::string>>& rows,
                        const std::vector<bool>& right_align) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t c = 0; c < r.size(); ++c)
      width[c] = std::max(width[c], r[c].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t c = 0; c < r.size(); ++c) {
      if (c) line += "  ";
      const bool right = c < right_align.size() && right_align[c];
      line += Pad(r[c], c + 1 == r.size() && !right ? 0 : width[c], right);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

namespace {

// ---------------------------------------------------------------- html ---

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

const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                          "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
                          "#7f7f7f", "#bcbd22"};

struct Series {
  std::string name;
  std::vector<double> y;  // x = index (+ x0)
};

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

const RunRecord* FirstRecord(const std::vector<RunRecord>& records,
                             const std::string& name) {
  for (const RunRecord& r : records)
    if (r.name == name) return &r;
  return nullptr;
}

}  // namespace

std::string RenderTable(const DriftReport& report,
                        const std::vector<RunRecord>& records,
                        const RenderOptions& options) {
  const char* green = options.color ? "\033[32m" : "";
  const char* red = options.color ? "\033[31m" : "";
  const char* bold = options.color ? "\033[1m" : "";
  const char* reset = options.color ? "\033[0m" : "";
  std::string out = absl::StrCat(bold, options.title, reset, "\n");
  absl::StrAppend(&out, "reference: ", report.reference, " (",
                  report.reference_profile,
                  "; chosen: ", report.reference_reason, ")\n");
  absl::StrAppend(&out, "tolerance: |a - r| <= ", Num(report.atol), " + ",
                  Num(report.rtol), " * |r|");
  if (report.max_ulp) absl::StrAppend(&out, ", max ULP <= ", *report.max_ulp);
  absl::StrAppend(&out, "\n\n");

  std::vector<std::vector<std::string>> rows = {
      {"environment", "bitwise", "differ", "rel L2", "max |d|", "max rel",
       "max ULP", "med ULP", "sig bits", "loss max |d|", "vs noise", "cause",
       "verdict"}};
  for (const PairDrift& p : report.pairs) {
    if (!p.error.empty()) {
      rows.push_back({p.environment, "-", "-", "-", "-", "-", "-", "-", "-",
                      "-", "-", p.error, "FAIL"});
      continue;
    }
    const DriftStats& s = p.outputs.overall;
    rows.push_back({p.environment, p.outputs.bitwise_identical ? "yes" : "no",
                    absl::StrFormat("%.1f%%", 100 * s.differing_fraction),
                    Num(s.rel_l2), Num(s.max_abs), Num(s.max_rel),
                    absl::StrCat(s.max_ulp), Num(s.median_ulp),
                    absl::StrFormat("%.1f", s.mean_sig_bits),
                    Num(p.loss.max_abs),
                    !p.drift_to_noise ? "-"
                    : std::isinf(*p.drift_to_noise)
                        ? "floor 0"
                        : absl::StrCat(Num(*p.drift_to_noise), "x"),
                    Cause(p), p.pass ? "pass" : "FAIL"});
  }
  std::string table =
      FormatTable(rows, {false, false, true, true, true, true, true, true, true,
                         true, true, false, false});
  if (options.color) {
    table = absl::StrReplaceAll(
        table, {{"  FAIL\n", absl::StrCat("  ", red, "FAIL", reset, "\n")},
                {"  pass\n", absl::StrCat("  ", green, "pass", reset, "\n")}});
  }
  out += table;

  // Where along the sequence: the per-timestep rel L2 of each environment.
  bool any_t = false;
  for (const PairDrift& p : report.pairs)
    any_t |= !p.outputs.per_timestep.empty();
  if (any_t) {
    absl::StrAppend(
        &out, "\nrelative L2 along the sequence (t = first, middle, last):\n");
    std::vector<std::vector<std::string>> trows = {
        {"environment", "t=0", "t=mid", "t=last", "growth"}};
    for (const PairDrift& p : report.pairs) {
      const auto& c = p.outputs.per_timestep;
      if (c.empty()) continue;
      const double a = c.front().rel_l2, m = c[c.size() / 2].rel_l2,
                   z = c.back().rel_l2;
      trows.push_back({p.environment, Num(a), Num(m), Num(z),
                       a > 0 ? absl::StrCat(Num(z / a), "x") : "-"});
    }
    out += FormatTable(trows, {false, true, true, true, true});
  }

  if (report.environments.size() > 1) {
    absl::StrAppend(&out, "\nrelative L2 between environments:\n");
    std::vector<std::vector<std::string>> mrows;
    std::vector<std::string> head = {""};
    for (const std::string& e : report.environments) head.push_back(e);
    mrows.push_back(head);
    for (size_t i = 0; i < report.environments.size(); ++i) {
      std::vector<std::string> r = {report.environments[i]};
      for (size_t j = 0; j < report.environments.size(); ++j) {
        r.push_back(Num(report.rel_l2_matrix[i][j]));
      }
      mrows.push_back(r);
    }
    out += FormatTable(mrows, std::vector<bool>(head.size(), true));
  }
  if (!report.repeatability.empty()) {
    absl::StrAppend(&out,
                    "\nrepeatability (spread among repeats = noise floor):\n");
    std::vector<std::vector<std::string>> rrows = {
        {"environment", "repeats", "bitwise", "max rel L2", "max ULP"}};
    for (const RepeatGroup& g : report.repeatability) {
      rrows.push_back({g.environment, absl::StrCat(g.repeats),
                       g.bitwise_repeatable ? "yes" : "no", Num(g.max_rel_l2),
                       absl::StrCat(g.max_ulp)});
    }
    out += FormatTable(rrows, {false, true, false, true, true});
  }
  absl::StrAppend(&out, "\nverdict: ", report.pass ? green : red,
                  report.pass ? "PASS" : "FAIL", reset,
                  report.pass ? " (every environment within tolerance)"
                              : " (drift above tolerance)",
                  "\n");
  (void)records;
  return out;
}

std::string RenderHtml(const DriftReport& report,
                       const std::vector<RunRecord>& records,
                       const RenderOptions& options) {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>" +
      Esc(options.title) +
      "</title><style>"
      "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:"
      "1100px}"
      "table{border-collapse:collapse;margin:8px 0 20px}"
      "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
      "td.cause{min-width:220px}"
      "th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:"
      "tabular-nums}"
      ".pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:"
      "bold}"
      "svg.plot{display:block;margin:10px 0 24px;background:#fff}"
      "svg .title{font-size:14px;font-weight:bold}svg "
      ".tick{font-size:10px;fill:#444}"
      "svg .label{font-size:11px;fill:#333}svg .legend{font-size:11px}"
      "svg .cell{font-size:10px}svg .axis{stroke:#333}svg .grid{stroke:#e5e5e5}"
      "</style></head><body>\n";
  absl::StrAppend(&h, "<h1>", Esc(options.title), "</h1>\n");
  absl::StrAppend(&h, "<p>Reference: <b>", Esc(report.reference), "</b> (",
                  Esc(report.reference_profile),
                  "; chosen: ", Esc(report.reference_reason),
                  "). Tolerance: |a &minus; r| "
                  "&le; ",
                  Num(report.atol), " + ", Num(report.rtol), "&middot;|r|");
  if (report.max_ulp) absl::StrAppend(&h, ", max ULP &le; ", *report.max_ulp);
  absl::StrAppend(&h, ". Verdict: <span class=\"",
                  report.pass ? "pass" : "fail", "\">",
                  report.pass ? "PASS" : "FAIL", "</span></p>\n");

  // Verdict and attribution.
  absl::StrAppend(&h,
                  "<h2>Drift against the reference</h2><table><tr>"
                  "<th>environment</th><th>profile</th><th>bitwise</th>"
                  "<th>differing</th><th>rel L2</th><th>max |&Delta;|</th>"
                  "<th>max ULP</th><th>median ULP</th><th>sig. bits</th>"
                  "<th>first divergent step</th><th>cause</th>"
                  "<th>drift / noise</th><th>verdict</th></tr>\n");
  for (const PairDrift& p : report.pairs) {
    const DriftStats& s = p.outputs.overall;
    absl::StrAppend(
        &h, "<tr><td>", Esc(p.environment), "</td><td>", Esc(p.profile),
        "</td><td>",
        p.error.empty() ? (p.outputs.bitwise_identical ? "yes" : "no") : "-",
        "</td><td class=n>",
        absl::StrFormat("%.2f%%", 100 * s.differing_fraction),
        "</td><td class=n>", Num(s.rel_l2), "</td><td class=n>", Num(s.max_abs),
        "</td><td class=n>", s.max_ulp, "</td><td class=n>", Num(s.median_ulp),
        "</td><td class=n>", absl::StrFormat("%.1f", s.mean_sig_bits),
        "</td><td class=n>",
        p.first_divergent_step < 0 ? std::string("never")
                                   : absl::StrCat(p.first_divergent_step),
        "</td><td class=cause>", Esc(Cause(p)),
        p.attribution_detail.empty() ? "" : "<br><small>",
        Esc(p.attribution_detail),
        p.attribution_detail.empty() ? "" : "</small>", "</td><td class=n>",
        p.drift_to_noise ? absl::StrCat(Num(*p.drift_to_noise), "&times;")
                         : "-",
        "</td><td class=\"", p.pass ? "pass" : "fail", "\">",
        p.pass ? "pass" : "FAIL",
        p.error.empty() ? "" : " (" + Esc(p.error) + ")", "</td></tr>\n");
  }
  absl::StrAppend(&h, "</table>\n");

  // Plots.
  std::vector<Series> per_t, per_epoch;
  for (const PairDrift& p : report.pairs) {
    Series s{p.environment, {}};
    for (const DriftStats& st : p.outputs.per_timestep)
      s.y.push_back(st.rel_l2);
    if (!s.y.empty()) per_t.push_back(s);
    Series e{p.environment, {}};
    for (const ArrayDrift& a : p.epochs) e.y.push_back(a.overall.rel_l2);
    if (!e.y.empty()) per_epoch.push_back(e);
  }
  absl::StrAppend(&h, "<h2>Where along the sequence</h2>\n",
                  LinePlot("Drift per timestep (relative L2 vs reference)",
                           "timestep t", "relative L2 (log)", per_t, true, 0));
  absl::StrAppend(&h, "<h2>When in training</h2>\n",
                  LinePlot("Drift per epoch (eval outputs after each epoch)",
                           "epoch", "relative L2 (log)", per_epoch, true, 1));
  std::vector<Series> losses;
  std::set<std::string> seen;
  for (const RunRecord& r : records) {
    if (!seen.insert(r.name).second) continue;
    Series s{r.name, {}};
    for (int64_t i = 0; i < r.losses.size(); ++i) s.y.push_back(r.losses.at(i));
    losses.push_back(s);
  }
  absl::StrAppend(&h, LinePlot("Training loss per step (overlaid)", "step",
                               "batch loss (log)", losses, true, 1));
  std::vector<Series> loss_diff;
  for (const PairDrift& p : report.pairs) {
    loss_diff.push_back({p.environment, p.loss.abs_diff});
  }
  absl::StrAppend(&h, LinePlot("|loss - reference loss| per step", "step",
                               "|\u0394 loss| (log)", loss_diff, true, 1));
  absl::StrAppend(&h, "<h2>Between environments</h2>\n",
                  Heatmap("Relative L2 between environments",
                          report.environments, report.rel_l2_matrix));
  absl::StrAppend(&h, "<h2>ULP distances</h2>\n",
                  UlpBars("ULP distance histogram of eval outputs (fraction of "
                          "elements)",
                          report.pairs));

  if (!report.repeatability.empty()) {
    absl::StrAppend(&h,
                    "<h2>Repeatability (noise floor)</h2><table><tr>"
                    "<th>environment</th><th>repeats</th><th>bitwise</th>"
                    "<th>max rel L2</th><th>max ULP</th></tr>\n");
    for (const RepeatGroup& g : report.repeatability) {
      absl::StrAppend(
          &h, "<tr><td>", Esc(g.environment), "</td><td class=n>", g.repeats,
          "</td><td>", g.bitwise_repeatable ? "yes" : "no", "</td><td class=n>",
          Num(g.max_rel_l2), "</td><td class=n>", g.max_ulp, "</td></tr>\n");
    }
    absl::StrAppend(&h, "</table>\n");
  }

  // Environments.
  std::set<std::string> keys;
  for (const std::string& e : report.environments) {
    if (const RunRecord* r = FirstRecord(records, e)) {
      for (const auto& kv : r->environment) keys.insert(kv.first);
    }
  }
  absl::StrAppend(&h, "<h2>Environments</h2><table><tr><th></th>");
  for (const std::string& e : report.environments) {
    absl::StrAppend(&h, "<th>", Esc(e), "</th>");
  }
  absl::StrAppend(&h, "</tr><tr><td>profile</td>");
  for (const std::string& e : report.environments) {
    const RunRecord* r = FirstRecord(records, e);
    absl::StrAppend(&h, "<td>", r ? Esc(r->profile) : "", "</td>");
  }
  absl::StrAppend(&h, "</tr><tr><td>spec digest</td>");
  for (const std::string& e : report.environments) {
    const RunRecord* r = FirstRecord(records, e);
    absl::StrAppend(&h, "<td><code>",
                    r ? Esc(r->spec_digest.substr(0, 16)) : "", "</code></td>");
  }
  absl::StrAppend(&h, "</tr>");
  for (const std::string& k : keys) {
    absl::StrAppend(&h, "<tr><td>", Esc(k), "</td>");
    for (const std::string& e : report.environments) {
      const RunRecord* r = FirstRecord(records, e);
      std::string v;
      if (r) {
        auto it = r->environment.find(k);
        if (it != r->environment.end()) v = it->second;
      }
      absl::StrAppend(&h, "<td>", Esc(v), "</td>");
    }
    absl::StrAppend(&h, "</tr>");
  }
  absl::StrAppend(&h, "</table>\n</body></html>\n");
  return h;
}

}  // namespace driftscope
