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

namespace {

using render_internal::Cause;
using render_internal::Esc;
using render_internal::Heatmap;
using render_internal::LinePlot;
using render_internal::Num;
using render_internal::Series;
using render_internal::UlpBars;

const RunRecord* FirstRecord(const std::vector<RunRecord>& records,
                             const std::string& name) {
  for (const RunRecord& r : records)
    if (r.name == name) return &r;
  return nullptr;
}

}  // namespace

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
