// `driftscope help`, `driftscope --help` and `driftscope version`.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"
#include "engine/env/environment.h"

namespace driftscope::cli {

namespace {

constexpr char kProgramUsage[] =
    R"(driftscope: measure how far identical seeded RNN training jobs drift
apart across numerical environments.

Usage: driftscope <command> [arguments]

Commands:
  run       run one job under several profiles here and report the drift
  train     run one job spec in this process and write its results
  compare   drift between two run directories or two .npy files
  env       describe this machine (CPU, ISA, compiler, GPU, profiles)
  help      show help for a command ("driftscope help train")
  version   print the version

Exit codes: 0 success; 2 bad input (nothing was written); 1 other failure
(for run and compare: 1 also means drift above tolerance).
)";

constexpr char kRunUsage[] =
    R"(Usage: driftscope run [SPEC.json] [--profiles P1,P2,...] [--repeats N]
                     [--reference P] [--atol A] [--rtol R] [--max-ulp U]
                     [--fail-above X] [--sweep A,B] [--format table|json|csv]
                     [--html report.html] [--out DIR] [--jobs N]

Runs the job (SPEC.json or the built-in default job) in this process once per
profile and repeat, in parallel, then compares every environment with the
reference and prints the drift report. Without arguments: the default job
under ref64, fp32, fp32-sse2, tf32, bf16.

  --profiles LIST   profiles (presets or knob strings; a knob string keeps
                    its commas: --profiles ref64,fp32,threads=2,tf32)
  --repeats N       runs per profile; the spread among repeats is the noise
                    floor drift is reported against (default 1)
  --reference P     the reference environment (default: ref64 if present,
                    else the first)
  --atol A --rtol R tolerance |a - r| <= A + R*|r| (default 1e-8, 1e-5)
  --max-ulp U       tolerance as a maximum ULP distance
  --fail-above X    fail when the relative L2 drift of any environment
                    exceeds X (alone, or with the tolerance when given)
  --sweep A,B       also flip the knobs that differ between profiles A and
                    B one at a time and rank them by the drift each causes
  --format F        table (default), json (schema in the README) or csv
  --html FILE       also write a self-contained HTML report with plots
  --out DIR         also save every run (DIR/<profile>/r<k>/, the layout of
                    train --out) and DIR/report.json
  --jobs N          runs in parallel (default: the number of cores)

Exit code: 0 within tolerance, 1 above it, 2 bad input.
)";

constexpr char kCompareUsage[] =
    R"(Usage: driftscope compare REF OTHER [--atol A] [--rtol R] [--max-ulp U]
                         [--fail-above X] [--format table|json|csv]
                         [--html report.html] [--reference NAME]

   or: driftscope compare [SPEC.json] --workers HOST:PORT,HOST:PORT,...
                          [--profile P] [--insecure | --tls-ca FILE]
                          [--token T | --token-file F] [report flags as above]

REF and OTHER are two run directories written by `driftscope train --out`
(or `run --out`), or two .npy files. Directories are compared like `run`
compares environments (outputs, per-timestep and per-epoch drift, losses,
first divergent step from the fingerprints, attribution); .npy files get the
array metrics. The first argument is the reference unless --reference names
the other directory. With --workers, the job (SPEC.json or the default job)
runs on every worker at once, under --profile or each worker's default
profile, and the report compares them (the first worker is the reference).

Exit code: 0 within tolerance, 1 above it, 2 bad input.
)";

constexpr char kEnvUsage[] =
    R"(Usage: driftscope env [--json] [--worker HOST:PORT [--insecure | --tls-ca FILE]
                      [--token T | --token-file F]]

Prints what this machine is: host, OS, kernel, CPU model and ISA flags,
cores, compiler and flags, Eigen, the CPU kernels isa=auto selects, CUDA
runtime/driver and GPUs, and the profile presets this machine can run. The
same facts go into every run.json. With --worker, the worker's.
)";

constexpr char kTrainUsage[] =
    R"(Usage: driftscope train [SPEC.json] [--profile P] [--init-weights DIR]
                       [--x X.npy --y Y.npy] [--eval-x E.npy] --out OUT

