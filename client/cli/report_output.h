// What `run` and `compare` share: the report flags (reference, tolerance,
// format, HTML, --fail-above), the verdict, and printing the report in the
// asked-for format. One thread at a time.
#ifndef DRIFTSCOPE_CLIENT_CLI_REPORT_OUTPUT_H_
#define DRIFTSCOPE_CLIENT_CLI_REPORT_OUTPUT_H_

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/cli/cli_util.h"
#include "engine/drift/analysis.h"

namespace driftscope::cli {

struct ReportFlags {
  std::string reference;  // environment name, "" = ref64 or first
  AnalysisOptions analysis;
  bool tolerance_given = false;      // --atol/--rtol/--max-ulp on the line
  std::optional<double> fail_above;  // max relative L2 of any pair
  std::string format = "table";      // table | json | csv
  std::string html;                  // path, "" = none
};

// Reads --reference --atol --rtol --max-ulp --fail-above --format --html;
// InvalidArgument naming the flag.
absl::StatusOr<ReportFlags> ParseReportFlags(const ParsedArgs& args);

// Pass when every pair is within the tolerance (when given, or when
// --fail-above is not) and, with --fail-above X, every pair's relative L2 of
// the outputs is ≤ X.
bool Verdict(const DriftReport& report, const ReportFlags& flags);

// Analyses `records`, prints the report on `out` in flags.format (with the
// sweep section when given), writes out_dir/report.json when out_dir is not
// empty, and returns the HTML report in *html when flags.html is set (the
// caller writes it once its output directory is in place). Returns the exit
// code: 0 pass, 1 fail.
absl::StatusOr<int> EmitReport(const std::vector<RunRecord>& records,
                               const ReportFlags& flags,
                               const std::string& sweep_text,
                               const std::string& sweep_json,
                               const std::string& out_dir, std::FILE* out,
                               std::string* html);

// EmitReport for a report already analysed from `records`.
absl::StatusOr<int> EmitDriftReport(const DriftReport& report,
                                    const std::vector<RunRecord>& records,
                                    const ReportFlags& flags,
                                    const std::string& sweep_text,
                                    const std::string& sweep_json,
                                    const std::string& out_dir, std::FILE* out,
                                    std::string* html);

// Writes the HTML report to flags.html (if set) and says so on `err`.
absl::Status WriteHtml(const ReportFlags& flags, const std::string& html,
                       std::FILE* err);

}  // namespace driftscope::cli

#endif  // DRIFTSCOPE_CLIENT_CLI_REPORT_OUTPUT_H_
