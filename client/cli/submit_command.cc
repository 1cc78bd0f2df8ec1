// `driftscope submit`: sends a job to the coordinator; with --wait, follows
// it to the end and prints the drift report like `driftscope run`.
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"
#include "client/cli/job_progress.h"
#include "client/cli/job_records.h"
#include "client/cli/remote_flags.h"
#include "client/cli/report_output.h"
#include "client/import/keras_import.h"
#include "client/lib/coordinator_client.h"
#include "engine/io/init_weights.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/spec_json.h"
#include "proto/lib/tensor_stream.h"

namespace driftscope::cli {

namespace {

constexpr int kMaxRepeats = 100;
// SubmitJob is one message, under gRPC's 4 MiB default; initial weights
// larger than this would need a streaming upload.
constexpr size_t kMaxInitWeightBytes = size_t{3} << 20;

// --labels k=v,k2=v2 as a map; InvalidArgument naming the bad piece.
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::string& text) {
  std::map<std::string, std::string> labels;
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(piece, absl::MaxSplits('=', 1));
    if (kv.first.empty() || piece.find('=') == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--labels: '", piece, "' is not KEY=VALUE (e.g. gpu=a100)"));
    }
    labels[kv.first] = kv.second;
  }
  return labels;
}

// The request from the command line; everything is checked here, before
// anything is sent.
absl::StatusOr<v1::SubmitJobRequest> BuildRequest(const ParsedArgs& args) {
  if (args.positional.size() > 1) {
    return absl::InvalidArgumentError("submit takes at most one SPEC.json");
  }
  JobSpec spec = DefaultJobSpec();
  std::optional<std::vector<NdArray>> weights;
  std::string weights_flag;
  if (auto model_path = args.Get("model")) {
    if (!args.positional.empty() || args.Get("init-weights")) {
      return absl::InvalidArgumentError(
          "--model replaces SPEC.json and --init-weights; to change the "
          "imported spec, run `driftscope import MODEL --out DIR` and edit "
          "DIR/spec.json");
    }
    absl::StatusOr<ImportedModel> model = ImportKerasModel(*model_path);
    if (!model.ok()) return model.status();
    spec = std::move(model->spec);
    weights = std::move(model->init_weights);
    weights_flag = "--model " + *model_path;
  } else if (!args.positional.empty()) {
    SuppliedDataPaths supplied;
    absl::StatusOr<JobSpec> s = LoadSpecJson(args.positional[0], &supplied);
    if (!s.ok()) return s.status();
    if (!supplied.x.empty()) {
      return absl::InvalidArgumentError(
          "data.supplied: a coordinator job needs synthetic data; use "
          "`driftscope train --worker --x/--y` for supplied tensors");
    }
    spec = *std::move(s);
  }
  // Per-epoch snapshots feed the "when in training" curves, as in `run`;
  // they do not change the computation or the spec digest.
  spec.training.capture_epoch_outputs = true;
  if (absl::Status s = ValidateJobSpec(spec); !s.ok()) {
    return absl::InvalidArgumentError(
        EngineFieldToJsonPath(spec, std::string(s.message())));
  }
  v1::SubmitJobRequest request;
  *request.mutable_spec() = JobSpecToProto(spec);
  if (auto dir = args.Get("init-weights")) {
    absl::StatusOr<std::vector<NdArray>> read =
        ReadInitWeightsDir(*dir, spec.model, "--init-weights");
    if (!read.ok()) return read.status();
    weights = *std::move(read);
    weights_flag = "--init-weights " + *dir;
  }
  if (weights.has_value()) {
    size_t bytes = 0;
    for (const NdArray& w : *weights) {
      bytes += static_cast<size_t>(w.nbytes());
      *request.add_init_weights() = TensorToProto(w);
    }
    if (bytes > kMaxInitWeightBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          weights_flag, ": ", bytes,
          " bytes of weights; a submission carries at most ",
          kMaxInitWeightBytes, " (use `driftscope train --init-weights`)"));
    }
  }
  v1::Placement* placement = request.mutable_placement();
  if (auto w = args.Get("workers")) {
    std::set<std::string> seen;
    for (absl::string_view name : absl::StrSplit(*w, ',', absl::SkipEmpty())) {
      if (!seen.insert(std::string(name)).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("--workers: '", name, "' is listed twice"));
      }
      placement->add_workers(std::string(name));
    }
  }
  if (auto p = args.Get("profiles")) {
    absl::StatusOr<std::vector<std::string>> names =
        SplitProfileList(*p, "--profiles");
    if (!names.ok()) return names.status();
    std::set<std::string> seen;
    for (const std::string& name : *names) {
      if (absl::StatusOr<Profile> parsed = Profile::Parse(name); !parsed.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--profiles: ", parsed.status().message()));
      }
      if (!seen.insert(name).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--profiles: '", name, "' is listed twice; use --repeats"));
      }
      placement->add_profiles()->set_text(name);
    }
  }
  if (auto r = args.Get("repeats")) {
    int repeats = 0;
    if (!absl::SimpleAtoi(*r, &repeats) || repeats < 1 ||
        repeats > kMaxRepeats) {
      return absl::InvalidArgumentError(
          absl::StrCat("--repeats must be an integer in [1, ", kMaxRepeats,
                       "], got '", *r, "'"));
    }
    placement->set_repeats(repeats);
  }
  if (auto l = args.Get("labels")) {
    absl::StatusOr<std::map<std::string, std::string>> labels = ParseLabels(*l);
    if (!labels.ok()) return labels.status();
    placement->mutable_labels()->insert(labels->begin(), labels->end());
  }
  placement->set_add_reference(args.Has("reference"));
  request.set_description(args.Get("description").value_or(""));
  request.set_client_request_id(args.Get("request-id").value_or(""));
  return request;
}

