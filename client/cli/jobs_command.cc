// `driftscope jobs`, `status JOB` and `cancel JOB`: what the coordinator
// holds, and stopping a job.
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"
#include "client/cli/job_records.h"
#include "client/cli/remote_flags.h"
#include "client/lib/coordinator_client.h"
#include "engine/report/report_render.h"

namespace driftscope::cli {

namespace {

constexpr int kMaxPageSize = 1000;

absl::StatusOr<ParsedArgs> ParseJobArgs(const std::vector<std::string>& args,
                                        std::set<std::string> value_flags,
                                        std::set<std::string> switches) {
  const std::set<std::string> remote = CoordinatorValueFlags();
  value_flags.insert(remote.begin(), remote.end());
  switches.insert(RemoteSwitchFlags().begin(), RemoteSwitchFlags().end());
  return ParseArgs(args, value_flags, switches);
}

absl::Status PrintJson(const google::protobuf::Message& message,
                       std::FILE* out) {
  std::string json;
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  const auto s = google::protobuf::util::MessageToJsonString(message, &json, o);
  if (!s.ok()) return absl::InternalError(std::string(s.message()));
  std::fputs(json.c_str(), out);
  if (json.empty() || json.back() != '\n') std::fputs("\n", out);
  return absl::OkStatus();
}

std::string RunsDone(const v1::Job& job) {
  int done = 0;
  for (const v1::RunInfo& r : job.runs()) done += IsTerminal(r.state()) ? 1 : 0;
  return absl::StrCat(done, "/", job.runs_size());
}

std::string Placement(const v1::Placement& p) {
  std::vector<std::string> profiles;
  for (const v1::Profile& pr : p.profiles()) profiles.push_back(pr.text());
  return absl::StrCat(
      "workers ",
      p.workers().empty() ? "all available" : absl::StrJoin(p.workers(), ","),
      "; profiles ",
      profiles.empty() ? "each worker's default" : absl::StrJoin(profiles, ","),
      "; repeats ", p.has_repeats() ? p.repeats() : 1,
      p.add_reference() ? "; plus a ref64 reference" : "");
}

}  // namespace

int JobsCommand(const std::vector<std::string>& args, std::FILE* out,
                std::FILE* err) {
  if (PrintUsageIfAsked(args, "jobs", out)) return kExitOk;
  absl::StatusOr<ParsedArgs> parsed =
      ParseJobArgs(args, {"state", "limit", "page-token"}, {"json"});
  if (!parsed.ok()) return ReportError(err, parsed.status());
  if (!parsed->positional.empty()) {
    return ReportError(err, absl::InvalidArgumentError(
                                absl::StrCat("jobs takes no arguments, got '",
                                             parsed->positional[0], "'")));
  }
  v1::ListJobsRequest request;
  if (auto s = parsed->Get("state")) {
    for (absl::string_view name : absl::StrSplit(*s, ',', absl::SkipEmpty())) {
      absl::StatusOr<v1::JobState> state = ParseJobState(std::string(name));
      if (!state.ok()) return ReportError(err, state.status());
      request.add_states(*state);
    }
  }
  if (auto l = parsed->Get("limit")) {
    int limit = 0;
    if (!absl::SimpleAtoi(*l, &limit) || limit < 1 || limit > kMaxPageSize) {
      return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                  "--limit must be an integer in [1, ",
                                  kMaxPageSize, "], got '", *l, "'")));
    }
    request.set_page_size(limit);
  }
  request.set_page_token(parsed->Get("page-token").value_or(""));
  absl::StatusOr<std::unique_ptr<CoordinatorClient>> client =
      CoordinatorFromFlags(*parsed);
  if (!client.ok()) return ReportError(err, client.status());
  absl::StatusOr<v1::ListJobsResponse> page = (*client)->ListJobs(request);
  if (!page.ok()) return ReportRemoteError(err, page.status());
  if (parsed->Has("json")) {
    if (absl::Status s = PrintJson(*page, out); !s.ok()) {
      return ReportError(err, s);
    }
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"JOB", "STATE", "RUNS", "CREATED", "DESCRIPTION"}};
  for (const v1::Job& j : page->jobs()) {
    rows.push_back({j.job_id(), JobStateName(j.state()), RunsDone(j),
                    FormatUnixMs(j.created_unix_ms()), j.description()});
  }
  if (page->jobs().empty()) {
    std::fputs("no jobs\n", out);
  } else {
    std::fputs(FormatTable(rows).c_str(), out);
  }
  if (!page->next_page_token().empty()) {
    std::fprintf(err,
                 "driftscope: more jobs: driftscope jobs --page-token %s\n",
                 page->next_page_token().c_str());
  }
  return kExitOk;
}

int StatusCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err) {
  if (PrintUsageIfAsked(args, "status", out)) return kExitOk;
  absl::StatusOr<ParsedArgs> parsed = ParseJobArgs(args, {}, {"json"});
  if (!parsed.ok()) return ReportError(err, parsed.status());
  absl::StatusOr<std::string> id = JobIdArgument(parsed->positional, "status");
  if (!id.ok()) return ReportError(err, id.status());
  absl::StatusOr<std::unique_ptr<CoordinatorClient>> client =
      CoordinatorFromFlags(*parsed);
  if (!client.ok()) return ReportError(err, client.status());
  absl::StatusOr<v1::Job> job = (*client)->GetJob(*id);
  if (!job.ok()) return ReportRemoteError(err, job.status());
  if (parsed->Has("json")) {
    if (absl::Status s = PrintJson(*job, out); !s.ok()) {
      return ReportError(err, s);
    }
    return kExitOk;
  }
  std::fprintf(out, "job          %s\n", job->job_id().c_str());
  std::fprintf(out, "state        %s (%s runs finished)\n",
               JobStateName(job->state()).c_str(), RunsDone(*job).c_str());
  if (!job->description().empty()) {
    std::fprintf(out, "description  %s\n", job->description().c_str());
  }
  std::fprintf(out, "spec digest  %s\n", job->spec_digest().c_str());
  std::fprintf(out, "placement    %s\n", Placement(job->placement()).c_str());
  std::fprintf(out, "created      %s\n",
               FormatUnixMs(job->created_unix_ms()).c_str());
  std::fprintf(out, "finished     %s\n\n",
               FormatUnixMs(job->finished_unix_ms()).c_str());
  std::vector<std::vector<std::string>> rows = {{"RUN", "WORKER", "PROFILE",
                                                 "REPEAT", "STATE", "STEP",
                                                 "ATTEMPTS", "REASON"}};
  std::vector<std::string> retried;
  for (const v1::RunInfo& r : job->runs()) {
    std::string reason;
    if (r.state() == v1::RUN_FAILED || r.state() == v1::RUN_CANCELLED) {
      reason = r.failure().message();
    }
    // The worker that ran the last attempt, when a retry moved the run.
    std::string worker = r.worker();
    if (!r.attempts().empty() && !r.attempts().rbegin()->worker().empty() &&
        r.attempts().rbegin()->worker() != r.worker()) {
      worker = absl::StrCat(r.attempts().rbegin()->worker(), " (asked ",
                            r.worker(), ")");
    }
    rows.push_back({r.run_id(), worker, ProfileLabel(r),
                    absl::StrCat(r.repeat()), RunStateName(r.state()),
                    r.total_steps() > 0
                        ? absl::StrCat(r.step(), "/", r.total_steps())
                        : "-",
                    absl::StrCat(r.attempts_size()), reason});
    for (const v1::RunAttempt& a : r.attempts()) {
      if (a.outcome() == "succeeded" || a.outcome().empty()) continue;
      // The last attempt of a failed run is its REASON already.
      if (a.attempt() == r.attempts().rbegin()->attempt() &&
          (r.state() == v1::RUN_FAILED || r.state() == v1::RUN_CANCELLED)) {
        continue;
      }
      retried.push_back(absl::StrCat(
          "  ", r.run_id(), " attempt ", a.attempt(), " on ",
          a.worker().empty() ? "no worker" : a.worker(), ": ", a.outcome(),
          a.message().empty() ? "" : absl::StrCat(": ", a.message())));
    }
  }
  std::fputs(FormatTable(rows).c_str(), out);
  if (!retried.empty()) {
    std::fprintf(out, "\nattempts that did not succeed:\n%s\n",
                 absl::StrJoin(retried, "\n").c_str());
  }
  return kExitOk;
}

int CancelCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err) {
  if (PrintUsageIfAsked(args, "cancel", out)) return kExitOk;
  absl::StatusOr<ParsedArgs> parsed = ParseJobArgs(args, {}, {});
  if (!parsed.ok()) return ReportError(err, parsed.status());
  absl::StatusOr<std::string> id = JobIdArgument(parsed->positional, "cancel");
  if (!id.ok()) return ReportError(err, id.status());
  absl::StatusOr<std::unique_ptr<CoordinatorClient>> client =
      CoordinatorFromFlags(*parsed);
  if (!client.ok()) return ReportError(err, client.status());
  absl::StatusOr<v1::Job> job = (*client)->CancelJob(*id);
  if (!job.ok()) return ReportRemoteError(err, job.status());
  std::fprintf(out, "job %s: %s\n", job->job_id().c_str(),
               JobStateName(job->state()).c_str());
  return kExitOk;
}

}  // namespace driftscope::cli
