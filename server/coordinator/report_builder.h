// GetReport and FetchResult over the store: stored runs and blobs back into
// engine RunRecords / tensors through the same CollectJobRecords that
// `driftscope report` uses (proto/lib/run_records.h), the engine's
// AnalyzeRuns, and the proto DriftReport (proto/lib/report_convert.h).
// Safe for concurrent use (the store is).
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_REPORT_BUILDER_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_REPORT_BUILDER_H_

#include <string>

#include "absl/status/statusor.h"
#include "driftscope/v1/coordinator.pb.h"
#include "engine/core/ndarray.h"
#include "engine/drift/analysis.h"
#include "server/coordinator/store.h"

namespace driftscope::coordinator {

// A stored tensor; DataLoss when its blob is corrupt, NotFound when gone.
absl::StatusOr<NdArray> LoadTensor(BlobStore& blobs,
                                   const v1::TensorInfo& info);

// NotFound for an unknown job or a reference run not in the job;
// FailedPrecondition until the reference run has succeeded;
// InvalidArgument for a negative tolerance.
absl::StatusOr<v1::DriftReport> BuildReport(
    Store& store, const v1::GetReportRequest& request);

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_REPORT_BUILDER_H_
