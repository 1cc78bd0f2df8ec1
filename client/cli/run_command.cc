// `driftscope run`: one job under several profiles in this process, the
// drift analysis over the results, and the report; no servers involved.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"
#include "client/cli/report_output.h"
#include "client/cli/run_io.h"
#include "client/import/keras_import.h"
#include "engine/drift/analysis.h"
#include "engine/drift/array_drift.h"
#include "engine/env/environment.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "engine/numerics/profile_diff.h"
#include "engine/report/profile_runs.h"
#include "engine/report/report_render.h"
#include "engine/train/trainer.h"
#include "proto/lib/spec_json.h"

namespace driftscope::cli {

namespace {

constexpr char kDefaultProfiles[] = "ref64,fp32,fp32-sse2,tf32,bf16";
constexpr int kMaxRepeats = 100;

absl::StatusOr<std::vector<std::string>> SplitProfiles(const std::string& s,
                                                       const char* flag) {
  return SplitProfileList(s, flag);
}

absl::StatusOr<Profile> ParseRunnable(const std::string& text,
                                      const std::string& flag) {
  absl::StatusOr<Profile> p = ParseRunnableProfile(text);
  if (!p.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", p.status().message()));
  }
  return p;
}

// A progress bar on `err` when it is a terminal; nothing otherwise.
class ProgressBar {
 public:
  explicit ProgressBar(std::FILE* err)
      : err_(err), tty_(isatty(fileno(err)) == 1) {}
  ~ProgressBar() {
    if (tty_) std::fprintf(err_, "\r\033[K");
  }
  RunsProgressFn Fn() {
    if (!tty_) return {};
    return [this](const RunsProgress& p) {
      const double frac =
          p.total_steps > 0 ? double(p.steps) / p.total_steps : 0.0;
      const int width = 30, fill = static_cast<int>(frac * width);
      std::fprintf(err_, "\r\033[Kdriftscope run: [%s%s] %3.0f%%  %d/%d runs",
                   std::string(fill, '#').c_str(),
                   std::string(width - fill, '.').c_str(), 100 * frac,
                   p.runs_done, p.runs);
      std::fflush(err_);
    };
  }

