// The runs of a coordinator job (driftscope.v1.Job) as the RunRecords the
// drift analysis takes: the one place that names a job's environments,
// decides which fingerprints a record gets and fills its environment, for
// the coordinator's GetReport and the client's `driftscope report` alike.
// Where the tensors come from is the caller's: a RunSource (the
// coordinator's store, or FetchResult through the client library).
//
// Free functions are pure and safe for concurrent use; CollectJobRecords
// is as safe as its RunSource.
#ifndef DRIFTSCOPE_PROTO_LIB_RUN_RECORDS_H_
#define DRIFTSCOPE_PROTO_LIB_RUN_RECORDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "driftscope/v1/coordinator.pb.h"
#include "engine/core/ndarray.h"
#include "engine/drift/analysis.h"
#include "engine/train/run_result.h"

namespace driftscope {

bool IsTerminal(v1::JobState state);
bool IsTerminal(v1::RunState state);

// "queued", "running", "succeeded", "failed", "cancelled".
std::string JobStateName(v1::JobState state);
std::string RunStateName(v1::RunState state);

// ProfileLabel (engine/report/environment_names.h) of the run's requested
// profile, or of the profile that ran when none was requested.
std::string ProfileLabel(const v1::RunInfo& run);

// The worker that produced the run's result: that of its succeeded attempt
// (after a retry, another worker than the placement chose); the placement's
// choice while no attempt has succeeded.
std::string WorkerThatRan(const v1::RunInfo& run);

// The environment name of every run (index-aligned with job.runs()), by
// EnvironmentNames over (WorkerThatRan, ProfileLabel); over (the worker the
// placement chose, ProfileLabel) instead when naming by the worker that ran
// would give two runs the same name and repeat (a retry moved a run onto a
// worker that ran the same profile), so no environments merge.
std::vector<std::string> RunLabels(const v1::Job& job);

// "run-3 (w1, fp32, repeat 0)", naming WorkerThatRan.
std::string DescribeRun(const v1::RunInfo& run);

// Whether `fingerprints` are those of steps 0..steps, in order: what
// RunRecord.fingerprints needs.
bool HasEveryFingerprint(const std::vector<v1::Fingerprint>& fingerprints,
                         int64_t steps);

// The tensors of a run the analysis reads: "outputs", "losses", "epoch{k}".
bool IsAnalysisTensor(const std::string& name);

// A run's RunRecord named `label`: tensors "outputs", "losses" and
// "epoch{k}", `fingerprints` (used when they cover every step), the rest
// (digest, profile that ran, environment) from its summary, worker from
// WorkerThatRan.
// DataLoss when there is no "outputs" tensor.
absl::StatusOr<RunRecord> RecordFromRun(
    const v1::RunInfo& run, const std::string& label,
    std::vector<NamedArray> tensors,
    const std::vector<v1::Fingerprint>& fingerprints);

// Where a succeeded run's results are read from.
class RunSource {
 public:
  virtual ~RunSource() = default;
  // The named tensors of `run`.
  virtual absl::StatusOr<std::vector<NamedArray>> Tensors(
      const v1::RunInfo& run, const std::vector<std::string>& names) = 0;
  // Every fingerprint the run recorded, in step order.
  virtual absl::StatusOr<std::vector<v1::Fingerprint>> Fingerprints(
      const v1::RunInfo& run) = 0;
};

struct JobRecords {
  std::vector<RunRecord> records;    // succeeded runs, in job order
  std::vector<std::string> run_ids;  // of `records`
  // One line per run left out ("run-3 (w1, fp32, repeat 0): failed: ...").
  std::vector<std::string> left_out;
  // Whether every record has the fingerprint of every step.
  bool fingerprints_complete = true;
};

// The RunRecord of every succeeded run of `job`. FailedPrecondition naming
// the job when none has succeeded.
absl::StatusOr<JobRecords> CollectJobRecords(const v1::Job& job,
                                             RunSource& source);

}  // namespace driftscope

#endif  // DRIFTSCOPE_PROTO_LIB_RUN_RECORDS_H_
