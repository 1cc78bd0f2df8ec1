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
#include "engine/drift/analysis.h"
#include "engine/drift/array_drift.h"
#include "engine/env/environment.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "engine/numerics/profile_diff.h"
#include "engine/report/report_render.h"
#include "engine/train/trainer.h"
#include "proto/lib/spec_json.h"

namespace driftscope::cli {

namespace {

constexpr char kDefaultProfiles[] = "ref64,fp32,fp32-sse2,tf32,bf16";
constexpr int kMaxRepeats = 100;

struct Job {
  std::string name;  // environment label: the profile as the user wrote it
  Profile profile;
  int repeat = 0;
  absl::StatusOr<RunResult> result = absl::UnknownError("not run");
  std::atomic<int64_t> step{0}, total{0};
  Job(std::string n, Profile p, int r)
      : name(std::move(n)), profile(std::move(p)), repeat(r) {}
};

struct SweepRow {
  std::string knob;           // "matmul=tf32"
  std::string alone_profile;  // A with only this knob from B
  std::optional<double> alone_rel_l2, chain_rel_l2;
  std::string note;  // why a value is missing
};

absl::StatusOr<std::vector<std::string>> SplitProfiles(const std::string& s,
                                                       const char* flag) {
  return SplitProfileList(s, flag);
}

absl::StatusOr<Profile> ParseRunnable(const std::string& text,
                                      const std::string& flag) {
  absl::StatusOr<Profile> p = Profile::Parse(text);
  if (!p.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", p.status().message()));
  }
  if (absl::Status s = Context::Check(*p); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", s.message()));
  }
  return p;
}

// Runs every job on up to `parallel` threads; progress on a terminal.
void RunAll(const JobSpec& spec, std::vector<std::unique_ptr<Job>>& jobs,
            int parallel, std::FILE* err) {
  std::atomic<size_t> next{0};
  std::atomic<int> done{0};
  auto worker = [&] {
    for (size_t i = next++; i < jobs.size(); i = next++) {
      Job& j = *jobs[i];
      RunOptions options;
      options.on_progress = [&j](const ProgressEvent& e) {
        j.step = e.step;
        j.total = e.total_steps;
      };
      j.result = RunJob(spec, j.profile, options);
      ++done;
    }
  };
  const bool tty = isatty(fileno(err)) == 1;
  std::vector<std::thread> threads;
  for (int t = 0; t < parallel; ++t) threads.emplace_back(worker);
  if (tty) {
    while (done < static_cast<int>(jobs.size())) {
      int64_t steps = 0, total = 0;
      for (const auto& j : jobs) {
        steps += j->step;
        total += std::max<int64_t>(j->total, j->step);
      }
      const double frac = total > 0 ? double(steps) / total : 0.0;
      const int width = 30, fill = static_cast<int>(frac * width);
      std::fprintf(err, "\r\033[Kdriftscope run: [%s%s] %3.0f%%  %d/%zu runs",
                   std::string(fill, '#').c_str(),
                   std::string(width - fill, '.').c_str(), 100 * frac,
                   done.load(), jobs.size());
      std::fflush(err);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  for (std::thread& t : threads) t.join();
  if (tty) std::fprintf(err, "\r\033[K");
}

std::optional<double> RelL2(const RunResult& a, const RunResult& ref) {
  DriftOptions o;
  o.per_timestep = false;
  absl::StatusOr<ArrayDrift> d = CompareArrays(a.outputs, ref.outputs, o);
  if (!d.ok()) return std::nullopt;
  return d->overall.rel_l2;
}

// Flips one knob at a time from A towards B: each knob alone on A, and the
// chain A → A+k1 → A+k1+k2 → … → B. Ranks knobs by the drift each explains
// alone (relative L2 of eval outputs against the A run).
absl::StatusOr<std::vector<SweepRow>> Sweep(const JobSpec& spec,
                                            const Profile& a, const Profile& b,
                                            int parallel, std::FILE* err) {
  std::vector<KnobChange> changes = ProfileDifferences(a, b);
  std::vector<std::unique_ptr<Job>> jobs;
  jobs.push_back(std::make_unique<Job>("A", a, 0));
  std::vector<SweepRow> rows;
  std::vector<int> alone_idx, chain_idx;
  for (size_t i = 0; i < changes.size(); ++i) {
    SweepRow row;
    row.knob = changes[i].value;
    Profile alone = ApplyKnobs(a, b, {changes[i]});
    row.alone_profile = alone.ToString();
    // Some knobs only exist together (tf32 needs fp32): those are measured
    // in the chain only.
    if (Profile::Parse(alone.ToString()).ok() && Context::Check(alone).ok()) {
      alone_idx.push_back(static_cast<int>(jobs.size()));
      jobs.push_back(std::make_unique<Job>(row.knob, alone, 0));
    } else {
      alone_idx.push_back(-1);
      row.note = "not valid alone on A";
    }
    std::vector<KnobChange> prefix(changes.begin(), changes.begin() + i + 1);
    Profile chain = ApplyKnobs(a, b, prefix);
    if (Profile::Parse(chain.ToString()).ok() && Context::Check(chain).ok()) {
      chain_idx.push_back(static_cast<int>(jobs.size()));
      jobs.push_back(std::make_unique<Job>(row.knob, chain, 0));
    } else {
      chain_idx.push_back(-1);
    }
    rows.push_back(row);
  }
  RunAll(spec, jobs, parallel, err);
  for (const auto& j : jobs) {
    if (!j->result.ok()) return j->result.status();
  }
  const RunResult& base = *jobs[0]->result;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (alone_idx[i] >= 0) {
      rows[i].alone_rel_l2 = RelL2(*jobs[alone_idx[i]]->result, base);
    }
    if (chain_idx[i] >= 0) {
      rows[i].chain_rel_l2 = RelL2(*jobs[chain_idx[i]]->result, base);
    }
  }
  std::stable_sort(
      rows.begin(), rows.end(), [](const SweepRow& x, const SweepRow& y) {
        return x.alone_rel_l2.value_or(-1) > y.alone_rel_l2.value_or(-1);
      });
  return rows;
}

std::string SweepTable(const std::string& a, const std::string& b,
                       const std::vector<SweepRow>& rows) {
  std::string out = absl::StrCat("\nsweep ", a, " -> ", b,
                                 ": knobs ranked by the drift each causes "
                                 "alone (relative L2 vs ",
                                 a, ")\n");
  std::vector<std::vector<std::string>> t = {
      {"rank", "knob", "alone", "cumulative", "note"}};
  auto num = [](const std::optional<double>& v) {
    return v ? absl::StrFormat("%.3g", *v) : std::string("-");
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    t.push_back({absl::StrCat(i + 1), rows[i].knob, num(rows[i].alone_rel_l2),
                 num(rows[i].chain_rel_l2), rows[i].note});
  }
  return out + FormatTable(t);
}

std::string SweepJson(const std::string& a, const std::string& b,
                      const std::vector<SweepRow>& rows) {
  std::vector<std::string> items;
  for (const SweepRow& r : rows) {
    items.push_back(absl::StrCat(
        "{\"knob\":", JsonQuote(r.knob),
        ",\"alone_profile\":", JsonQuote(r.alone_profile), ",\"alone_rel_l2\":",
        r.alone_rel_l2 ? JsonNumber(*r.alone_rel_l2) : "null",
        ",\"cumulative_rel_l2\":",
        r.chain_rel_l2 ? JsonNumber(*r.chain_rel_l2) : "null",
        ",\"note\":", JsonQuote(r.note), "}"));
  }
  return absl::StrCat("{\"from\":", JsonQuote(a), ",\"to\":", JsonQuote(b),
                      ",\"knobs\":[", absl::StrJoin(items, ","), "]}");
}

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
                 "sweep", "format", "html", "out", "fail-above", "jobs"},
                {});
  if (!parsed.ok()) return ReportError(err, parsed.status());
  if (parsed->positional.size() > 1) {
    return ReportError(
        err, absl::InvalidArgumentError("run takes at most one SPEC.json"));
  }
  JobSpec spec = DefaultJobSpec();
  if (!parsed->positional.empty()) {
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
  std::vector<std::unique_ptr<Job>> jobs;
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
      jobs.push_back(std::make_unique<Job>(name, *p, r));
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
  std::optional<StagedDir> out_dir;
  if (auto o = parsed->Get("out")) {
    absl::StatusOr<StagedDir> d = StagedDir::Create(*o, "--out");
    if (!d.ok()) return ReportError(err, d.status());
    out_dir.emplace(*std::move(d));
  }

  const auto start = std::chrono::steady_clock::now();
  RunAll(spec, jobs, std::min<int>(parallel, static_cast<int>(jobs.size())),
         err);
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
    absl::StatusOr<std::vector<SweepRow>> rows =
        Sweep(spec, sweep->first, sweep->second, parallel, err);
    if (!rows.ok()) return ReportError(err, rows.status());
    sweep_text = SweepTable(sweep_names[0], sweep_names[1], *rows);
    sweep_json = SweepJson(sweep_names[0], sweep_names[1], *rows);
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