 private:
  std::FILE* err_;
  bool tty_;
};

}  // namespace

int RunCommand(const std::vector<std::string>& args, std::FILE* out,
               std::FILE* err) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(CommandUsage("run"), out);
      return kExitOk;
    }
  }
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(args,
                {"profiles", "repeats", "reference", "atol", "rtol", "max-ulp",
                 "sweep", "format", "html", "out", "fail-above", "jobs",
                 "max-memory-mib", "model"},
                {});
  if (!parsed.ok()) return ReportError(err, parsed.status());
  if (parsed->positional.size() > 1) {
    return ReportError(
        err, absl::InvalidArgumentError("run takes at most one SPEC.json"));
  }
  JobSpec spec = DefaultJobSpec();
  std::optional<std::vector<NdArray>> init_weights;
  if (auto model_path = parsed->Get("model")) {
    if (!parsed->positional.empty()) {
      return ReportError(
          err, absl::InvalidArgumentError(
                   "--model replaces SPEC.json; to change the imported spec, "
                   "run `driftscope import MODEL --out DIR` and edit "
                   "DIR/spec.json"));
    }
    absl::StatusOr<ImportedModel> model = ImportKerasModel(*model_path);
    if (!model.ok()) return ReportError(err, model.status());
    spec = std::move(model->spec);
    init_weights = std::move(model->init_weights);
  } else if (!parsed->positional.empty()) {
    SuppliedDataPaths supplied;
    absl::StatusOr<JobSpec> s = LoadSpecJson(parsed->positional[0], &supplied);
    if (!s.ok()) return ReportError(err, s.status());
    if (!supplied.x.empty()) {
      return ReportError(
          err, absl::InvalidArgumentError(
                   "data.supplied: `driftscope run` needs synthetic data; use "
                   "`driftscope train --x/--y` per profile and `compare`"));
    }
    spec = *std::move(s);
  }
  absl::StatusOr<ReportFlags> report_flags = ParseReportFlags(*parsed);
  if (!report_flags.ok()) return ReportError(err, report_flags.status());

  int repeats = 1;
  if (auto r = parsed->Get("repeats")) {
    if (!absl::SimpleAtoi(*r, &repeats) || repeats < 1 ||
        repeats > kMaxRepeats) {
      return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                  "--repeats must be an integer in [1, ",
                                  kMaxRepeats, "], got '", *r, "'")));
    }
  }
  int parallel = static_cast<int>(std::thread::hardware_concurrency());
  if (auto j = parsed->Get("jobs")) {
    if (!absl::SimpleAtoi(*j, &parallel) || parallel < 1 || parallel > 256) {
      return ReportError(
          err, absl::InvalidArgumentError(absl::StrCat(
                   "--jobs must be an integer in [1, 256], got '", *j, "'")));
    }
  }
  absl::StatusOr<std::vector<std::string>> names = SplitProfiles(
      parsed->Get("profiles").value_or(kDefaultProfiles), "--profiles");
  if (!names.ok()) return ReportError(err, names.status());
  std::vector<std::unique_ptr<ProfileRun>> jobs;
  for (const std::string& name : *names) {
    absl::StatusOr<Profile> p = ParseRunnable(name, "--profiles");
    if (!p.ok()) return ReportError(err, p.status());
    for (const auto& j : jobs) {
      if (j->name == name) {
        return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                    "--profiles: '", name,
                                    "' is listed twice; use --repeats")));
      }
    }
    for (int r = 0; r < repeats; ++r) {
      jobs.push_back(std::make_unique<ProfileRun>(name, *p, r));
    }
  }
  if (!report_flags->reference.empty()) {
    bool found = false;
    for (const auto& j : jobs) found |= j->name == report_flags->reference;
    if (!found) {
      return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                  "--reference '", report_flags->reference,
                                  "' is not one of --profiles (",
                                  absl::StrJoin(*names, ","), ")")));
    }
  }
  std::optional<std::pair<Profile, Profile>> sweep;
  std::vector<std::string> sweep_names;
  if (auto s = parsed->Get("sweep")) {
    absl::StatusOr<std::vector<std::string>> pair =
        SplitProfiles(*s, "--sweep");
    if (!pair.ok()) return ReportError(err, pair.status());
    if (pair->size() != 2) {
      return ReportError(
          err, absl::InvalidArgumentError(absl::StrCat(
                   "--sweep takes two profiles A,B, got ", pair->size())));
    }
    absl::StatusOr<Profile> a = ParseRunnable((*pair)[0], "--sweep");
    if (!a.ok()) return ReportError(err, a.status());
    absl::StatusOr<Profile> b = ParseRunnable((*pair)[1], "--sweep");
    if (!b.ok()) return ReportError(err, b.status());
    sweep.emplace(*a, *b);
    sweep_names = *pair;
  }
  // Per-epoch snapshots feed the "when in training" curves; capturing them
  // does not change the computation or the spec digest.
  spec.training.capture_epoch_outputs = true;
  if (absl::Status s = ValidateJobSpec(spec); !s.ok()) {
    return ReportError(err, s);
  }
  {
    absl::StatusOr<int64_t> limit = InProcessMemoryLimit(*parsed);
    if (!limit.ok()) return ReportError(err, limit.status());
    std::vector<JobMemory> memory;
    for (const auto& j : jobs) {
      memory.push_back(EstimateJobMemory(spec, j->profile, spec.data.samples,
                                         spec.data.eval_samples));
    }
    if (absl::Status s = CheckRunsFitInMemory(
            memory, std::min<int>(parallel, static_cast<int>(jobs.size())),
            *limit);
        !s.ok()) {
      ReportError(err, s);
      return kExitUsage;
    }
  }
  std::optional<StagedDir> out_dir;
  if (auto o = parsed->Get("out")) {
    absl::StatusOr<StagedDir> d = StagedDir::Create(*o, "--out");
    if (!d.ok()) return ReportError(err, d.status());
    out_dir.emplace(*std::move(d));
  }

  const auto start = std::chrono::steady_clock::now();
  {
    ProgressBar bar(err);
    RunProfiles(spec, jobs,
                std::min<int>(parallel, static_cast<int>(jobs.size())),
                bar.Fn(), init_weights);
  }
  std::vector<RunRecord> records;
  for (const auto& j : jobs) {
    if (!j->result.ok()) {
      return ReportError(
          err, absl::Status(
                   j->result.status().code(),
                   absl::StrCat(j->name, ": ", j->result.status().message())));
    }
    records.push_back(RecordFromResult(j->name, j->repeat, *j->result));
  }
  std::string sweep_text, sweep_json;
  if (sweep) {
    absl::StatusOr<std::vector<KnobSweepRow>> rows = [&] {
      ProgressBar bar(err);
      return SweepKnobs(spec, sweep->first, sweep->second, parallel, bar.Fn(),
                        init_weights);
    }();
    if (!rows.ok()) return ReportError(err, rows.status());
    sweep_text = RenderSweepTable(sweep_names[0], sweep_names[1], *rows);
    sweep_json = RenderSweepJson(sweep_names[0], sweep_names[1], *rows);
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();

  if (out_dir) {
    for (const auto& j : jobs) {
      const std::string sub = absl::StrCat(j->name, "/r", j->repeat);
      std::string path = out_dir->path();
      for (absl::string_view piece : absl::StrSplit(sub, '/')) {
        path = absl::StrCat(path, "/", piece);
        if (!IsDirectory(path) && ::mkdir(path.c_str(), 0755) != 0) {
          return ReportError(err, absl::InternalError(absl::StrCat(
                                      path, ": cannot create directory")));
        }
      }
      const std::string run_json = absl::StrCat(
          "{\"format\":\"driftscope-run-v1\",\"spec_digest\":",
          JsonQuote(j->result->spec_digest),
          ",\"profile_requested\":", JsonQuote(j->name),
          ",\"profile\":", JsonQuote(j->result->profile),
          ",\"repeat\":", j->repeat, ",\"steps\":", j->result->steps,
          ",\"environment\":", EnvironmentToJson(ProbeEnvironment()), "}\n");
      if (absl::Status s = WriteRunFiles(path, *j->result, run_json); !s.ok()) {
        return ReportError(err, s);
      }
    }
  }
  std::string html;
  absl::StatusOr<int> code =
      EmitReport(records, *report_flags, sweep_text, sweep_json,
                 out_dir ? out_dir->path() : "", out, &html);
  if (!code.ok()) return ReportError(err, code.status());
  if (out_dir) {
    if (absl::Status s = out_dir->Commit(); !s.ok()) return ReportError(err, s);
  }
  if (absl::Status s = WriteHtml(*report_flags, html, err); !s.ok()) {
    return ReportError(err, s);
  }
  if (report_flags->format == "table") {
    std::fprintf(out, "(%zu runs in %.1f s)\n", jobs.size(), wall);
  }
  return *code;
}

}  // namespace driftscope::cli
