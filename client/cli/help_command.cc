// `driftscope help`, `driftscope --help` and `driftscope version`.
#include <cstdio>
#include <map>
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
  import    a saved Keras model (.keras, .h5) as a job spec and weights
  compare   drift between two run directories or two .npy files
  env       describe this machine (CPU, ISA, compiler, GPU, profiles)
  help      show help for a command ("driftscope help train")
  version   print the version

With a coordinator (--coordinator HOST:PORT or $DRIFTSCOPE_COORDINATOR):
  submit    send a job to the coordinator's workers (--wait: and report)
  jobs      list the coordinator's jobs
  status    one job: its runs, workers, profiles, states, failures
  watch     follow a job live, a progress bar per run
  cancel    cancel a job
  workers   the workers the coordinator knows
  report    the drift report of a job (as `run` prints it)
  export    a job's tensors as .npy files plus report.json

For probes: health HOST:PORT asks a worker or coordinator for its gRPC
health (exit 0 when SERVING).

Exit codes: 0 success; 2 bad input (nothing was written; also an unknown
job or an unreachable coordinator); 1 other failure (for run, compare,
submit --wait and report: 1 also means drift above tolerance).
)";

constexpr char kRunUsage[] =
    R"(Usage: driftscope run [SPEC.json | --model FILE] [--profiles P1,P2,...]
                     [--repeats N]
                     [--reference P] [--atol A] [--rtol R] [--max-ulp U]
                     [--fail-above X] [--sweep A,B] [--format table|json|csv]
                     [--html report.html] [--out DIR] [--jobs N]
                     [--max-memory-mib M]

Runs the job (SPEC.json or the built-in default job) in this process once per
profile and repeat, in parallel, then compares every environment with the
reference and prints the drift report. Without arguments: the default job
under ref64, fp32, fp32-sse2, tf32, bf16.

  --model FILE      a saved Keras model (.keras or .h5) instead of
                    SPEC.json; its weights are every run's initial weights
                    (the spec as 'driftscope import' writes it)
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
  --format F        table (default), json (schema in docs/cli.md) or csv
  --html FILE       also write a self-contained HTML report with plots
  --out DIR         also save every run (DIR/<profile>/r<k>/, the layout of
                    train --out) and DIR/report.json
  --jobs N          runs in parallel (default: the number of cores)
  --max-memory-mib M  memory the runs may use together; a job whose
                    estimate is above it is refused before any run, exit 2
                    (default: 90% of this machine's or cgroup's memory)

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
    R"(Usage: driftscope train [SPEC.json [--init-weights DIR] | --model FILE]
                       [--profile P]
                       [--x X.npy --y Y.npy] [--eval-x E.npy] --out OUT
                       [--max-memory-mib M]

Trains the job in SPEC.json (the JSON form of driftscope.v1.JobSpec, see
proto/driftscope/v1/job.proto; absent fields take Keras defaults) or, without
SPEC.json, the built-in default job: LSTM(64, return_sequences) ->
LSTM(32, return_sequences), T=10, F=1, Adam 1e-3 clipnorm 1, MSE, SINE data
1024/128, 3 epochs, batch 32.

  --profile P        numerics profile: a preset (ref64, fp32, fp32-sse2,
                     fp32-avx2, fp32-avx512, tf32, bf16, fp16, fp32-nondet,
                     fp32-perturb) or a knob string such as
                     "fp32,gemm=split-k=4,threads=2" (default: fp32); see
                     docs/cli.md for every knob
  --init-weights DIR initial weights in Keras layout: DIR/layer{i}_kernel.npy,
                     layer{i}_recurrent_kernel.npy (RNN layers),
                     layer{i}_bias.npy (when use_bias); i counts all layers
                     from 0, shapes as Keras get_weights()
  --model FILE       a saved Keras model (.keras or .h5) instead of
                     SPEC.json and --init-weights: its model, optimizer and
                     loss, and its weights as the initial weights; the rest
                     as 'driftscope import' writes it (docs/keras.md)
  --x X.npy          inputs (N, timesteps, features), float32 or float64
  --y Y.npy          targets shaped like the model output for N samples;
                     --x and --y replace the spec's data and come together
  --eval-x E.npy     inputs whose outputs are reported (default: X.npy)
  --out OUT          output directory; replaced only when the run succeeds,
                     and only if it is empty or a previous driftscope output
  --max-memory-mib M memory this run may use; above the job's estimate it is
                     refused before anything is written, exit 2 (default:
                     90% of this machine's or cgroup's memory; --worker runs
                     are judged by the worker's own limit)

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
  --tls-cert F --tls-key K  client certificate and key (PEM) for a worker
                      that requires them (mTLS, its --tls_client_ca)
  --token T           bearer token (default: $DRIFTSCOPE_TOKEN)
  --token-file F      the token read from file F (not visible in ps)

On error: one line "driftscope: error: ..." on stderr, exit code 2, OUT
untouched.
)";

