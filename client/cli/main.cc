// The `driftscope` command: picks the subcommand and hands it the rest of
// the arguments.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"

int main(int argc, char** argv) {
  using driftscope::cli::ReportError;
  driftscope::cli::RemoveStagedDirsOnTermination();
  if (argc < 2) {
    return ReportError(stderr,
                       absl::InvalidArgumentError(
                           "no command given; run 'driftscope --help'"));
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "--help" || command == "-h" || command == "help") {
    return driftscope::cli::HelpCommand(args, stdout, stderr);
  }
  if (command == "train") {
    return driftscope::cli::TrainCommand(args, stdout, stderr);
  }
  if (command == "import") {
    return driftscope::cli::ImportCommand(args, stdout, stderr);
  }
  if (command == "run") {
    return driftscope::cli::RunCommand(args, stdout, stderr);
  }
  if (command == "compare") {
    return driftscope::cli::CompareCommand(args, stdout, stderr);
  }
  if (command == "env") {
    return driftscope::cli::EnvCommand(args, stdout, stderr);
  }
  if (command == "submit") {
    return driftscope::cli::SubmitCommand(args, stdout, stderr);
  }
  if (command == "jobs") {
    return driftscope::cli::JobsCommand(args, stdout, stderr);
  }
  if (command == "status") {
    return driftscope::cli::StatusCommand(args, stdout, stderr);
  }
  if (command == "watch") {
    return driftscope::cli::WatchCommand(args, stdout, stderr);
  }
  if (command == "cancel") {
    return driftscope::cli::CancelCommand(args, stdout, stderr);
  }
  if (command == "workers") {
    return driftscope::cli::WorkersCommand(args, stdout, stderr);
  }
  if (command == "report") {
    return driftscope::cli::ReportCommand(args, stdout, stderr);
  }
  if (command == "export") {
    return driftscope::cli::ExportCommand(args, stdout, stderr);
  }
  if (command == "health") {
    return driftscope::cli::HealthCommand(args, stdout, stderr);
  }
  if (command == "version" || command == "--version") {
    return driftscope::cli::VersionCommand(args, stdout, stderr);
  }
  return ReportError(
      stderr, absl::InvalidArgumentError(absl::StrCat(
                  "unknown command '", command,
                  "'; commands: import, train, run, compare, env, submit, "
                  "jobs, status, "
                  "watch, cancel, workers, report, export, health, help, "
                  "version")));
}
