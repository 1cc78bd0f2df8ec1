#include "server/coordinator/report_builder.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/numerics/profile.h"
#include "proto/lib/report_convert.h"
#include "proto/lib/tensor_stream.h"

namespace driftscope::coordinator {

namespace {

const char* StateName(v1::RunState s) { return v1::RunState_Name(s).c_str(); }

bool IsFp64Profile(const std::string& profile) {
  absl::StatusOr<Profile> p = Profile::Parse(profile);
  return p.ok() && p->precision == Precision::kFp64;
}

// The run the report compares against when the request names none, and
// how it was chosen: the first ref64 run, else the first fp64 run, else the
// first run (runs that failed are passed over while another candidate
// remains).
std::pair<const RunRow*, std::string> DefaultReference(
    const std::vector<RunRow>& runs) {
  auto pick = [&](auto&& matches) -> const RunRow* {
    const RunRow* any = nullptr;
    for (const RunRow& r : runs) {
      if (!matches(r)) continue;
      if (r.state != v1::RUN_FAILED && r.state != v1::RUN_CANCELLED) return &r;
      if (any == nullptr) any = &r;
    }
    return any;
  };
  if (const RunRow* r =
          pick([](const RunRow& r) { return r.profile == "ref64"; })) {
    return {r, "ref64"};
  }
  if (const RunRow* r =
          pick([](const RunRow& r) { return IsFp64Profile(r.profile); })) {
    return {r, "fp64"};
  }
  return {pick([](const RunRow&) { return true; }), "first"};
}

}  // namespace

std::string EnvironmentName(const RunRow& run) {
  const std::string& worker =
      run.attempts.empty() ? run.worker : run.attempts.back().worker;
  return absl::StrCat(worker, "/", run.profile);
}

absl::StatusOr<NdArray> LoadTensor(BlobStore& blobs,
                                   const v1::TensorInfo& info) {
  absl::StatusOr<DType> dtype = DTypeFromProto(info.dtype());
  if (!dtype.ok()) return dtype.status();
  std::vector<int64_t> shape(info.shape().begin(), info.shape().end());
  if (ElementCount(shape) < 0) {
    return absl::DataLossError(absl::StrCat(
        "tensor \"", info.name(), "\": stored shape is not a valid shape"));
  }
  // Read straight into the array; GetInto checks the size and the hash.
  NdArray array = NdArray::Uninitialized(*dtype, std::move(shape));
  if (absl::Status s = blobs.GetInto(
          info.sha256(),
          absl::MakeSpan(array.raw(), static_cast<size_t>(array.nbytes())));
      !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("tensor \"", info.name(), "\" (blob ",
                                     info.sha256(), "): ", s.message()));
  }
  return array;
}

absl::StatusOr<RunRecord> LoadRunRecord(Store& store, const RunRow& run) {
  RunRecord rec;
  rec.name = EnvironmentName(run);
  rec.repeat = run.repeat;
  rec.spec_digest = run.summary.spec_digest();
  rec.profile = run.summary.profile();
  std::map<int, NdArray> epochs;
  bool have_outputs = false;
  for (const v1::TensorInfo& info : run.summary.tensors()) {
    int epoch = -1;
    const bool is_epoch =
        absl::StartsWith(info.name(), "epoch") &&
        absl::SimpleAtoi(absl::string_view(info.name()).substr(5), &epoch);
    if (info.name() != "outputs" && info.name() != "losses" && !is_epoch) {
      continue;
    }
    absl::StatusOr<NdArray> t = LoadTensor(store.blobs(), info);
    if (!t.ok()) return t.status();
    if (info.name() == "outputs") {
      rec.outputs = *std::move(t);
      have_outputs = true;
    } else if (info.name() == "losses") {
      rec.losses = *std::move(t);
    } else {
      epochs[epoch] = *std::move(t);
    }
  }
  if (!have_outputs) {
    return absl::DataLossError(
        absl::StrCat("run ", run.run_id, " has no stored outputs"));
  }
  for (auto& [k, e] : epochs) rec.epoch_outputs.push_back(std::move(e));
  absl::StatusOr<std::vector<v1::Fingerprint>> fingerprints =
      store.GetFingerprints(run.run_id);
  if (!fingerprints.ok()) return fingerprints.status();
  for (const v1::Fingerprint& f : *fingerprints) {
    rec.fingerprints.push_back(f.sha256());
    rec.fingerprints_f32.push_back(f.sha256_f32());
  }
  const v1::Environment& env = run.summary.environment();
  auto put = [&](const char* key, const std::string& value) {
    if (!value.empty()) rec.environment[key] = value;
  };
  put("hostname", env.hostname());
  put("os", env.os());
  put("cpu_model", env.cpu_model());
  put("compiler", env.compiler());
  put("compile_flags", env.compile_flags());
  put("blas", env.blas());
  put("engine_version", env.engine_version());
  put("profile", run.summary.profile());
  return rec;
}

