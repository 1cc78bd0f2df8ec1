#include "proto/lib/run_records.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/env/environment.h"
#include "engine/report/environment_names.h"
#include "engine/train/run_result.h"
#include "proto/lib/environment_convert.h"
#include "proto/lib/tensor_stream.h"

namespace driftscope {

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_SUCCEEDED || state == v1::JOB_FAILED ||
         state == v1::JOB_CANCELLED;
}

bool IsTerminal(v1::RunState state) {
  return state == v1::RUN_SUCCEEDED || state == v1::RUN_FAILED ||
         state == v1::RUN_CANCELLED;
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

std::string ProfileLabel(const v1::RunInfo& run) {
  return ProfileLabel(run.profile(), run.summary().profile());
}

std::string WorkerThatRan(const v1::RunInfo& run) {
  for (int i = run.attempts_size() - 1; i >= 0; --i) {
    const v1::RunAttempt& a = run.attempts(i);
    if (a.outcome() == "succeeded" && !a.worker().empty()) return a.worker();
  }
  return run.worker();
}

std::vector<std::string> RunLabels(const v1::Job& job) {
  std::vector<RunPlace> ran, placed;
  ran.reserve(static_cast<size_t>(job.runs_size()));
  placed.reserve(static_cast<size_t>(job.runs_size()));
  for (const v1::RunInfo& run : job.runs()) {
    ran.push_back({WorkerThatRan(run), ProfileLabel(run)});
    placed.push_back({run.worker(), ProfileLabel(run)});
  }
  std::vector<std::string> names = EnvironmentNames(ran);
  // A retry that moved a run onto a worker already running its profile
  // would give two runs one name and one repeat, merging environments the
  // job asked for apart: then the job is named by placement throughout.
  std::set<std::pair<std::string, int>> seen;
  for (int i = 0; i < job.runs_size(); ++i) {
    if (!seen.insert({names[static_cast<size_t>(i)], job.runs(i).repeat()})
             .second) {
      return EnvironmentNames(placed);
    }
  }
  return names;
}

std::string DescribeRun(const v1::RunInfo& run) {
  return absl::StrCat(run.run_id(), " (", WorkerThatRan(run), ", ",
                      ProfileLabel(run), ", repeat ", run.repeat(), ")");
}

bool HasEveryFingerprint(const std::vector<v1::Fingerprint>& fingerprints,
                         int64_t steps) {
  if (static_cast<int64_t>(fingerprints.size()) != steps + 1) return false;
  for (size_t k = 0; k < fingerprints.size(); ++k) {
    if (fingerprints[k].step() != static_cast<int64_t>(k)) return false;
  }
  return true;
}

bool IsAnalysisTensor(const std::string& name) {
  int k = 0;
  return name == "outputs" || name == "losses" ||
         (absl::StartsWith(name, "epoch") &&
          absl::SimpleAtoi(absl::string_view(name).substr(5), &k));
}

absl::StatusOr<RunRecord> RecordFromRun(
    const v1::RunInfo& run, const std::string& label,
    std::vector<NamedArray> tensors,
    const std::vector<v1::Fingerprint>& fingerprints) {
  bool have_outputs = false;
  for (const NamedArray& t : tensors) have_outputs |= t.name == "outputs";
  if (!have_outputs) {
    return absl::DataLossError(
        absl::StrCat("run ", run.run_id(), " has no stored outputs"));
  }
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
  rec.environment["worker"] = WorkerThatRan(run);
  if (summary.has_device()) {
    AddDeviceRunEntries(DeviceRunFromProto(summary.device()), &rec.environment);
  }
  return rec;
}

absl::StatusOr<JobRecords> CollectJobRecords(const v1::Job& job,
                                             RunSource& source) {
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
      if (IsAnalysisTensor(t.name())) names.push_back(t.name());
    }
    absl::StatusOr<std::vector<NamedArray>> tensors =
        source.Tensors(run, names);
    if (!tensors.ok()) return tensors.status();
    absl::StatusOr<std::vector<v1::Fingerprint>> fingerprints =
        source.Fingerprints(run);
    if (!fingerprints.ok()) return fingerprints.status();
    if (!HasEveryFingerprint(*fingerprints, run.summary().steps())) {
      out.fingerprints_complete = false;
    }
    absl::StatusOr<RunRecord> rec =
        RecordFromRun(run, labels[static_cast<size_t>(i)], *std::move(tensors),
                      *fingerprints);
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

}  // namespace driftscope
