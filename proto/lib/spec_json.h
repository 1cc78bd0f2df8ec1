// Reading and writing job specs as JSON (the protobuf JSON mapping of
// driftscope.v1.JobSpec, see proto/driftscope/v1/job.proto).
//
// Pure functions apart from the file read in LoadSpecJson; safe for
// concurrent use.
#ifndef DRIFTSCOPE_PROTO_LIB_SPEC_JSON_H_
#define DRIFTSCOPE_PROTO_LIB_SPEC_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/job/job_spec.h"
#include "proto/lib/job_convert.h"

namespace driftscope {

// Parses, converts (Keras defaults applied) and validates. Every error is one
// line that starts with `source` (the file name) and names the JSON field:
// "spec.json: model.layers[0].lstm: unknown field \"unitz\"". Unknown fields
// are errors. `supplied` (may be null: then data.supplied is an error)
// receives data.supplied paths as written.
absl::StatusOr<JobSpec> ParseSpecJson(absl::string_view json,
                                      absl::string_view source,
                                      SuppliedDataPaths* supplied = nullptr);

// Reads `path` and calls ParseSpecJson. NotFound "spec.json: no such file"
// when it is missing. Relative data.supplied paths are resolved against the
// spec file's directory.
absl::StatusOr<JobSpec> LoadSpecJson(const std::string& path,
                                     SuppliedDataPaths* supplied = nullptr);

// The fully explicit JSON form of `spec` (JobSpecToProto, proto field
// names, every field printed), pretty-printed when `indent`. Parsing it back
// gives a spec with the same CanonicalText.
std::string SpecToJson(const JobSpec& spec, bool indent = false);

}  // namespace driftscope

#endif  // DRIFTSCOPE_PROTO_LIB_SPEC_JSON_H_
