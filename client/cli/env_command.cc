// `driftscope env`: what this machine is, as every run records it.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"
#include "client/cli/remote_flags.h"
#include "client/lib/worker_client.h"
#include "engine/cpu/kernel_table.h"
#include "engine/env/environment.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "engine/report/report_render.h"

namespace driftscope::cli {

int EnvCommand(const std::vector<std::string>& args, std::FILE* out,
               std::FILE* err) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(CommandUsage("env"), out);
      return kExitOk;
    }
  }
  std::set<std::string> value_flags = {"worker"};
  value_flags.insert(RemoteValueFlags().begin(), RemoteValueFlags().end());
  std::set<std::string> switches = {"json"};
  switches.insert(RemoteSwitchFlags().begin(), RemoteSwitchFlags().end());
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, value_flags, switches);
  if (!parsed.ok()) return ReportError(err, parsed.status());
  if (!parsed->positional.empty()) {
    return ReportError(
        err, absl::InvalidArgumentError(absl::StrCat(
                 "env takes no arguments, got '", parsed->positional[0], "'")));
  }
  Environment env = ProbeEnvironment();
  // Which presets this machine can run, and the kernels isa=auto picks.
  std::vector<std::string> runnable, refused, refused_gpu;
  std::string gpu_refusal;  // why the cuda presets cannot run here
  std::string auto_isa = IsaName(ResolveIsa(Isa::kAuto));
  if (auto w = parsed->Get("worker")) {
    absl::StatusOr<WorkerClientOptions> o = WorkerOptionsFromFlags(*parsed, *w);
    if (!o.ok()) return ReportError(err, o.status());
    absl::StatusOr<std::unique_ptr<WorkerClient>> client =
        WorkerClient::Create(*o);
    if (!client.ok()) return ReportError(err, client.status());
    absl::StatusOr<WorkerDescription> d = (*client)->Describe();
    if (!d.ok()) {
      return ReportError(err, absl::Status(d.status().code(),
                                           absl::StrCat("--worker ", *w, ": ",
                                                        d.status().message())));
    }
    env = d->environment;
    runnable = d->presets;
    auto_isa =
        absl::StrCat("(worker default profile: ", d->default_profile, ")");
  } else {
    const std::vector<std::string> gpu = Profile::GpuPresetNames();
    for (const std::string& p : Profile::PresetNames()) {
      absl::Status s = Context::Check(*Profile::Parse(p));
      const bool needs_gpu = std::find(gpu.begin(), gpu.end(), p) != gpu.end();
      if (s.ok()) {
        runnable.push_back(p);
      } else if (needs_gpu) {
        refused_gpu.push_back(p);
        if (gpu_refusal.empty()) gpu_refusal = std::string(s.message());
      } else {
        refused.push_back(p);
      }
    }
  }
  if (parsed->Has("json")) {
    std::vector<std::string> q, unavailable;
    for (const std::string& p : runnable) q.push_back(JsonQuote(p));
    // The presets this build knows that this host cannot run (an ISA level
    // the CPU lacks, or no GPU), so a script can tell "unknown" from "not
    // here".
    for (const std::string& p : refused) unavailable.push_back(JsonQuote(p));
    for (const std::string& p : refused_gpu) {
      unavailable.push_back(JsonQuote(p));
    }
    std::string json = EnvironmentToJson(env);
    json.pop_back();  // '}'
    std::fprintf(out,
                 "%s,\"kernels_auto\":%s,\"profiles\":[%s],"
                 "\"profiles_unavailable\":[%s]}\n",
                 json.c_str(), JsonQuote(auto_isa).c_str(),
                 absl::StrJoin(q, ",").c_str(),
                 absl::StrJoin(unavailable, ",").c_str());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"hostname", env.hostname},
      {"os", env.os},
      {"kernel", env.kernel},
      {"arch", env.arch},
      {"cpu", env.cpu_model},
      {"cores", absl::StrCat(env.cores)},
      {"isa flags", absl::StrJoin(env.isa_flags, " ")},
      {"kernels (isa=auto)", auto_isa},
      {"compiler", env.compiler},
      {"compile flags", env.compile_flags},
      {"eigen", env.eigen_version},
      {"gemm", env.blas},
      {"engine version", env.engine_version},
      {"cuda",
       env.cuda.compiled
           ? absl::StrCat("compiled; runtime ", env.cuda.runtime_version,
                          ", driver ", env.cuda.driver_version, ", cuBLAS ",
                          env.cuda.cublas_version, ", cuDNN ",
                          env.cuda.cudnn_version)
           : "not compiled"}};
  if (env.cuda.devices.empty()) {
    rows.push_back({"gpus", absl::StrCat("none (", env.cuda.error, ")")});
  }
  // Numbered as driftscope-worker --device takes them.
  for (size_t i = 0; i < env.cuda.devices.size(); ++i) {
    const CudaDeviceInfo& d = env.cuda.devices[i];
    rows.push_back(
        {absl::StrCat("gpu ", i),
         absl::StrCat(d.name, ", sm_", d.compute_major, d.compute_minor, ", ",
                      d.sm_count, " SMs, ", d.memory_bytes >> 20, " MiB")});
  }
  rows.push_back({"profiles", absl::StrJoin(runnable, " ")});
  if (!refused.empty()) {
    rows.push_back({"not on this cpu", absl::StrJoin(refused, " ")});
  }
  if (!refused_gpu.empty()) {
    rows.push_back(
        {"not without a gpu", absl::StrCat(absl::StrJoin(refused_gpu, " "),
                                           " (", gpu_refusal, ")")});
  }
  std::fputs(FormatTable(rows).c_str(), out);
  return kExitOk;
}

}  // namespace driftscope::cli
