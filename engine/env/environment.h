// Environment: what the machine running a job is (DESIGN §4), probed once.
//
// ProbeEnvironment() reads /proc, uname and build-time facts; it never fails
// (unknown facts are "unknown"). Thread-safe.
#ifndef DRIFTSCOPE_ENGINE_ENV_ENVIRONMENT_H_
#define DRIFTSCOPE_ENGINE_ENV_ENVIRONMENT_H_

#include <map>
#include <string>
#include <vector>

#include "engine/cuda/device_info.h"

namespace driftscope {

struct Environment {
  std::string hostname;
  std::string os;      // PRETTY_NAME from /etc/os-release
  std::string kernel;  // uname -sr
  std::string arch;    // uname -m
  std::string cpu_model;
  std::vector<std::string> isa_flags;  // the drift-relevant subset
  int cores = 0;
  std::string compiler;
  std::string compile_flags;
  std::string eigen_version;
  std::string blas;            // the GEMM implementation the CPU backend uses
  std::string engine_version;  // git describe at build time
  CudaInfo cuda;
};

const Environment& ProbeEnvironment();

// One JSON object with stable keys (documented in the README).
std::string EnvironmentToJson(const Environment& env);

// The environment as the key/value map of a RunRecord (engine/drift).
std::map<std::string, std::string> EnvironmentMap(const Environment& env);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_ENV_ENVIRONMENT_H_
