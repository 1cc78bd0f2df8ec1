#include "engine/env/environment.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <Eigen/Core>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/core/json_text.h"
#include "engine/cpu/kernel_table.h"

#ifndef DRIFTSCOPE_VERSION
#define DRIFTSCOPE_VERSION "unknown"
#endif
#ifndef DRIFTSCOPE_COMPILER
#define DRIFTSCOPE_COMPILER "unknown"
#endif
#ifndef DRIFTSCOPE_CXX_FLAGS
#define DRIFTSCOPE_CXX_FLAGS "unknown"
#endif

namespace driftscope {

namespace {

std::string ReadCpuInfoField(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, key)) {
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
  }
  return "";
}

std::string OsPrettyName() {
  std::ifstream in("/etc/os-release");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "PRETTY_NAME=")) {
      std::string v = line.substr(12);
      if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
      return v;
    }
  }
  return "unknown";
}

Environment Probe() {
  Environment env;
  char host[256] = {};
  env.hostname = gethostname(host, sizeof(host) - 1) == 0 ? host : "unknown";
  env.os = OsPrettyName();
  struct utsname u;
  if (uname(&u) == 0) {
    env.kernel = absl::StrCat(u.sysname, " ", u.release);
    env.arch = u.machine;
  }
  env.cpu_model = ReadCpuInfoField("model name");
  if (env.cpu_model.empty()) env.cpu_model = "unknown";
  // The flags that change floating-point results of vectorized code.
  static const std::set<std::string> kRelevant = {
      "sse2",     "sse4_1",   "avx",         "avx2",
      "fma",      "f16c",     "avx512f",     "avx512dq",
      "avx512vl", "avx512bw", "avx512_bf16", "avx512_fp16",
      "amx_bf16", "amx_tile", "asimd",       "sve"};
  for (absl::string_view f :
       absl::StrSplit(ReadCpuInfoField("flags"), ' ', absl::SkipEmpty())) {
    if (kRelevant.count(std::string(f))) env.isa_flags.emplace_back(f);
  }
  env.cores = static_cast<int>(std::thread::hardware_concurrency());
  env.compiler = DRIFTSCOPE_COMPILER;
  env.compile_flags = DRIFTSCOPE_CXX_FLAGS;
  env.eigen_version = absl::StrCat(
      EIGEN_WORLD_VERSION, ".", EIGEN_MAJOR_VERSION, ".", EIGEN_MINOR_VERSION);
  // The GEMM runs in the per-ISA kernel objects (engine/cpu/kernel_table.h).
  env.blas = absl::StrCat("Eigen ", env.eigen_version,
                          " GEMM, kernels for x86-64, x86-64-v3, x86-64-v4, "
                          "native; isa=auto runs ",
                          IsaName(ResolveIsa(Isa::kAuto)));
  env.engine_version = DRIFTSCOPE_VERSION;
  env.cuda = ProbeCuda();
  return env;
}

}  // namespace

const Environment& ProbeEnvironment() {
  static const Environment* env = new Environment(Probe());
  return *env;
}

std::string EnvironmentToJson(const Environment& env) {
  std::vector<std::string> flags;
  for (const std::string& f : env.isa_flags) flags.push_back(JsonQuote(f));
  std::vector<std::string> gpus;
  for (const CudaDeviceInfo& d : env.cuda.devices) {
    gpus.push_back(absl::StrCat(
        "{\"name\":", JsonQuote(d.name), ",\"compute_capability\":\"",
        d.compute_major, ".", d.compute_minor, "\",\"sm_count\":", d.sm_count,
        ",\"memory_bytes\":", d.memory_bytes, "}"));
  }
  return absl::StrCat(
      "{\"hostname\":", JsonQuote(env.hostname), ",\"os\":", JsonQuote(env.os),
      ",\"kernel\":", JsonQuote(env.kernel), ",\"arch\":", JsonQuote(env.arch),
      ",\"cpu_model\":", JsonQuote(env.cpu_model), ",\"isa_flags\":[",
      absl::StrJoin(flags, ","), "],\"cores\":", env.cores,
      ",\"compiler\":", JsonQuote(env.compiler),
      ",\"compile_flags\":", JsonQuote(env.compile_flags),
      ",\"eigen_version\":", JsonQuote(env.eigen_version),
      ",\"blas\":", JsonQuote(env.blas),
      ",\"engine_version\":", JsonQuote(env.engine_version),
      ",\"cuda\":{\"compiled\":", env.cuda.compiled ? "true" : "false",
      ",\"runtime_version\":", env.cuda.runtime_version,
      ",\"driver_version\":", env.cuda.driver_version,
      ",\"cublas_version\":", env.cuda.cublas_version,
      ",\"cudnn_version\":", env.cuda.cudnn_version,
      ",\"error\":", JsonQuote(env.cuda.error), ",\"devices\":[",
      absl::StrJoin(gpus, ","), "]}}");
}

std::map<std::string, std::string> EnvironmentMap(const Environment& env) {
  return {{"hostname", env.hostname},
          {"os", env.os},
          {"cpu_model", env.cpu_model},
          {"isa_flags", absl::StrJoin(env.isa_flags, " ")},
          {"compiler", env.compiler},
          {"compile_flags", env.compile_flags},
          {"blas", env.blas},
          {"engine_version", env.engine_version}};
}

}  // namespace driftscope
