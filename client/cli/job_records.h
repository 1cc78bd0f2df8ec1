// What the job commands (submit, status, watch, report, export) share:
// state names, the environment label of each run of a coordinator job, and
// a job's finished runs fetched from the coordinator as the RunRecords the
// drift analysis takes, so `report` renders exactly what `run` renders for
// the same runs. One thread at a time.
#ifndef DRIFTSCOPE_CLIENT_CLI_JOB_RECORDS_H_
#define DRIFTSCOPE_CLIENT_CLI_JOB_RECORDS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/lib/coordinator_client.h"
#include "driftscope/v1/coordinator.pb.h"
#include "engine/drift/analysis.h"
#include "engine/train/run_result.h"

namespace driftscope::cli {

// "queued", "running", "succeeded", "failed", "cancelled".
std::string JobStateName(v1::JobState state);
std::string RunStateName(v1::RunState state);
// Accepts the names above; InvalidArgument listing them otherwise.
absl::StatusOr<v1::JobState> ParseJobState(const std::string& name);

// The profile of a run as a person reads it: the requested text, or what
// ran when none was requested, shown as a preset name when it is one
// ("fp32,isa=x86-64,threads=1" -> "fp32-sse2").
std::string ProfileLabel(const v1::RunInfo& run);

// The environment label of every run (index-aligned with job.runs()): its
// profile label when that alone tells the (worker, profile) pairs of the
// job apart, as `driftscope run` names its environments, else
// "WORKER/PROFILE". Repeats share their label.
std::vector<std::string> RunLabels(const v1::Job& job);

// A run's RunRecord: tensors "outputs", "losses" and "epoch{k}" from
// FetchResult, the rest (digest, fingerprints, profile that ran,
// environment) from its summary.
absl::StatusOr<RunRecord> RecordFromRun(const v1::RunInfo& run,
                                        const std::string& label,
                                        std::vector<NamedArray> tensors);

struct JobRecords {
  std::vector<RunRecord> records;    // succeeded runs, in job order
  std::vector<std::string> run_ids;  // of `records`
  // One line per run left out ("run-3 (w1, fp32, repeat 0): failed: ...").
  std::vector<std::string> left_out;
  // Whether every record has the fingerprint of every step. Job messages
  // carry only the first and the last (the coordinator keeps them all);
  // then the records have none and AnalyzeJob asks the coordinator.
  bool fingerprints_complete = true;
};

// Fetches the tensors the analysis needs for every succeeded run of `job`.
// FailedPrecondition when no run has succeeded yet.
absl::StatusOr<JobRecords> FetchJobRecords(const CoordinatorClient& client,
                                           const v1::Job& job);

// The one positional JOB argument of `command`; InvalidArgument otherwise.
absl::StatusOr<std::string> JobIdArgument(
    const std::vector<std::string>& positional, const std::string& command);

// Local time of a Unix time in milliseconds ("2024-05-01 12:03:04"), "-"
// for 0.
std::string FormatUnixMs(int64_t unix_ms);

// The drift report of `records`, computed here as `driftscope run` computes
// it. When the records lack per-step fingerprints, the fields derived from
// them (fingerprint kind and count, first divergent step, attribution) are
// taken from the coordinator's GetReport, which runs the same analysis over
// the stored fingerprints; if that fails, `note` says so and those fields
// stay as the analysis without fingerprints left them.
absl::StatusOr<DriftReport> AnalyzeJob(const CoordinatorClient& client,
                                       const v1::Job& job,
                                       const JobRecords& records,
                                       const AnalysisOptions& options,
                                       std::string* note);

// The engine's attribution cause for a proto Attribution ("numerics", ...).
std::string AttributionCause(v1::Attribution attribution);

// "run-3 (w1, fp32, repeat 0)".
std::string DescribeRun(const v1::RunInfo& run);

}  // namespace driftscope::cli

#endif  // DRIFTSCOPE_CLIENT_CLI_JOB_RECORDS_H_
