// `driftscope workers`: the workers the coordinator knows and their state.
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"
#include "client/cli/job_records.h"
#include "client/cli/remote_flags.h"
#include "client/lib/coordinator_client.h"
#include "engine/report/report_render.h"

namespace driftscope::cli {

namespace {

std::string WorkerStateName(v1::WorkerState s) {
  switch (s) {
    case v1::WORKER_AVAILABLE:
      return "available";
    case v1::WORKER_DRAINING:
      return "draining";
    case v1::WORKER_UNAVAILABLE:
      return "unavailable";
    default:
      return "unknown";
  }
}

// "3s ago", "5m ago"; "-" when never.
std::string Age(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const int64_t s = (absl::ToUnixMillis(absl::Now()) - unix_ms) / 1000;
  if (s < 120) return absl::StrCat(s < 0 ? 0 : s, "s ago");
  if (s < 7200) return absl::StrCat(s / 60, "m ago");
  return absl::StrCat(s / 3600, "h ago");
}

std::string Labels(const v1::WorkerInfo& w) {
  // The proto map has no order; sort for stable output. Values may hold
  // commas (a profile) and spaces (a CPU model): pairs are set apart by ";".
  std::vector<std::string> kv;
  for (const auto& [k, v] : w.labels()) kv.push_back(absl::StrCat(k, "=", v));
  std::sort(kv.begin(), kv.end());
  return absl::StrJoin(kv, "; ");
}

}  // namespace

int WorkersCommand(const std::vector<std::string>& args, std::FILE* out,
                   std::FILE* err) {
  if (PrintUsageIfAsked(args, "workers", out)) return kExitOk;
  std::set<std::string> switches = RemoteSwitchFlags();
  switches.insert("json");
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(args, CoordinatorValueFlags(), switches);
  if (!parsed.ok()) return ReportError(err, parsed.status());
  if (!parsed->positional.empty()) {
    return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                "workers takes no arguments, got '",
                                parsed->positional[0], "'")));
  }
  absl::StatusOr<std::unique_ptr<CoordinatorClient>> client =
      CoordinatorFromFlags(*parsed);
  if (!client.ok()) return ReportError(err, client.status());
  absl::StatusOr<std::vector<v1::WorkerStatus>> workers =
      (*client)->ListWorkers();
  if (!workers.ok()) return ReportRemoteError(err, workers.status());
  if (parsed->Has("json")) {
    v1::ListWorkersResponse response;
    for (const v1::WorkerStatus& w : *workers) *response.add_workers() = w;
    std::string json;
    google::protobuf::util::JsonPrintOptions o;
    o.add_whitespace = true;
    o.preserve_proto_field_names = true;
    if (!google::protobuf::util::MessageToJsonString(response, &json, o).ok()) {
      return ReportError(err, absl::InternalError("cannot print JSON"));
    }
    std::fputs(json.c_str(), out);
    return kExitOk;
  }
  if (workers->empty()) {
    std::fputs(
        "no workers (start driftscope-worker with --coordinator, or "
        "give the coordinator --workers)\n",
        out);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "ADDRESS", "STATE",
                                                 "PROFILE", "RUNNING",
                                                 "HEARTBEAT", "LABELS"}};
  for (const v1::WorkerStatus& w : *workers) {
    v1::RunInfo as_run;  // ProfileLabel shows a canonical profile as a preset
    as_run.set_profile(w.worker().default_profile());
    rows.push_back(
        {w.worker().name(), w.worker().address(), WorkerStateName(w.state()),
         ProfileLabel(as_run),
         absl::StrCat(w.running_runs(), "/", w.worker().max_concurrent_runs()),
         Age(w.last_heartbeat_unix_ms()), Labels(w.worker())});
  }
  std::fputs(FormatTable(rows).c_str(), out);
  return kExitOk;
}

}  // namespace driftscope::cli
