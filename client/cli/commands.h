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