constexpr char kCoordinatorFlags[] =
    R"(Coordinator flags (every job command):
  --coordinator HOST:PORT  the driftscope-coordinator (default:
                           $DRIFTSCOPE_COORDINATOR)
  --insecure               plaintext (must be asked for); otherwise TLS with
  --tls-ca FILE            the CA that signed the coordinator's certificate
                           (default: the system roots)
  --tls-server-name N      the name to verify in its certificate
  --tls-cert F --tls-key K client certificate and key (PEM) for mTLS
  --token T                bearer token (default: $DRIFTSCOPE_TOKEN)
)";

constexpr char kSubmitUsage[] =
    R"(Usage: driftscope submit [SPEC.json [--init-weights DIR] | --model FILE]
                        [--workers W1,W2] [--labels K=V,...]
                        [--profiles P1,P2] [--repeats N] [--reference]
                        [--description TEXT] [--request-id ID]
                        [--init-weights DIR]
                        [--wait [--timeout D] [--atol A] [--rtol R]
                         [--max-ulp U] [--fail-above X]
                         [--format table|json|csv] [--html FILE]]

Sends the job (SPEC.json or the built-in default job) to the coordinator,
which runs it once per (worker x profile x repeat), and prints the job id.

  --workers LIST    worker names (see 'driftscope workers'); default: every
                    available worker
  --labels K=V,...  only the available workers carrying all these labels
  --profiles LIST   profiles every chosen worker runs (presets or knob
                    strings, as for run); default: each worker's own profile
  --repeats N       runs per (worker, profile); 2 or more measure the noise
                    floor (default 1)
  --reference       also run ref64 on the first worker as the reference
  --description T   free text shown by 'driftscope jobs'
  --request-id ID   makes the submission idempotent across retries of this
                    command (default: a random id, reused on every retry)
  --init-weights DIR
                    initial weights of every run, in the layout of
                    'driftscope train --init-weights' (DIR/layer{i}_kernel.npy,
                    ...); checked here and by the coordinator; at most 3 MiB
  --model FILE      a saved Keras model (.keras or .h5) instead of SPEC.json
                    and --init-weights (the spec as 'driftscope import'
                    writes it; its weights at most 3 MiB)
  --wait            follow the job (progress on stderr), then print the
                    report exactly as 'driftscope report JOB' would
  --timeout D       with --wait: give up after D (e.g. 30m); default 24h

Exit code: without --wait 0 once the job is accepted; with --wait as run:
0 within tolerance, 1 above it or when a run failed, 2 bad input.

)";

constexpr char kJobsUsage[] =
    R"(Usage: driftscope jobs [--state S1,S2] [--limit N] [--page-token T] [--json]

The coordinator's jobs, newest first: id, state, runs finished/total,
creation time, description.

  --state LIST      only jobs in these states (queued, running, succeeded,
                    failed, cancelled)
  --limit N         jobs per page (default 50, at most 1000); when there are
                    more, the command for the next page is printed on stderr
  --page-token T    the page that token names
  --json            the ListJobsResponse as JSON

)";

constexpr char kStatusUsage[] =
    R"(Usage: driftscope status JOB [--json]

