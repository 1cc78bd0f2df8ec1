// Embeds the engine: trains the built-in default job under two profiles in
// this process and reports how far the two output sequences drift apart.
// Exit code 0 when both runs succeeded and the analysis agrees with what
// float32 against float64 must show (a small, nonzero drift).
//
// Usage: embed_engine [PROFILE_A PROFILE_B]   (default: ref64 fp32)
#include <cstdio>
#include <string>
#include <vector>

#include "driftscope/analyze.h"
#include "driftscope/job_spec.h"
#include "driftscope/profile.h"
#include "driftscope/report.h"
#include "driftscope/train.h"

int main(int argc, char** argv) {
  using namespace driftscope;
  const std::string names[2] = {argc > 2 ? argv[1] : "ref64",
                                argc > 2 ? argv[2] : "fp32"};
  JobSpec spec = DefaultJobSpec();
  spec.training.epochs = 1;  // a quick example
  std::vector<RunRecord> records;
  for (const std::string& name : names) {
    absl::StatusOr<Profile> profile = Profile::Parse(name);
    if (!profile.ok()) {
      std::fprintf(stderr, "%s\n", profile.status().ToString().c_str());
      return 2;
    }
    absl::StatusOr<RunResult> result = RunJob(spec, *profile);
    if (!result.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(),
                   result.status().ToString().c_str());
      return 2;
    }
    std::printf("%-6s %lld steps, profile %s\n", name.c_str(),
                static_cast<long long>(result->steps), result->profile.c_str());
    records.push_back(RecordFromResult(name, 0, *result));
  }
  AnalysisOptions options;
  options.reference = names[0];
  absl::StatusOr<DriftReport> report = AnalyzeRuns(records, options);
  if (!report.ok()) {
    std::fprintf(stderr, "%s\n", report.status().ToString().c_str());
    return 2;
  }
  std::fputs(RenderTable(*report, records).c_str(), stdout);
  const PairDrift& pair = report->pairs.at(0);
  std::printf("relative L2 of %s against %s: %.3g\n", names[1].c_str(),
              names[0].c_str(), pair.outputs.overall.rel_l2);
  // Two different precisions must differ, but only at float32's scale.
  const double rel_l2 = pair.outputs.overall.rel_l2;
  return rel_l2 > 0 && rel_l2 < 1e-3 ? 0 : 1;
}