// Follows the job to its end: a redrawn view on a terminal, the changes
// line by line otherwise (on `err`, so stdout holds only the report).
absl::StatusOr<v1::JobState> Follow(const CoordinatorClient& client,
                                    const std::string& job_id, std::FILE* err) {
  JobProgress progress;
  FrameWriter frames(err);
  const bool tty = isatty(fileno(err)) == 1;
  return client.WatchJob(job_id, [&](const v1::JobEvent& e) {
    std::vector<std::string> lines = progress.Apply(e);
    if (tty) {
      frames.Draw(progress.Frame());
    } else {
      for (const std::string& l : lines) std::fprintf(err, "%s\n", l.c_str());
      std::fflush(err);
    }
    return true;
  });
}

}  // namespace

int SubmitCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err) {
  if (PrintUsageIfAsked(args, "submit", out)) return kExitOk;
  std::set<std::string> value_flags = CoordinatorValueFlags();
  value_flags.insert({"workers", "labels", "profiles", "repeats", "description",
                      "request-id", "init-weights", "model", "timeout", "atol",
                      "rtol", "max-ulp", "fail-above", "format", "html"});
  std::set<std::string> switches = RemoteSwitchFlags();
  switches.insert({"wait", "reference"});
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, value_flags, switches);
  if (!parsed.ok()) return ReportError(err, parsed.status());
  const bool wait = parsed->Has("wait");
  for (const char* f :
       {"timeout", "atol", "rtol", "max-ulp", "fail-above", "format", "html"}) {
    if (!wait && parsed->Get(f)) {
      return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                  "--", f,
                                  " needs --wait (or use "
                                  "'driftscope report JOB' later)")));
    }
  }
  absl::StatusOr<ReportFlags> report_flags = ParseReportFlags(*parsed);
  if (!report_flags.ok()) return ReportError(err, report_flags.status());
  absl::Duration timeout = absl::Hours(24);
  if (auto t = parsed->Get("timeout")) {
    if (!absl::ParseDuration(*t, &timeout) || timeout <= absl::ZeroDuration()) {
      return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                  "--timeout must be a positive duration "
                                  "such as 90s or 30m, got '",
                                  *t, "'")));
    }
  }
  absl::StatusOr<v1::SubmitJobRequest> request = BuildRequest(*parsed);
  if (!request.ok()) return ReportError(err, request.status());
  absl::StatusOr<CoordinatorClientOptions> options =
      CoordinatorOptionsFromFlags(*parsed);
  if (!options.ok()) return ReportError(err, options.status());
  options->watch_timeout = timeout;
  absl::StatusOr<std::unique_ptr<CoordinatorClient>> client =
      CoordinatorClient::Create(*options);
  if (!client.ok()) return ReportError(err, client.status());

  absl::StatusOr<v1::Job> job = (*client)->SubmitJob(*request);
  if (!job.ok()) return ReportRemoteError(err, job.status());
  if (!wait) {
    std::fprintf(out, "%s\n", job->job_id().c_str());
    std::fprintf(err,
                 "driftscope: submitted job %s (%d runs); follow it with "
                 "'driftscope watch %s'\n",
                 job->job_id().c_str(), job->runs_size(),
                 job->job_id().c_str());
    return kExitOk;
  }
  std::fprintf(err, "driftscope: submitted job %s (%d runs)\n",
               job->job_id().c_str(), job->runs_size());
  std::fflush(err);
  // From here on the coordinator was reachable: failures are exit 1.
  absl::StatusOr<v1::JobState> state = Follow(**client, job->job_id(), err);
  if (!state.ok()) return ReportError(err, state.status());
  absl::StatusOr<v1::Job> final_job = (*client)->GetJob(job->job_id());
  if (!final_job.ok()) return ReportError(err, final_job.status());
  if (*state == v1::JOB_CANCELLED) {
    return ReportError(err, absl::AbortedError(absl::StrCat(
                                "job ", job->job_id(), " was cancelled")));
  }
  int succeeded = 0;
  for (const v1::RunInfo& r : final_job->runs()) {
    succeeded += r.state() == v1::RUN_SUCCEEDED ? 1 : 0;
  }
  const absl::Status ended = absl::AbortedError(
      absl::StrCat("job ", job->job_id(), " ended ", JobStateName(*state), ": ",
                   final_job->runs_size() - succeeded, " of ",
                   final_job->runs_size(), " runs did not succeed"));
  if (succeeded == 0) {
    for (const v1::RunInfo& r : final_job->runs()) {
      std::fprintf(err, "driftscope: %s: %s: %s\n", DescribeRun(r).c_str(),
                   RunStateName(r.state()).c_str(),
                   r.failure().message().c_str());
    }
    return ReportError(err, ended);
  }
  absl::StatusOr<JobRecords> records = FetchJobRecords(**client, *final_job);
  if (!records.ok()) return ReportError(err, records.status());
  for (const std::string& l : records->left_out) {
    std::fprintf(err, "driftscope: not in the report: %s\n", l.c_str());
  }
  std::string note;
  absl::StatusOr<DriftReport> report =
      AnalyzeJob(*records, report_flags->analysis, &note);
  if (!report.ok()) return ReportError(err, report.status());
  if (!note.empty()) std::fprintf(err, "driftscope: %s\n", note.c_str());
  std::string html;
  absl::StatusOr<int> code = EmitDriftReport(
      *report, records->records, *report_flags, "", "", "", out, &html);
  if (!code.ok()) return ReportError(err, code.status());
  if (absl::Status s = WriteHtml(*report_flags, html, err); !s.ok()) {
    return ReportError(err, s);
  }
  if (*state != v1::JOB_SUCCEEDED) return ReportError(err, ended);
  return *code;
}

}  // namespace driftscope::cli
