// `driftscope watch JOB`: a live progress bar per run until the job ends.
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"
#include "client/cli/job_progress.h"
#include "client/cli/job_records.h"
#include "client/cli/remote_flags.h"
#include "client/lib/coordinator_client.h"

namespace driftscope::cli {

int WatchCommand(const std::vector<std::string>& args, std::FILE* out,
                 std::FILE* err) {
  if (PrintUsageIfAsked(args, "watch", out)) return kExitOk;
  std::set<std::string> value_flags = CoordinatorValueFlags();
  value_flags.insert("timeout");
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(args, value_flags, RemoteSwitchFlags());
  if (!parsed.ok()) return ReportError(err, parsed.status());
  absl::StatusOr<std::string> id = JobIdArgument(parsed->positional, "watch");
  if (!id.ok()) return ReportError(err, id.status());
  absl::StatusOr<CoordinatorClientOptions> options =
      CoordinatorOptionsFromFlags(*parsed);
  if (!options.ok()) return ReportError(err, options.status());
  if (auto t = parsed->Get("timeout")) {
    if (!absl::ParseDuration(*t, &options->watch_timeout) ||
        options->watch_timeout <= absl::ZeroDuration()) {
      return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                  "--timeout must be a positive duration "
                                  "such as 90s or 30m, got '",
                                  *t, "'")));
    }
  }
  absl::StatusOr<std::unique_ptr<CoordinatorClient>> client =
      CoordinatorClient::Create(*options);
  if (!client.ok()) return ReportError(err, client.status());

  JobProgress progress;
  FrameWriter frames(out);
  const bool tty = isatty(fileno(out)) == 1;
  // A terminal is redrawn at most 10 times a second; the last frame always.
  absl::Time last_draw = absl::InfinitePast();
  absl::StatusOr<v1::JobState> state =
      (*client)->WatchJob(*id, [&](const v1::JobEvent& e) {
        std::vector<std::string> lines = progress.Apply(e);
        if (!tty) {
          for (const std::string& l : lines) {
            std::fprintf(out, "%s\n", l.c_str());
          }
          std::fflush(out);
        } else if (absl::Now() - last_draw >= absl::Milliseconds(100) ||
                   e.event_case() != v1::JobEvent::kRunUpdate) {
          frames.Draw(progress.Frame());
          last_draw = absl::Now();
        }
        return true;
      });
  if (!state.ok()) {
    // Nothing arrived: most likely a wrong address or job id.
    if (!progress.has_snapshot()) return ReportRemoteError(err, state.status());
    return ReportError(err, state.status());
  }
  if (tty) frames.Draw(progress.Frame());
  if (*state == v1::JOB_SUCCEEDED) return kExitOk;
  return ReportError(err, absl::AbortedError(absl::StrCat(
                              "job ", *id, " ended ", JobStateName(*state))));
}

}  // namespace driftscope::cli