One job: state, placement, spec digest, times, and each run with its
worker, profile, repeat, state, progress and failure reason. --json prints
the whole Job message (with every finished run's summary: environment,
tensors and their sha256).

)";

constexpr char kWatchUsage[] =
    R"(Usage: driftscope watch JOB [--timeout D]

Follows the job until it ends: on a terminal a progress bar per run,
redrawn in place; otherwise one line per change. Survives a coordinator
restart (it reconnects for up to a minute).

Exit code: 0 when the job succeeded, 1 when it failed or was cancelled,
2 for an unknown job or an unreachable coordinator.

)";

constexpr char kCancelUsage[] =
    R"(Usage: driftscope cancel JOB

Cancels the job: runs in flight are stopped and no further result is
stored. Cancelling a cancelled job again changes nothing; cancelling one
that already succeeded or failed is an error (exit 2).

)";

constexpr char kWorkersUsage[] =
    R"(Usage: driftscope workers [--json]

The workers the coordinator knows: name, address, state, default profile,
runs running/maximum, last heartbeat, labels.

)";

constexpr char kReportUsage[] =
    R"(Usage: driftscope report JOB [--reference RUN] [--atol A] [--rtol R]
                         [--max-ulp U] [--fail-above X]
                         [--format table|json|csv] [--html FILE]

The drift report of the job's finished runs. The runs' tensors are fetched
(every chunk's crc32c and every tensor's sha256 checked) and analysed here
exactly as 'driftscope run' analyses its own: for the same profiles the
numbers are the same. Environments are named by profile ("fp32"), or
"WORKER/PROFILE" when several workers ran the same profile.

  --reference RUN   a run id, or an environment name as the report prints
                    it (default: ref64 if present, else the first)
  other flags       as for 'driftscope run'

Exit code: 0 within tolerance, 1 above it, 2 bad input.

)";

constexpr char kExportUsage[] =
    R"(Usage: driftscope export JOB --out DIR

Writes every finished run of the job as DIR/<run_id>/ in the layout of
'driftscope train --out' (outputs.npy, losses.npy, fingerprints.json,
weights/*.npy, epoch_outputs/epoch<k>.npy, run.json with each tensor's
sha256), DIR/report.json (schema driftscope.drift_report/1) and DIR/job.json
(the Job message). DIR is filled under a temporary name and renamed into
place, so a failure leaves it as it was; an existing DIR is replaced only
when it is empty or a previous export (it has job.json).

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
  // The job commands share the coordinator flags' text.
  static const auto* job_usage = new std::map<std::string, std::string>{
      {"submit", absl::StrCat(kSubmitUsage, kCoordinatorFlags)},
      {"jobs", absl::StrCat(kJobsUsage, kCoordinatorFlags)},
      {"status", absl::StrCat(kStatusUsage, kCoordinatorFlags)},
      {"watch", absl::StrCat(kWatchUsage, kCoordinatorFlags)},
      {"cancel", absl::StrCat(kCancelUsage, kCoordinatorFlags)},
      {"workers", absl::StrCat(kWorkersUsage, kCoordinatorFlags)},
      {"report", absl::StrCat(kReportUsage, kCoordinatorFlags)},
      {"export", absl::StrCat(kExportUsage, kCoordinatorFlags)}};
  if (auto it = job_usage->find(command); it != job_usage->end()) {
    return it->second.c_str();
  }
  if (command == "health") return HealthUsage();
  if (command == "import") return ImportUsage();
  if (command == "help") return kHelpUsage;
  if (command == "version") return kVersionUsage;
  return "";
}

bool PrintUsageIfAsked(const std::vector<std::string>& args,
                       const std::string& command, std::FILE* out) {
  for (const std::string& a : args) {
    if (a == "--") break;
    if (a == "--help" || a == "-h") {
      std::fputs(CommandUsage(command), out);
      return true;
    }
  }
  return false;
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
    return ReportError(
        err, absl::InvalidArgumentError(absl::StrCat(
                 "unknown command '", args[0], "'; see 'driftscope help'")));
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
