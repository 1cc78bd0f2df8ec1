#include "client/cli/job_records.h"

#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/cli/remote_flags.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "proto/lib/environment_convert.h"
#include "proto/lib/tensor_stream.h"

namespace driftscope::cli {

namespace {

// The tensors the drift analysis reads.
bool AnalysisTensor(const std::string& name) {
  int k = 0;
  return name == "outputs" || name == "losses" ||
         (absl::StartsWith(name, "epoch") &&
          absl::SimpleAtoi(absl::string_view(name).substr(5), &k));
}

}  // namespace

bool HasEveryFingerprint(const std::vector<v1::Fingerprint>& fingerprints,
                         int64_t steps) {
  if (static_cast<int64_t>(fingerprints.size()) != steps + 1) return false;
  for (size_t k = 0; k < fingerprints.size(); ++k) {
    if (fingerprints[k].step() != static_cast<int64_t>(k)) return false;
  }
  return true;
}

std::string JobStateName(v1::JobState state) {
  switch (state) {
    case v1::JOB_QUEUED:
      return "queued";
    case v1::JOB_RUNNING:
      return "running";
    case v1::JOB_SUCCEEDED:
      return "succeeded";
    case v1::JOB_FAILED:
      return "failed";
    case v1::JOB_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

std::string RunStateName(v1::RunState state) {
  switch (state) {
    case v1::RUN_QUEUED:
      return "queued";
    case v1::RUN_RUNNING:
      return "running";
    case v1::RUN_SUCCEEDED:
      return "succeeded";
    case v1::RUN_FAILED:
      return "failed";
    case v1::RUN_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

absl::StatusOr<v1::JobState> ParseJobState(const std::string& name) {
  const std::string n = absl::AsciiStrToLower(name);
  for (v1::JobState s : {v1::JOB_QUEUED, v1::JOB_RUNNING, v1::JOB_SUCCEEDED,
                         v1::JOB_FAILED, v1::JOB_CANCELLED}) {
    if (n == JobStateName(s)) return s;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--state: unknown state '", name,
                   "'; states: queued, running, succeeded, failed, "
                   "cancelled"));
}

std::string ProfileLabel(const v1::RunInfo& run) {
  std::string text = run.profile();
  if (text.empty()) text = run.summary().profile();
  if (text.empty()) return "default";
  if (!Profile::PresetKnobs(text).empty()) return text;  // already a preset
  absl::StatusOr<Profile> p = Profile::Parse(text);
  if (!p.ok()) return text;
  // Workers report profiles as they run them, isa=auto resolved ("fp32" on
  // an AVX-512 machine runs as "fp32,isa=x86-64-v4,threads=1"), so presets
  // are matched as they resolve on this machine first, then as written.
  struct PresetForms {
    std::vector<std::pair<std::string, std::string>> resolved, written;
  };
  static const PresetForms* forms = [] {
    auto* f = new PresetForms;
    for (const std::string& name : Profile::PresetNames()) {
      absl::StatusOr<Profile> q = Profile::Parse(name);
      if (!q.ok()) continue;
      f->written.emplace_back(q->ToString(), name);
      if (Context::Check(*q).ok()) {
        f->resolved.emplace_back(ResolveProfile(*q).ToString(), name);
      }
    }
    return f;
  }();
  const std::string canonical = p->ToString();
  for (const auto* list : {&forms->resolved, &forms->written}) {
    for (const auto& [form, name] : *list) {
      if (form == canonical) return name;
    }
  }
  return text;
}

std::vector<std::string> RunLabels(const v1::Job& job) {
  std::vector<std::string> profiles;
  std::map<std::string, std::set<std::string>> workers_of;
  for (const v1::RunInfo& run : job.runs()) {
    profiles.push_back(ProfileLabel(run));
    workers_of[profiles.back()].insert(run.worker());
  }
  bool unique = true;
  for (const auto& [profile, workers] : workers_of) {
    unique = unique && workers.size() == 1;
  }
  std::vector<std::string> labels;
  for (int i = 0; i < job.runs_size(); ++i) {
    labels.push_back(
        unique ? profiles[i]
               : absl::StrCat(job.runs(i).worker(), "/", profiles[i]));
  }
  return labels;
}

absl::StatusOr<std::string> JobIdArgument(
    const std::vector<std::string>& positional, const std::string& command) {
  if (positional.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(command, " takes one JOB id (see 'driftscope jobs'), got ",
                     positional.size(), " arguments"));
  }
  return positional[0];
}

std::string FormatUnixMs(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(unix_ms),
                          absl::LocalTimeZone());
}

std::string DescribeRun(const v1::RunInfo& run) {
  return absl::StrCat(run.run_id(), " (", run.worker(), ", ", ProfileLabel(run),
                      ", repeat ", run.repeat(), ")");
}

absl::StatusOr<RunRecord> RecordFromRun(
    const v1::RunInfo& run, const std::string& label,
    std::vector<NamedArray> tensors,
    const std::vector<v1::Fingerprint>& fingerprints) {
  RunResult result;
  if (absl::Status s = PlaceResultTensors(std::move(tensors), &result);
      !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("run ", run.run_id(), ": ", s.message()));
  }
  const v1::RunSummary& summary = run.summary();
  RunRecord rec;
  rec.name = label;
  rec.repeat = run.repeat();
  rec.spec_digest = summary.spec_digest();
  rec.outputs = std::move(result.outputs);
  rec.losses = std::move(result.losses);
  rec.epoch_outputs = std::move(result.epoch_outputs);
  if (HasEveryFingerprint(fingerprints, summary.steps())) {
    for (const v1::Fingerprint& f : fingerprints) {
      rec.fingerprints.push_back(f.sha256());
      rec.fingerprints_f32.push_back(f.sha256_f32());
    }
  }
  rec.profile = summary.profile();
  rec.environment = EnvironmentMap(EnvironmentFromProto(summary.environment()));
  rec.environment["profile"] = summary.profile();
  rec.environment["worker"] = run.worker();
  return rec;
}

absl::StatusOr<std::vector<v1::Fingerprint>> FetchRunFingerprints(
    const CoordinatorClient& client, const v1::Job& job, const v1::RunInfo& run,
    JobRecords* records) {
  absl::StatusOr<std::vector<v1::Fingerprint>> all =
      client.FetchFingerprints(job.job_id(), run);
  if (all.status().code() == absl::StatusCode::kUnimplemented) {
    // A coordinator from before FetchFingerprints: the summary's first and
    // last fingerprint are all there is.
    records->fingerprints_complete = false;
    return std::vector<v1::Fingerprint>(run.summary().fingerprints().begin(),
                                        run.summary().fingerprints().end());
  }
  if (all.ok() && !HasEveryFingerprint(*all, run.summary().steps())) {
    records->fingerprints_complete = false;
  }
  return all;
}

absl::StatusOr<JobRecords> FetchJobRecords(const CoordinatorClient& client,
                                           const v1::Job& job) {
  const std::vector<std::string> labels = RunLabels(job);
  JobRecords out;
  for (int i = 0; i < job.runs_size(); ++i) {
    const v1::RunInfo& run = job.runs(i);
    if (run.state() != v1::RUN_SUCCEEDED) {
      std::string why = RunStateName(run.state());
      if (run.has_failure() && !run.failure().message().empty()) {
        absl::StrAppend(&why, ": ", run.failure().message());
      }
      out.left_out.push_back(absl::StrCat(DescribeRun(run), ": ", why));
      continue;
    }
    std::vector<std::string> names;
    for (const v1::TensorInfo& t : run.summary().tensors()) {
      if (AnalysisTensor(t.name())) names.push_back(t.name());
    }
    absl::StatusOr<std::vector<NamedArray>> tensors =
        client.FetchResult(job.job_id(), run, names);
    if (!tensors.ok()) return tensors.status();
    absl::StatusOr<std::vector<v1::Fingerprint>> fingerprints =
        FetchRunFingerprints(client, job, run, &out);
    if (!fingerprints.ok()) return fingerprints.status();
    absl::StatusOr<RunRecord> rec =
        RecordFromRun(run, labels[i], *std::move(tensors), *fingerprints);
    if (!rec.ok()) return rec.status();
    out.records.push_back(*std::move(rec));
    out.run_ids.push_back(run.run_id());
  }
  if (out.records.empty()) {
    if (IsTerminal(job.state())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job.job_id(), " ended ", JobStateName(job.state()),
          " and none of its runs succeeded: nothing to report (see "
          "'driftscope status ",
          job.job_id(), "')"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.job_id(), " (", JobStateName(job.state()),
                     ") has no finished run to report on yet"));
  }
  return out;
}

}  // namespace driftscope::cli

namespace driftscope::cli {

absl::StatusOr<DriftReport> AnalyzeJob(const JobRecords& records,
                                       const AnalysisOptions& options,
                                       std::string* note) {
  if (!records.fingerprints_complete) {
    *note =
        "some runs lack the weight fingerprint of every step (a coordinator "
        "without FetchFingerprints, or a run that recorded only some), so "
        "their first divergent step and attribution are not located";
  }
  return AnalyzeRuns(records.records, options);
}

}  // namespace driftscope::cli
