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

// Whether `fingerprints` are those of steps 0..steps, in order: what
// RunRecord.fingerprints needs.
bool HasEveryFingerprint(const std::vector<v1::Fingerprint>& fingerprints,
                         int64_t steps);

// A run's RunRecord: tensors "outputs", "losses" and "epoch{k}" from
// FetchResult, `fingerprints` from FetchFingerprints (used when they cover
// every step), the rest (digest, profile that ran, environment) from its
// summary.
absl::StatusOr<RunRecord> RecordFromRun(
    const v1::RunInfo& run, const std::string& label,
    std::vector<NamedArray> tensors,
    const std::vector<v1::Fingerprint>& fingerprints);

struct JobRecords {
  std::vector<RunRecord> records;    // succeeded runs, in job order
  std::vector<std::string> run_ids;  // of `records`
  // One line per run left out ("run-3 (w1, fp32, repeat 0): failed: ...").
  std::vector<std::string> left_out;
  // Whether every record has the fingerprint of every step (false for a
  // coordinator without FetchFingerprints: Job messages carry only the
  // first and the last).
  bool fingerprints_complete = true;
};

// Every fingerprint of a succeeded run (FetchFingerprints); from a
// coordinator without that call, the summary's two, and
// records->fingerprints_complete turns false (as it does when the run did
// not record every step).
absl::StatusOr<std::vector<v1::Fingerprint>> FetchRunFingerprints(
    const CoordinatorClient& client, const v1::Job& job, const v1::RunInfo& run,
    JobRecords* records);

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

// The drift report of `records`, computed here exactly as `driftscope run`
// computes it (AnalyzeRuns). When some record lacks per-step fingerprints,
// `note` says that their first divergent step and attribution are not
// located.
absl::StatusOr<DriftReport> AnalyzeJob(const JobRecords& records,
                                       const AnalysisOptions& options,
                                       std::string* note);

// "run-3 (w1, fp32, repeat 0)".
std::string DescribeRun(const v1::RunInfo& run);

}  // namespace driftscope::cli

#endif  // DRIFTSCOPE_CLIENT_CLI_JOB_RECORDS_H_
