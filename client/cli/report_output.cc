#include "client/cli/report_output.h"

#include <unistd.h>

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/drift/report_io.h"
#include "engine/report/report_render.h"

namespace driftscope::cli {

namespace {

absl::StatusOr<double> NonNegative(const std::string& flag,
                                   const std::string& v) {
  double x = 0;
  if (!absl::SimpleAtod(v, &x) || !std::isfinite(x) || x < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " must be a finite number >= 0, got '", v, "'"));
  }
  return x;
}

}  // namespace

absl::StatusOr<ReportFlags> ParseReportFlags(const ParsedArgs& args) {
  ReportFlags f;
  f.reference = args.Get("reference").value_or("");
  f.analysis.reference = f.reference;
  if (auto v = args.Get("atol")) {
    absl::StatusOr<double> x = NonNegative("atol", *v);
    if (!x.ok()) return x.status();
    f.analysis.atol = *x;
    f.tolerance_given = true;
  }
  if (auto v = args.Get("rtol")) {
    absl::StatusOr<double> x = NonNegative("rtol", *v);
    if (!x.ok()) return x.status();
    f.analysis.rtol = *x;
    f.tolerance_given = true;
  }
  if (auto v = args.Get("max-ulp")) {
    uint64_t u = 0;
    if (!absl::SimpleAtoi(*v, &u)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--max-ulp must be a non-negative integer, got '", *v, "'"));
    }
    f.analysis.max_ulp = u;
    f.tolerance_given = true;
    // With only --max-ulp, the ULP bound is the tolerance.
    if (!args.Get("atol") && !args.Get("rtol")) {
      f.analysis.atol = INFINITY;
    }
  }
  if (auto v = args.Get("fail-above")) {
    absl::StatusOr<double> x = NonNegative("fail-above", *v);
    if (!x.ok()) return x.status();
    f.fail_above = *x;
  }
  f.format = args.Get("format").value_or("table");
  if (f.format != "table" && f.format != "json" && f.format != "csv") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--format must be table, json or csv, got '", f.format, "'"));
  }
  f.html = args.Get("html").value_or("");
  if (!f.html.empty()) {
    const size_t slash = f.html.find_last_of('/');
    const std::string parent =
        slash == std::string::npos ? "." : f.html.substr(0, slash);
    // Inside --out is fine: that directory is created by the command.
    const std::string out = args.Get("out").value_or("");
    const bool inside_out =
        !out.empty() && (parent == out || absl::StartsWith(parent, out + "/"));
    if (!parent.empty() && !inside_out) {
      if (absl::Status s = CheckOutputFile(f.html, "--html"); !s.ok()) {
        return s;
      }
    }
  }
  return f;
}

bool Verdict(const DriftReport& report, const ReportFlags& flags) {
  bool pass = true;
  if (flags.tolerance_given || !flags.fail_above) pass = report.pass;
  if (flags.fail_above) {
    for (const PairDrift& p : report.pairs) {
      const double r = p.outputs.overall.rel_l2;
      if (!p.error.empty() || !(r <= *flags.fail_above) ||
          p.outputs.overall.nan_mismatches > 0 ||
          p.outputs.overall.inf_mismatches > 0) {
        pass = false;
      }
    }
  }
  return pass;
}

absl::StatusOr<int> EmitReport(const std::vector<RunRecord>& records,
                               const ReportFlags& flags,
                               const std::string& sweep_text,
                               const std::string& sweep_json,
                               const std::string& out_dir, std::FILE* out,
                               std::string* html) {
  absl::StatusOr<DriftReport> report = AnalyzeRuns(records, flags.analysis);
  if (!report.ok()) return report.status();
  return EmitDriftReport(*report, records, flags, sweep_text, sweep_json,
                         out_dir, out, html);
}

absl::StatusOr<int> EmitDriftReport(const DriftReport& report,
                                    const std::vector<RunRecord>& records,
                                    const ReportFlags& flags,
                                    const std::string& sweep_text,
                                    const std::string& sweep_json,
                                    const std::string& out_dir, std::FILE* out,
                                    std::string* html) {
  const bool pass = Verdict(report, flags);
  std::string json = ReportToJson(report);
  // The verdict of this command (with --fail-above) and the sweep are added
  // as top-level keys; the rest is schema driftscope.drift_report/1.
  while (!json.empty() && (json.back() == '\n' || json.back() == ' ')) {
    json.pop_back();
  }
  if (!json.empty() && json.back() == '}') {
    json.pop_back();
    absl::StrAppend(&json, ",\"verdict\":{\"pass\":", pass ? "true" : "false",
                    ",\"fail_above\":",
                    flags.fail_above ? JsonNumber(*flags.fail_above) : "null",
                    "}");
    if (!sweep_json.empty()) absl::StrAppend(&json, ",\"sweep\":", sweep_json);
    json += "}\n";
  }
  if (flags.format == "json") {
    std::fputs(json.c_str(), out);
  } else if (flags.format == "csv") {
    std::fputs(ReportToCsv(report).c_str(), out);
  } else {
    RenderOptions ro;
    ro.color = isatty(fileno(out)) == 1;
    std::string table = RenderTable(report, records, ro);
    if (flags.fail_above) {
      absl::StrAppend(&table, "--fail-above ", *flags.fail_above, ": ",
                      pass ? "pass" : "FAIL", "\n");
    }
    std::fputs((table + sweep_text).c_str(), out);
  }
  std::fflush(out);
  if (!flags.html.empty()) *html = RenderHtml(report, records, {});
  if (!out_dir.empty()) {
    if (absl::Status s = WriteTextFile(out_dir + "/report.json", json);
        !s.ok()) {
      return s;
    }
  }
  return pass ? kExitOk : kExitFailure;
}

absl::Status WriteHtml(const ReportFlags& flags, const std::string& html,
                       std::FILE* err) {
  if (flags.html.empty()) return absl::OkStatus();
  if (absl::Status s = WriteTextFile(flags.html, html); !s.ok()) return s;
  std::fprintf(err, "driftscope: wrote %s\n", flags.html.c_str());
  return absl::OkStatus();
}

}  // namespace driftscope::cli
