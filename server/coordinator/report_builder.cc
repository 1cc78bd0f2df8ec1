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
#include "proto/lib/run_records.h"
#include "proto/lib/tensor_stream.h"
#include "server/coordinator/job_view.h"

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

// A job's results as the store holds them (RunInfo.summary.tensors name the
// blobs).
class StoreRunSource : public RunSource {
 public:
  explicit StoreRunSource(Store& store) : store_(store) {}

  absl::StatusOr<std::vector<NamedArray>> Tensors(
      const v1::RunInfo& run, const std::vector<std::string>& names) override {
    std::vector<NamedArray> out;
    for (const v1::TensorInfo& info : run.summary().tensors()) {
      if (std::find(names.begin(), names.end(), info.name()) == names.end()) {
        continue;
      }
      absl::StatusOr<NdArray> t = LoadTensor(store_.blobs(), info);
      if (!t.ok()) return t.status();
      out.push_back({info.name(), *std::move(t)});
    }
    return out;
  }
  absl::StatusOr<std::vector<v1::Fingerprint>> Fingerprints(
      const v1::RunInfo& run) override {
    return store_.GetFingerprints(run.run_id());
  }

 private:
  Store& store_;
};

}  // namespace

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

absl::StatusOr<v1::DriftReport> BuildReport(
    Store& store, const v1::GetReportRequest& request) {
  if (request.job_id().empty()) {
    return absl::InvalidArgumentError("job_id is required");
  }
  absl::StatusOr<std::vector<RunRow>> runs = store.GetRuns(request.job_id());
  if (!runs.ok()) return runs.status();
  absl::StatusOr<JobRow> job = store.GetJob(request.job_id());
  if (!job.ok()) return job.status();
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
  // The records, their names and the analysis are those of `driftscope
  // report` (proto/lib/run_records.h): the same runs give the same report.
  const v1::Job view = JobFromRows(*job, *runs, nullptr);
  const std::vector<std::string> labels = RunLabels(view);
  for (size_t i = 0; i < runs->size(); ++i) {
    if (&(*runs)[i] == reference) options.reference = labels[i];
  }
  StoreRunSource source(store);
  absl::StatusOr<JobRecords> records = CollectJobRecords(view, source);
  if (!records.ok()) return records.status();
  ReportContext context;
  context.job_id = request.job_id();
  context.tolerance = tolerance;
  context.reference_reason = reason;
  context.run_ids = records->run_ids;
  absl::StatusOr<DriftReport> report = AnalyzeRuns(records->records, options);
  if (!report.ok()) return report.status();
  return ReportToProto(*report, records->records, context);
}

}  // namespace driftscope::coordinator
