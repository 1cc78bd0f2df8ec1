// Environment (engine/env/environment.h) ↔ driftscope.v1.Environment, and
// a run's DeviceRunInfo (engine/train/run_result.h) ↔ driftscope.v1.DeviceRun.
// Pure functions, safe for concurrent use.
#ifndef DRIFTSCOPE_PROTO_LIB_ENVIRONMENT_CONVERT_H_
#define DRIFTSCOPE_PROTO_LIB_ENVIRONMENT_CONVERT_H_

#include "driftscope/v1/job.pb.h"
#include "engine/env/environment.h"
#include "engine/train/run_result.h"

namespace driftscope {

v1::Environment EnvironmentToProto(const Environment& env);
Environment EnvironmentFromProto(const v1::Environment& proto);

// Sets summary->device for a device run; leaves it unset for a CPU run
// (backend ""), so CPU summaries are as before.
void SetDeviceRun(const DeviceRunInfo& device, v1::RunSummary* summary);
DeviceRunInfo DeviceRunFromProto(const v1::DeviceRun& proto);

}  // namespace driftscope

#endif  // DRIFTSCOPE_PROTO_LIB_ENVIRONMENT_CONVERT_H_
