// `driftscope compare A B`: the drift metrics between two run directories
// (as `train --out` writes them) or two .npy files.
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"
#include "client/cli/remote_flags.h"
#include "client/cli/report_output.h"
#include "client/cli/run_io.h"
#include "client/lib/worker_client.h"
#include "engine/drift/array_drift.h"
#include "engine/drift/report_io.h"
#include "engine/io/npy.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "engine/report/profile_runs.h"
#include "proto/lib/spec_json.h"

namespace driftscope::cli {

namespace {

int CompareNpy(const std::string& a_path, const std::string& b_path,
               const ReportFlags& flags, std::FILE* out, std::FILE* err) {
  absl::StatusOr<NdArray> a = ReadNpy(a_path);
  if (!a.ok()) return ReportError(err, a.status());
  absl::StatusOr<NdArray> b = ReadNpy(b_path);
  if (!b.ok()) return ReportError(err, b.status());
  DriftOptions o;
  o.atol = flags.analysis.atol;
  o.rtol = flags.analysis.rtol;
  o.max_ulp = flags.analysis.max_ulp;
  // The first file is the reference, as in `compare REF OTHER`.
  absl::StatusOr<ArrayDrift> d = CompareArrays(*b, *a, o);
  if (!d.ok()) {
    return ReportError(
        err, absl::InvalidArgumentError(absl::StrCat(
                 b_path, " vs ", a_path, ": ", d.status().message())));
  }
  bool pass = !flags.fail_above || d->overall.rel_l2 <= *flags.fail_above;
  if (flags.tolerance_given || !flags.fail_above) pass = pass && d->pass;
  if (flags.format == "json") {
    std::fputs(ArrayDriftToJson(*d).c_str(), out);
    std::fputs("\n", out);
  } else {
    const DriftStats& s = d->overall;
    std::fprintf(
        out,
        "%s vs reference %s: %s %s\n"
        "  bitwise identical  %s\n"
        "  differing          %lld of %lld (%.3g%%)\n"
        "  max |d|            %.6g\n"
        "  mean |d|, RMS      %.6g, %.6g\n"
        "  max rel error      %.6g\n"
        "  relative L2        %.6g\n"
        "  cosine             %.17g\n"
        "  ULP (%s)      max %llu, median %g\n"
        "  significant bits   min %.1f, mean %.1f, median %.1f\n"
        "  NaN/Inf mismatches %lld / %lld\n"
        "  verdict            %s\n",
        b_path.c_str(), a_path.c_str(), d->dtype_a.c_str(),
        a->ShapeString().c_str(), d->bitwise_identical ? "yes" : "no",
        static_cast<long long>(s.differing), static_cast<long long>(s.count),
        100 * s.differing_fraction, s.max_abs, s.mean_abs, s.rms, s.max_rel,
        s.rel_l2, s.cosine, d->ulp_unit.c_str(),
        static_cast<unsigned long long>(s.max_ulp), s.median_ulp,
        s.min_sig_bits, s.mean_sig_bits, s.median_sig_bits,
        static_cast<long long>(s.nan_mismatches),
        static_cast<long long>(s.inf_mismatches), pass ? "pass" : "FAIL");
  }
  return pass ? kExitOk : kExitFailure;
}

// compare --workers A,B,... [SPEC]: the job on every worker, then the report.
int CompareWorkers(const ParsedArgs& args, const std::string& list,
                   std::FILE* out, std::FILE* err) {
  absl::StatusOr<ReportFlags> flags = ParseReportFlags(args);
  if (!flags.ok()) return ReportError(err, flags.status());
  if (args.positional.size() > 1) {
    return ReportError(err,
                       absl::InvalidArgumentError(
                           "compare --workers takes at most one SPEC.json"));
  }
  JobSpec spec = DefaultJobSpec();
  if (!args.positional.empty()) {
    SuppliedDataPaths supplied;
    absl::StatusOr<JobSpec> s = LoadSpecJson(args.positional[0], &supplied);
    if (!s.ok()) return ReportError(err, s.status());
    spec = *std::move(s);
  }
  spec.training.capture_epoch_outputs = true;
  const std::string profile = args.Get("profile").value_or("");
  if (!profile.empty()) {
    if (absl::StatusOr<Profile> p = Profile::Parse(profile); !p.ok()) {
      return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                  "--profile: ", p.status().message())));
    }
  }
  std::vector<std::string> addresses =
      absl::StrSplit(list, ',', absl::SkipEmpty());
  if (addresses.size() < 2) {
    return ReportError(
        err, absl::InvalidArgumentError(absl::StrCat(
                 "--workers needs at least two HOST:PORT, got '", list, "'")));
  }
  std::vector<std::unique_ptr<WorkerClient>> clients;
  for (const std::string& a : addresses) {
    absl::StatusOr<WorkerClientOptions> o = WorkerOptionsFromFlags(args, a);
    if (!o.ok()) return ReportError(err, o.status());
    absl::StatusOr<std::unique_ptr<WorkerClient>> c = WorkerClient::Create(*o);
    if (!c.ok()) return ReportError(err, c.status());
    clients.push_back(*std::move(c));
  }
  // All workers run at once; each result is labelled by its address.
  std::vector<absl::StatusOr<RunResult>> results(clients.size(),
                                                 absl::UnknownError("not run"));
  std::vector<absl::StatusOr<WorkerDescription>> descs(
      clients.size(), absl::UnknownError("not asked"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < clients.size(); ++i) {
    threads.emplace_back([&, i] {
      descs[i] = clients[i]->Describe();
      if (descs[i].ok()) results[i] = clients[i]->Run(spec, profile);
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<RunRecord> records;
  for (size_t i = 0; i < clients.size(); ++i) {
    const absl::Status s =
        descs[i].ok() ? results[i].status() : descs[i].status();
    if (!s.ok()) {
      return ReportError(
          err, absl::Status(s.code(),
                            absl::StrCat(addresses[i], ": ", s.message())));
    }
    RunRecord r = RecordFromResult(addresses[i], 0, *results[i]);
    r.environment = EnvironmentMap(descs[i]->environment);
    r.environment["profile"] = results[i]->profile;
    AddDeviceRunEntries(results[i]->device, &r.environment);
    records.push_back(std::move(r));
  }
  std::string html;
  absl::StatusOr<int> code =
      EmitReport(records, *flags, "", "", "", out, &html);
  if (!code.ok()) return ReportError(err, code.status());
  if (absl::Status s = WriteHtml(*flags, html, err); !s.ok()) {
    return ReportError(err, s);
  }
  return *code;
}

}  // namespace

int CompareCommand(const std::vector<std::string>& args, std::FILE* out,
                   std::FILE* err) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(CommandUsage("compare"), out);
      return kExitOk;
    }
  }
  std::set<std::string> value_flags = {"reference",  "atol",    "rtol",
                                       "max-ulp",    "format",  "html",
                                       "fail-above", "workers", "profile"};
  value_flags.insert(RemoteValueFlags().begin(), RemoteValueFlags().end());
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(args, value_flags, RemoteSwitchFlags());
  if (!parsed.ok()) return ReportError(err, parsed.status());
  if (auto workers = parsed->Get("workers")) {
    return CompareWorkers(*parsed, *workers, out, err);
  }
  if (parsed->positional.size() != 2) {
    return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                "compare takes two run directories or two "
                                ".npy files (reference first), got ",
                                parsed->positional.size())));
  }
  absl::StatusOr<ReportFlags> flags = ParseReportFlags(*parsed);
  if (!flags.ok()) return ReportError(err, flags.status());
  const std::string& a = parsed->positional[0];
  const std::string& b = parsed->positional[1];
  if (absl::EndsWith(a, ".npy") || absl::EndsWith(b, ".npy")) {
    if (!absl::EndsWith(a, ".npy") || !absl::EndsWith(b, ".npy")) {
      return ReportError(err, absl::InvalidArgumentError(
                                  "compare: give two .npy files or two run "
                                  "directories, not one of each"));
    }
    return CompareNpy(a, b, *flags, out, err);
  }
  std::vector<RunRecord> records;
  for (const std::string& dir : {a, b}) {
    // Labels: the directory names, made unique.
    std::string name = dir;
    while (name.size() > 1 && name.back() == '/') name.pop_back();
    name = name.substr(name.find_last_of('/') + 1);
    if (!records.empty() && records[0].name == name) name += " (2)";
    absl::StatusOr<RunRecord> r = LoadRunDir(dir, name);
    if (!r.ok()) return ReportError(err, r.status());
    records.push_back(*std::move(r));
  }
  ReportFlags f = *flags;
  if (f.reference.empty()) {
    f.reference = records[0].name;  // the first argument is the reference
  } else if (f.reference != records[0].name && f.reference != records[1].name) {
    return ReportError(err,
                       absl::InvalidArgumentError(absl::StrCat(
                           "--reference '", f.reference, "' is neither '",
                           records[0].name, "' nor '", records[1].name, "'")));
  }
  f.analysis.reference = f.reference;
  std::string html;
  absl::StatusOr<int> code = EmitReport(records, f, "", "", "", out, &html);
  if (!code.ok()) return ReportError(err, code.status());
  if (absl::Status s = WriteHtml(f, html, err); !s.ok()) {
    return ReportError(err, s);
  }
  return *code;
}

}  // namespace driftscope::cli
