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

// driftscope help [COMMAND]; also `driftscope --help`.
int HelpCommand(const std::vector<std::string>& args, std::FILE* out,
                std::FILE* err);

// driftscope version
int VersionCommand(const std::vector<std::string>& args, std::FILE* out,
                   std::FILE* err);

// Usage text of one command ("" for an unknown one) and of the program.
const char* CommandUsage(const std::string& command);
const char* ProgramUsage();

}  // namespace driftscope::cli

#endif  // DRIFTSCOPE_CLIENT_CLI_COMMANDS_H_
