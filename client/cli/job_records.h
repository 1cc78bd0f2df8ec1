// What the job commands (submit, status, watch, report, export) share on top
// of proto/lib/run_records.h (state names, environment labels, RunRecords of
// a job): the job's finished runs fetched from the coordinator, analysed
// exactly as `driftscope run` analyses its runs. One thread at a time.
#ifndef DRIFTSCOPE_CLIENT_CLI_JOB_RECORDS_H_
#define DRIFTSCOPE_CLIENT_CLI_JOB_RECORDS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/lib/coordinator_client.h"
#include "driftscope/v1/coordinator.pb.h"
#include "engine/drift/analysis.h"
#include "proto/lib/run_records.h"

namespace driftscope::cli {

// Accepts the names of JobStateName; InvalidArgument listing them otherwise.
absl::StatusOr<v1::JobState> ParseJobState(const std::string& name);

// Every fingerprint of a succeeded run (FetchFingerprints); from a
// coordinator without that call, the summary's two, and
// records->fingerprints_complete turns false (as it does when the run did
// not record every step).
absl::StatusOr<std::vector<v1::Fingerprint>> FetchRunFingerprints(
    const CoordinatorClient& client, const v1::Job& job, const v1::RunInfo& run,
    JobRecords* records);

// Fetches the tensors the analysis needs for every succeeded run of `job`
// (CollectJobRecords over FetchResult). FailedPrecondition when no run has
// succeeded yet.
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

}  // namespace driftscope::cli

#endif  // DRIFTSCOPE_CLIENT_CLI_JOB_RECORDS_H_
