// Conversion between driftscope.v1.JobSpec (the wire/JSON form) and the
// engine's JobSpec (engine/job/job_spec.h).
//
// The proto leaves Keras defaults implicit (absent field = Keras default);
// JobSpecFromProto applies them, so the engine value is fully explicit.
// Errors name the JSON field path ("model.layers[0]: exactly one of lstm,
// gru, simple_rnn, dense must be set"). Range checks are left to the
// engine's ValidateJobSpec. Pure functions, safe for concurrent use.
#ifndef DRIFTSCOPE_PROTO_LIB_JOB_CONVERT_H_
#define DRIFTSCOPE_PROTO_LIB_JOB_CONVERT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "driftscope/v1/job.pb.h"
#include "engine/job/job_spec.h"

namespace driftscope {

// data.supplied: .npy paths exactly as written in the spec (not resolved).
struct SuppliedDataPaths {
  std::string x, y, eval_x;  // eval_x empty: use x
};

// InvalidArgument naming the JSON path for a malformed spec. A spec with
// data.supplied is accepted only when `supplied` is not null (the CLI);
// it receives the paths and the engine DataSpec keeps its defaults.
absl::StatusOr<JobSpec> JobSpecFromProto(const v1::JobSpec& proto,
                                         SuppliedDataPaths* supplied = nullptr);

// The fully explicit proto form (every optional field set, every
// initializer spelled out): JobSpecFromProto(JobSpecToProto(s)) has the
// same CanonicalText as s.
v1::JobSpec JobSpecToProto(const JobSpec& spec);

// Rewrites an engine field path at the start of a ValidateJobSpec message
// into the JSON path of `spec` ("model.layers[1].units ..." →
// "model.layers[1].lstm.units ...", "optimizer.learning_rate" →
// "optimizer.adam.learning_rate", "model.timesteps" →
// "model.input.timesteps"). Other messages are returned unchanged.
std::string EngineFieldToJsonPath(const JobSpec& spec,
                                  const std::string& message);

// Keras activation names as the proto spells them ("hard_sigmoid" is the
// Keras 3 form).
const char* ActivationJsonName(Activation activation);

}  // namespace driftscope

#endif  // DRIFTSCOPE_PROTO_LIB_JOB_CONVERT_H_
