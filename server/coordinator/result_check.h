// Checking a worker's result against the job it was asked to run, before
// anything is stored (issue: an impostor's all-NaN (3,3) output with spec
// digest 000…0 and profile fp32 was stored as a succeeded ref64 run, and
// the job reported IDENTICAL). Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_RESULT_CHECK_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_RESULT_CHECK_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/job/job_spec.h"
#include "engine/train/run_result.h"

namespace driftscope::coordinator {

// OK when `result` is what running `spec` under `requested_profile` (a
// preset or knob string) must give: the spec's digest; the profile that
// ran equal to the one asked for (an isa=auto request matches whichever
// level the worker resolved it to); the run dtype (float64 for fp64
// profiles, float32 otherwise) and the shape of every tensor (outputs,
// losses, one fingerprint per step plus the initial one, one epoch output
// per epoch when any arrived, final weights in Keras layout when any
// arrived, final states). Outputs and losses are required: the coordinator
// always asks for them.
// Otherwise DataLoss naming the first mismatch, what was expected and what
// arrived.
absl::Status CheckResultAgainstJob(const JobSpec& spec,
                                   absl::string_view requested_profile,
                                   const RunResult& result);

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_RESULT_CHECK_H_
