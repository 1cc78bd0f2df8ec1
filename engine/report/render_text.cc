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
#include "engine/report/report_render.h"

namespace driftscope {

namespace render_internal {

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

}  // namespace render_internal

namespace {

using render_internal::Cause;
using render_internal::Num;

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

}  // namespace driftscope
