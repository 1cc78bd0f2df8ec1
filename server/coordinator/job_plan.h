// Turning a SubmitJobRequest into a job and its runs (DESIGN §2, §10):
// the spec is checked completely (conversion, ValidateJobSpec, size limits)
// and the placement resolved against the registry's workers before anything
// is stored, so a bad request changes nothing. Pure functions over values;
// safe for concurrent use.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_JOB_PLAN_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_JOB_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "driftscope/v1/coordinator.pb.h"
#include "engine/job/job_limits.h"
#include "engine/job/job_spec.h"
#include "server/coordinator/store.h"
#include "server/coordinator/worker_registry.h"

namespace driftscope::coordinator {

struct SubmitLimits {
  JobLimits job;  // the same checks a worker makes, before any work
  int max_repeats = 100;
  int max_runs_per_job = 1000;
};

struct PlannedJob {
  JobRow job;
  std::vector<RunRow> runs;  // run ids "<job_id>-r<index>", reference first
};

// The engine JobSpec of a stored or submitted proto spec. InvalidArgument
// naming the field ("spec.model.layers[1].lstm.units must be ...").
absl::StatusOr<JobSpec> CheckedJobSpec(const v1::JobSpec& proto);

// InvalidArgument naming the weight when request.init_weights (if any) are
// not the spec's model's weights in Keras get_weights() order and shapes.
absl::Status CheckInitWeights(const v1::SubmitJobRequest& request,
                              const JobSpec& spec);

// InvalidArgument naming the field for a bad spec, profile, repeat count or
// worker name; ResourceExhausted for a job above the limits;
// FailedPrecondition when no worker is available or a chosen worker cannot
// run a requested preset. Workers chosen by labels (no placement.workers)
// get a GPU profile only if they offer it, and at least one must.
absl::StatusOr<PlannedJob> PlanJob(const v1::SubmitJobRequest& request,
                                   const std::vector<WorkerView>& workers,
                                   const SubmitLimits& limits,
                                   absl::string_view job_id,
                                   int64_t now_unix_ms);

// Whether `worker` can run `profile`: a preset name must be among its
// presets; a GPU knob string (device=cuda) needs a worker that offers the GPU
// presets; other knob strings are left to the worker to judge.
bool CanRunProfile(const v1::WorkerInfo& worker, absl::string_view profile);

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_JOB_PLAN_H_
