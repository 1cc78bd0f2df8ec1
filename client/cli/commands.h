// The driftscope subcommands. Each takes the arguments after its name,
// writes its normal output to `out` and diagnostics to `err`, and returns the
// process exit code (cli_util.h: 0 ok, 2 bad input, 1 other failure).
// One thread at a time (they write to the given streams and the file
// system).
#ifndef DRIFTSCOPE_CLIENT_CLI_COMMANDS_H_
#define DRIFTSCOPE_CLIENT_CLI_COMMANDS_H_

#include <cstdio>
#include <string>
#include <vector>

namespace driftscope::cli {

// driftscope train [SPEC.json] [--profile P] [--init-weights DIR]
//                  [--x X.npy --y Y.npy] [--eval-x E.npy] --out OUT
int TrainCommand(const std::vector<std::string>& args, std::FILE* out,
                 std::FILE* err);

// driftscope import MODEL.keras|MODEL.h5 --out DIR: DIR/spec.json and
// DIR/init_weights/ from a saved Keras model.
int ImportCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err);
const char* ImportUsage();

// driftscope run [SPEC.json] --profiles p1,p2,... [--repeats N]
//   [--reference P] [--atol A --rtol R | --max-ulp U] [--sweep A,B]
//   [--format table|json|csv] [--html FILE] [--out DIR] [--fail-above X]
//   [--jobs N]. Exit 0 within tolerance, 1 above it, 2 bad input.
int RunCommand(const std::vector<std::string>& args, std::FILE* out,
               std::FILE* err);

// driftscope compare A B (run directories or .npy files; A is the reference)
int CompareCommand(const std::vector<std::string>& args, std::FILE* out,
                   std::FILE* err);

// driftscope env [--json]
int EnvCommand(const std::vector<std::string>& args, std::FILE* out,
               std::FILE* err);

// The job commands talk to a driftscope-coordinator (--coordinator
// HOST:PORT or $DRIFTSCOPE_COORDINATOR, plus --insecure | --tls-ca FILE,
// --tls-server-name, --token).

// driftscope submit [SPEC.json] [--workers W1,W2] [--labels k=v,...]
//   [--profiles P1,P2] [--repeats N] [--reference] [--description TEXT]
//   [--request-id ID] [--wait [--timeout D] [report flags as run]].
// Prints the job id; with --wait, the report, and exits like run.
int SubmitCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err);

// driftscope jobs [--state S1,S2] [--limit N] [--page-token T] [--json]
int JobsCommand(const std::vector<std::string>& args, std::FILE* out,
                std::FILE* err);

// driftscope status JOB [--json]
int StatusCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err);

// driftscope watch JOB [--timeout D]: exit 0 when the job succeeded.
int WatchCommand(const std::vector<std::string>& args, std::FILE* out,
                 std::FILE* err);

// driftscope cancel JOB
int CancelCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err);

// driftscope workers [--json]
int WorkersCommand(const std::vector<std::string>& args, std::FILE* out,
                   std::FILE* err);

// driftscope report JOB [--reference RUN] [report flags as run]
int ReportCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err);

// driftscope export JOB --out DIR
int ExportCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err);

// driftscope health HOST:PORT [--service NAME] [--timeout D] [remote
//   flags]: the gRPC health protocol; exit 0 when SERVING (exec probes).
int HealthCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err);
const char* HealthUsage();

// driftscope help [COMMAND]; also `driftscope --help`.
int HelpCommand(const std::vector<std::string>& args, std::FILE* out,
                std::FILE* err);

// driftscope version
int VersionCommand(const std::vector<std::string>& args, std::FILE* out,
                   std::FILE* err);

// True, after printing the usage of `command` on `out`, when `args` hold
// --help or -h.
bool PrintUsageIfAsked(const std::vector<std::string>& args,
                       const std::string& command, std::FILE* out);

// Usage text of one command ("" for an unknown one) and of the program.
const char* CommandUsage(const std::string& command);
const char* ProgramUsage();

}  // namespace driftscope::cli

#endif  // DRIFTSCOPE_CLIENT_CLI_COMMANDS_H_