absl::StatusOr<v1::DriftReport> BuildReport(
    Store& store, const v1::GetReportRequest& request) {
  if (request.job_id().empty()) {
    return absl::InvalidArgumentError("job_id is required");
  }
  absl::StatusOr<std::vector<RunRow>> runs = store.GetRuns(request.job_id());
  if (!runs.ok()) return runs.status();
  if (absl::StatusOr<JobRow> job = store.GetJob(request.job_id()); !job.ok()) {
    return job.status();
  }
  const RunRow* reference = nullptr;
  std::string reason = "named";
  if (!request.reference_run_id().empty()) {
    for (const RunRow& r : *runs) {
      if (r.run_id == request.reference_run_id()) reference = &r;
    }
    if (reference == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("reference_run_id \"", request.reference_run_id(),
                       "\" is not a run of job ", request.job_id()));
    }
  } else {
    std::tie(reference, reason) = DefaultReference(*runs);
    if (reference == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", request.job_id(), " has no runs"));
    }
  }
  if (reference->state != v1::RUN_SUCCEEDED) {
    std::string why = absl::StrCat("the reference run ", reference->run_id,
                                   " is ", StateName(reference->state));
    if (reference->state == v1::RUN_FAILED ||
        reference->state == v1::RUN_CANCELLED) {
      absl::StrAppend(&why, " (", reference->failure.message(),
                      "); name another run with reference_run_id");
    } else {
      absl::StrAppend(&why, "; ask again once it has succeeded");
    }
    return absl::FailedPreconditionError(why);
  }

  AnalysisOptions options;
  std::optional<v1::Tolerance> tolerance;
  if (request.has_tolerance()) {
    const v1::Tolerance& t = request.tolerance();
    if (!(t.atol() >= 0) || !(t.rtol() >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tolerance.atol and tolerance.rtol must be >= 0, got ",
                       t.atol(), " and ", t.rtol()));
    }
    if (t.has_max_ulp() && t.max_ulp() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tolerance.max_ulp must be >= 0, got ", t.max_ulp()));
    }
    options.atol = t.atol();
    options.rtol = t.rtol();
    if (t.has_max_ulp()) options.max_ulp = static_cast<uint64_t>(t.max_ulp());
    if (t.has_relative_floor()) options.rel_floor = t.relative_floor();
    tolerance = t;
  }
  options.reference = EnvironmentName(*reference);

  std::vector<RunRecord> records;
  ReportContext context;
  context.job_id = request.job_id();
  context.tolerance = tolerance;
  context.reference_reason = reason;
  for (const RunRow& r : *runs) {
    if (r.state != v1::RUN_SUCCEEDED) continue;
    absl::StatusOr<RunRecord> rec = LoadRunRecord(store, r);
    if (!rec.ok()) return rec.status();
    records.push_back(*std::move(rec));
    context.run_ids.push_back(r.run_id);
  }
  absl::StatusOr<DriftReport> report = AnalyzeRuns(records, options);
  if (!report.ok()) return report.status();
  return ReportToProto(*report, records, context);
}

}  // namespace driftscope::coordinator
