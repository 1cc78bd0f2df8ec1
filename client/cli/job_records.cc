#include "client/cli/job_records.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace driftscope::cli {

namespace {

// A job's results through the coordinator's FetchResult and
// FetchFingerprints.
class CoordinatorRunSource : public RunSource {
 public:
  CoordinatorRunSource(const CoordinatorClient& client, const v1::Job& job)
      : client_(client), job_(job) {}

  absl::StatusOr<std::vector<NamedArray>> Tensors(
      const v1::RunInfo& run, const std::vector<std::string>& names) override {
    return client_.FetchResult(job_.job_id(), run, names);
  }
  absl::StatusOr<std::vector<v1::Fingerprint>> Fingerprints(
      const v1::RunInfo& run) override {
    JobRecords ignored;
    return FetchRunFingerprints(client_, job_, run, &ignored);
  }

 private:
  const CoordinatorClient& client_;
  const v1::Job& job_;
};

}  // namespace

absl::StatusOr<v1::JobState> ParseJobState(const std::string& name) {
  const std::string n = absl::AsciiStrToLower(name);
  for (v1::JobState s : {v1::JOB_QUEUED, v1::JOB_RUNNING, v1::JOB_SUCCEEDED,
                         v1::JOB_FAILED, v1::JOB_CANCELLED}) {
    if (n == JobStateName(s)) return s;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--state: unknown state '", name,
                   "'; states: queued, running, succeeded, failed, "
                   "cancelled"));
}

absl::StatusOr<std::string> JobIdArgument(
    const std::vector<std::string>& positional, const std::string& command) {
  if (positional.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(command, " takes one JOB id (see 'driftscope jobs'), got ",
                     positional.size(), " arguments"));
  }
  return positional[0];
}

std::string FormatUnixMs(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(unix_ms),
                          absl::LocalTimeZone());
}

absl::StatusOr<std::vector<v1::Fingerprint>> FetchRunFingerprints(
    const CoordinatorClient& client, const v1::Job& job, const v1::RunInfo& run,
    JobRecords* records) {
  absl::StatusOr<std::vector<v1::Fingerprint>> all =
      client.FetchFingerprints(job.job_id(), run);
  if (all.status().code() == absl::StatusCode::kUnimplemented) {
    // A coordinator from before FetchFingerprints: the summary's first and
    // last fingerprint are all there is.
    records->fingerprints_complete = false;
    return std::vector<v1::Fingerprint>(run.summary().fingerprints().begin(),
                                        run.summary().fingerprints().end());
  }
  if (all.ok() && !HasEveryFingerprint(*all, run.summary().steps())) {
    records->fingerprints_complete = false;
  }
  return all;
}

absl::StatusOr<JobRecords> FetchJobRecords(const CoordinatorClient& client,
                                           const v1::Job& job) {
  CoordinatorRunSource source(client, job);
  return CollectJobRecords(job, source);
}

absl::StatusOr<DriftReport> AnalyzeJob(const JobRecords& records,
                                       const AnalysisOptions& options,
                                       std::string* note) {
  if (!records.fingerprints_complete) {
    *note =
        "some runs lack the weight fingerprint of every step (a coordinator "
        "without FetchFingerprints, or a run that recorded only some), so "
        "their first divergent step and attribution are not located";
  }
  return AnalyzeRuns(records.records, options);
}

}  // namespace driftscope::cli
