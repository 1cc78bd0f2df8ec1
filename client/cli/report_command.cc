// `driftscope report JOB`: the drift report of a coordinator job, computed
// here from the runs' tensors exactly as `driftscope run` computes it, and
// `driftscope export JOB --out DIR`: those tensors as .npy files.
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"
#include "client/cli/job_records.h"
#include "client/cli/remote_flags.h"
#include "client/cli/report_output.h"
#include "client/cli/run_io.h"
#include "client/lib/coordinator_client.h"
#include "engine/drift/analysis.h"
#include "engine/drift/report_io.h"
#include "proto/lib/environment_convert.h"
#include "proto/lib/tensor_stream.h"

namespace driftscope::cli {

namespace {

// --reference takes a run id (its environment is the reference) or an
// environment label as the report prints it.
absl::StatusOr<std::string> ReferenceLabel(const std::string& reference,
                                           const JobRecords& r) {
  for (size_t i = 0; i < r.run_ids.size(); ++i) {
    if (r.run_ids[i] == reference) return r.records[i].name;
  }
  std::vector<std::string> labels;
  for (const RunRecord& rec : r.records) {
    if (rec.name == reference) return reference;
    labels.push_back(rec.name);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--reference '", reference, "' is neither a finished run of the job (",
      absl::StrJoin(r.run_ids, ", "), ") nor an environment (",
      absl::StrJoin(labels, ", "), ")"));
}

std::string RunJson(const v1::Job& job, const v1::RunInfo& run,
                    const std::vector<v1::Fingerprint>& all_fingerprints) {
  std::vector<std::string> tensors, fingerprints;
  for (const v1::Fingerprint& f : all_fingerprints) {
    fingerprints.push_back(absl::StrCat(
        "{\"step\":", f.step(), ",\"sha256\":", JsonQuote(f.sha256()),
        ",\"sha256_f32\":", JsonQuote(f.sha256_f32()), "}"));
  }
  for (const v1::TensorInfo& t : run.summary().tensors()) {
    tensors.push_back(absl::StrCat("{\"name\":", JsonQuote(t.name()),
                                   ",\"sha256\":", JsonQuote(t.sha256()), "}"));
  }
  return absl::StrCat(
      "{\"format\":\"driftscope-run-v1\",\"job_id\":", JsonQuote(job.job_id()),
      ",\"run_id\":", JsonQuote(run.run_id()),
      ",\"worker\":", JsonQuote(run.worker()),
      ",\"spec_digest\":", JsonQuote(run.summary().spec_digest()),
      ",\"profile_requested\":", JsonQuote(run.profile()),
      ",\"profile\":", JsonQuote(run.summary().profile()),
      ",\"repeat\":", run.repeat(), ",\"steps\":", run.summary().steps(),
      ",\"tensors\":[", absl::StrJoin(tensors, ","), "]", ",\"fingerprints\":[",
      absl::StrJoin(fingerprints, ","), "]", ",\"environment\":",
      EnvironmentToJson(EnvironmentFromProto(run.summary().environment())),
      "}\n");
}

// DIR/<run_id>/ in the layout of `train --out` for every succeeded run.
absl::Status ExportRuns(const CoordinatorClient& client, const v1::Job& job,
                        const std::string& dir, JobRecords* records) {
  const std::vector<std::string> labels = RunLabels(job);
  for (int i = 0; i < job.runs_size(); ++i) {
    const v1::RunInfo& run = job.runs(i);
    if (run.state() != v1::RUN_SUCCEEDED) continue;
    absl::StatusOr<std::vector<NamedArray>> tensors =
        client.FetchResult(job.job_id(), run);
    if (!tensors.ok()) return tensors.status();
    absl::StatusOr<std::vector<v1::Fingerprint>> fps =
        FetchRunFingerprints(client, job, run, records);
    if (!fps.ok()) return fps.status();
    RunResult result;
    if (absl::Status s = PlaceResultTensors(*std::move(tensors), &result);
        !s.ok()) {
      return s;
    }
    // fingerprints.json is read by position (entry k = after step k), so it
    // gets the fingerprints only when every step has one; run.json lists
    // whichever the run has, with their steps.
    if (HasEveryFingerprint(*fps, run.summary().steps())) {
      for (const v1::Fingerprint& f : *fps) {
        result.fingerprints.push_back(
            Fingerprint{f.step(), f.sha256(), f.sha256_f32()});
      }
    }
    result.spec_digest = run.summary().spec_digest();
    result.profile = run.summary().profile();
    result.steps = run.summary().steps();
    const std::string run_dir = absl::StrCat(dir, "/", run.run_id());
    if (::mkdir(run_dir.c_str(), 0755) != 0) {
      return absl::InternalError(absl::StrCat(run_dir, ": cannot create"));
    }
    if (absl::Status s =
            WriteRunFiles(run_dir, result, RunJson(job, run, *fps));
        !s.ok()) {
      return s;
    }
    // The written arrays go on into the record, moved, not copied (a
    // result can be hundreds of MiB).
    absl::StatusOr<RunRecord> rec = RecordFromRun(
        run, labels[i], TakeResultTensors(&result, CaptureSet{}), *fps);
    if (!rec.ok()) return rec.status();
    records->records.push_back(*std::move(rec));
    records->run_ids.push_back(run.run_id());
  }
  return absl::OkStatus();
}

}  // namespace

int ReportCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err) {
  if (PrintUsageIfAsked(args, "report", out)) return kExitOk;
  std::set<std::string> value_flags = CoordinatorValueFlags();
  value_flags.insert(
      {"reference", "atol", "rtol", "max-ulp", "fail-above", "format", "html"});
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(args, value_flags, RemoteSwitchFlags());
  if (!parsed.ok()) return ReportError(err, parsed.status());
  absl::StatusOr<std::string> id = JobIdArgument(parsed->positional, "report");
  if (!id.ok()) return ReportError(err, id.status());
  absl::StatusOr<ReportFlags> flags = ParseReportFlags(*parsed);
  if (!flags.ok()) return ReportError(err, flags.status());
  absl::StatusOr<std::unique_ptr<CoordinatorClient>> client =
      CoordinatorFromFlags(*parsed);
  if (!client.ok()) return ReportError(err, client.status());
  absl::StatusOr<v1::Job> job = (*client)->GetJob(*id);
  if (!job.ok()) return ReportRemoteError(err, job.status());
  absl::StatusOr<JobRecords> records = FetchJobRecords(**client, *job);
  if (!records.ok()) return ReportError(err, records.status());
  if (!flags->reference.empty()) {
    absl::StatusOr<std::string> label =
        ReferenceLabel(flags->reference, *records);
    if (!label.ok()) return ReportError(err, label.status());
    flags->reference = *label;
    flags->analysis.reference = *label;
  }
  if (!IsTerminal(job->state())) {
    std::fprintf(err,
                 "driftscope: job %s is %s; the report covers the %zu runs "
                 "finished so far\n",
                 id->c_str(), JobStateName(job->state()).c_str(),
                 records->records.size());
  }
  for (const std::string& l : records->left_out) {
    std::fprintf(err, "driftscope: not in the report: %s\n", l.c_str());
  }
  std::string note;
  absl::StatusOr<DriftReport> report =
      AnalyzeJob(*records, flags->analysis, &note);
  if (!report.ok()) return ReportError(err, report.status());
  if (!note.empty()) std::fprintf(err, "driftscope: %s\n", note.c_str());
  std::string html;
  absl::StatusOr<int> code = EmitDriftReport(*report, records->records, *flags,
                                             "", "", "", out, &html);
  if (!code.ok()) return ReportError(err, code.status());
  if (absl::Status s = WriteHtml(*flags, html, err); !s.ok()) {
    return ReportError(err, s);
  }
  return *code;
}

int ExportCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err) {
  if (PrintUsageIfAsked(args, "export", out)) return kExitOk;
  std::set<std::string> value_flags = CoordinatorValueFlags();
  value_flags.insert("out");
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(args, value_flags, RemoteSwitchFlags());
  if (!parsed.ok()) return ReportError(err, parsed.status());
  absl::StatusOr<std::string> id = JobIdArgument(parsed->positional, "export");
  if (!id.ok()) return ReportError(err, id.status());
  const std::string out_path = parsed->Get("out").value_or("");
  if (out_path.empty()) {
    return ReportError(err, absl::InvalidArgumentError(
                                "export needs --out DIR (the directory to "
                                "write the runs and report.json to)"));
  }
  absl::StatusOr<std::unique_ptr<CoordinatorClient>> client =
      CoordinatorFromFlags(*parsed);
  if (!client.ok()) return ReportError(err, client.status());
  absl::StatusOr<v1::Job> job = (*client)->GetJob(*id);
  if (!job.ok()) return ReportRemoteError(err, job.status());
  absl::StatusOr<StagedDir> dir =
      StagedDir::Create(out_path, "--out", "job.json");
  if (!dir.ok()) return ReportError(err, dir.status());
  JobRecords records;
  if (absl::Status s = ExportRuns(**client, *job, dir->path(), &records);
      !s.ok()) {
    return ReportError(err, s);
  }
  if (records.records.empty()) {
    return ReportError(err, absl::FailedPreconditionError(absl::StrCat(
                                "job ", *id, " (", JobStateName(job->state()),
                                ") has no finished run to export yet")));
  }
  std::string note;
  absl::StatusOr<DriftReport> report =
      AnalyzeJob(records, AnalysisOptions(), &note);
  if (!report.ok()) return ReportError(err, report.status());
  if (!note.empty()) std::fprintf(err, "driftscope: %s\n", note.c_str());
  if (absl::Status s =
          WriteTextFile(dir->path() + "/report.json", ReportToJson(*report));
      !s.ok()) {
    return ReportError(err, s);
  }
  std::string job_json;
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(*job, &job_json, o).ok()) {
    return ReportError(err, absl::InternalError("cannot print the job JSON"));
  }
  // job.json last: it marks a complete export directory.
  if (absl::Status s = WriteTextFile(dir->path() + "/job.json", job_json);
      !s.ok()) {
    return ReportError(err, s);
  }
  if (absl::Status s = dir->Commit(); !s.ok()) return ReportError(err, s);
  std::fprintf(out, "exported %zu of %d runs of job %s to %s\n",
               records.records.size(), job->runs_size(), id->c_str(),
               out_path.c_str());
  return kExitOk;
}

}  // namespace driftscope::cli
