// Environment (engine/env/environment.h) ↔ driftscope.v1.Environment.
// Pure functions, safe for concurrent use.
#ifndef DRIFTSCOPE_PROTO_LIB_ENVIRONMENT_CONVERT_H_
#define DRIFTSCOPE_PROTO_LIB_ENVIRONMENT_CONVERT_H_

#include "driftscope/v1/job.pb.h"
#include "engine/env/environment.h"

namespace driftscope {

v1::Environment EnvironmentToProto(const Environment& env);
Environment EnvironmentFromProto(const v1::Environment& proto);

}  // namespace driftscope

#endif  // DRIFTSCOPE_PROTO_LIB_ENVIRONMENT_CONVERT_H_