Trains the job in SPEC.json (the JSON form of driftscope.v1.JobSpec, see
proto/driftscope/v1/job.proto; absent fields take Keras defaults) or, without
SPEC.json, the built-in default job: LSTM(64, return_sequences) ->
LSTM(32, return_sequences), T=10, F=1, Adam 1e-3 clipnorm 1, MSE, SINE data
1024/128, 3 epochs, batch 32.

  --profile P        numerics profile: a preset (ref64, fp32, fp32-sse2,
                     fp32-avx2, fp32-avx512, tf32, bf16, fp16, fp32-nondet,
                     fp32-perturb) or a knob string such as
                     "fp32,gemm=split-k=4,threads=2" (default: fp32); see
                     the README for every knob
  --init-weights DIR initial weights in Keras layout: DIR/layer{i}_kernel.npy,
                     layer{i}_recurrent_kernel.npy (RNN layers),
                     layer{i}_bias.npy (when use_bias); i counts all layers
                     from 0, shapes as Keras get_weights()
  --x X.npy          inputs (N, timesteps, features), float32 or float64
  --y Y.npy          targets shaped like the model output for N samples;
                     --x and --y replace the spec's data and come together
  --eval-x E.npy     inputs whose outputs are reported (default: X.npy)
  --out OUT          output directory; replaced only when the run succeeds,
                     and only if it is empty or a previous driftscope output

OUT receives:
  outputs.npy                 eval-set outputs of the final model (Keras shape)
  losses.npy                  batch loss of every step, (steps,)
  fingerprints.json           [{"step", "sha256", "sha256_f32"}]: weights
                              after init (step 0) and after every step
  weights/layer{i}_{kernel,recurrent_kernel,bias}.npy   final weights
  epoch_outputs/epoch{k}.npy  eval outputs after epoch k (0-based), when
                              training.capture_epoch_outputs is true
  states_h.npy, states_c.npy  final states when the last layer has
                              return_state
  run.json                    spec digest, the spec (explicit JSON), profile
                              that ran, environment, data file digests,
                              timings, step count

Remote run (the same OUT layout, bits identical to a local run of the same
profile on the same build):
  --worker HOST:PORT  run on a driftscope-worker instead of in this process
  --insecure          plaintext (must be asked for); otherwise TLS with
  --tls-ca FILE       the CA that signed the worker's certificate
  --tls-server-name N the name to verify in the worker's certificate
  --token T           bearer token (default: $DRIFTSCOPE_TOKEN)
  --token-file F      the token read from file F (not visible in ps)

On error: one line "driftscope: error: ..." on stderr, exit code 2, OUT
untouched.
)";

constexpr char kHelpUsage[] = "Usage: driftscope help [COMMAND]\n";
constexpr char kVersionUsage[] = "Usage: driftscope version\n";

}  // namespace

const char* ProgramUsage() { return kProgramUsage; }

const char* CommandUsage(const std::string& command) {
  if (command == "train") return kTrainUsage;
  if (command == "run") return kRunUsage;
  if (command == "compare") return kCompareUsage;
  if (command == "env") return kEnvUsage;
  if (command == "help") return kHelpUsage;
  if (command == "version") return kVersionUsage;
  return "";
}

int HelpCommand(const std::vector<std::string>& args, std::FILE* out,
                std::FILE* err) {
  if (args.empty()) {
    std::fputs(kProgramUsage, out);
    return kExitOk;
  }
  if (args.size() > 1) {
    return ReportError(
        err, absl::InvalidArgumentError("help takes at most one command name"));
  }
  const char* usage = CommandUsage(args[0]);
  if (*usage == '\0') {
    return ReportError(err, absl::InvalidArgumentError(
                                absl::StrCat("unknown command '", args[0],
                                             "'; commands: train, help, "
                                             "version")));
  }
  std::fputs(usage, out);
  return kExitOk;
}

int VersionCommand(const std::vector<std::string>& args, std::FILE* out,
                   std::FILE* err) {
  if (!args.empty()) {
    return ReportError(err,
                       absl::InvalidArgumentError(absl::StrCat(
                           "version takes no arguments, got '", args[0], "'")));
  }
  std::fprintf(out, "driftscope %s\n",
               ProbeEnvironment().engine_version.c_str());
  return kExitOk;
}

}  // namespace driftscope::cli
