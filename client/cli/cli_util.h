// Small pieces every driftscope subcommand uses: a flag parser with one-line
// errors, the error/exit-code convention, a staged output directory and
// JSON text helpers. One thread at a time.
#ifndef DRIFTSCOPE_CLIENT_CLI_CLI_UTIL_H_
#define DRIFTSCOPE_CLIENT_CLI_CLI_UTIL_H_

#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/core/json_text.h"
#include "engine/job/job_memory.h"

namespace driftscope::cli {

// Exit codes: 0 success; 2 bad input (flags, spec, files: nothing was
// written); 1 anything else (an internal or I/O failure).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Prints "driftscope: error: <message>" as exactly one line on `err` and
// returns the exit code for `status` (not OK).
int ReportError(std::FILE* err, const absl::Status& status);

// Parsed command line of one subcommand: "--name value", "--name=value",
// boolean "--name", and positional arguments ("--" ends the flags).
struct ParsedArgs {
  std::map<std::string, std::string> values;
  std::set<std::string> switches;
  std::vector<std::string> positional;

  std::optional<std::string> Get(const std::string& name) const;
  bool Has(const std::string& name) const { return switches.count(name) > 0; }
};

// `value_flags` take a value, `switch_flags` do not (names without "--").
// InvalidArgument naming the flag for an unknown flag, a missing value or a
// repeated flag.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::set<std::string>& value_flags,
                                     const std::set<std::string>& switch_flags);

// A directory filled under a temporary name next to its final path and
// renamed into place by Commit(), so that a failure at any point leaves the
// final path as it was. The destructor removes the temporary directory
// unless committed.
class StagedDir {
 public:
  // FailedPrecondition/InvalidArgument (naming `flag`) when `final_path`
  // exists and is not a directory this tool wrote (no `marker` file in it,
  // not empty), or its parent is missing.
  static absl::StatusOr<StagedDir> Create(
      const std::string& final_path, const std::string& flag,
      const std::string& marker = "run.json");
  StagedDir(StagedDir&& other) noexcept;
  StagedDir& operator=(StagedDir&&) = delete;
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;
  ~StagedDir();

  const std::string& path() const { return temp_; }  // write here
  absl::Status MakeSubdir(const std::string& name);
  // Replaces final_path (a previous output is removed) with the staged one.
  absl::Status Commit();

 private:
  StagedDir(std::string final_path, std::string temp)
      : final_(std::move(final_path)), temp_(std::move(temp)) {}
  std::string final_;
  std::string temp_;  // empty once committed or moved from
};

// A --profiles style list: profiles separated by commas, where a knob
// string keeps its commas ("ref64,fp32,threads=2,tf32" is ref64,
// "fp32,threads=2", tf32). InvalidArgument naming `flag` when it is empty.
absl::StatusOr<std::vector<std::string>> SplitProfileList(
    const std::string& list, const std::string& flag);

// SIGINT and SIGTERM remove every StagedDir not yet committed, then end the
// process with the signal as before (the issue: an interrupted `train` left
// OUT.tmp-*). Call once at the start of main(), before any thread starts:
// the signals are blocked and taken by a thread of their own.
void RemoveStagedDirsOnTermination();

// Removes a file or a directory tree (best effort; never follows links).
void RemoveTree(const std::string& path);
bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);
// Whether `path` is a directory another file system (or a bind mount) is
// mounted on: it cannot be renamed or replaced.
bool IsMountPoint(const std::string& path);
// Checked before any work for an output file the command writes at the end
// (--html): InvalidArgument naming `flag` when it is a directory or its
// directory is missing, FailedPrecondition when no file can be created
// there.
absl::Status CheckOutputFile(const std::string& path, const std::string& flag);

// Writes `text` to `path` (via a .tmp file and rename).
absl::Status WriteTextFile(const std::string& path, const std::string& text);

// JSON text pieces (engine/core/json_text.h).
using ::driftscope::JsonNumber;
using ::driftscope::JsonQuote;

// The memory in-process runs may use: --max-memory-mib when given (an
// integer ≥ 1), else 90% of the machine's or the cgroup's memory (0 when
// neither is known: no check). InvalidArgument naming the flag.
absl::StatusOr<int64_t> InProcessMemoryLimit(const ParsedArgs& parsed);

// Whether runs with these estimates fit in `limit_bytes` when `parallel` of
// them run at once and every finished one keeps its result until the end:
// the largest `parallel` peaks plus the results of the others.
// ResourceExhausted (CheckJobMemory's message, naming --max-memory-mib)
// when they do not.
absl::Status CheckRunsFitInMemory(const std::vector<JobMemory>& runs,
                                  int parallel, int64_t limit_bytes);

}  // namespace driftscope::cli

#endif  // DRIFTSCOPE_CLIENT_CLI_CLI_UTIL_H_
