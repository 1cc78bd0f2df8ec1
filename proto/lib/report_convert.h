// The engine's DriftReport (engine/drift/analysis.h) as the proto
// DriftReport of coordinator.proto. The engine names environments; the
// proto names runs: every environment is represented by its lowest repeat
// (the run AnalyzeRuns compares), as documented in coordinator.proto.
// Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_PROTO_LIB_REPORT_CONVERT_H_
#define DRIFTSCOPE_PROTO_LIB_REPORT_CONVERT_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "driftscope/v1/coordinator.pb.h"
#include "engine/drift/analysis.h"
#include "engine/drift/array_drift.h"

namespace driftscope {

struct ReportContext {
  std::string job_id;
  // Run id of every RunRecord, parallel to `records`.
  std::vector<std::string> run_ids;
  // The tolerance as requested (echoed with the values actually used).
  std::optional<v1::Tolerance> tolerance;
  // "named", "ref64", "fp64" or "first": how the reference was chosen.
  std::string reference_reason;
};

v1::DriftMetrics MetricsToProto(const DriftStats& stats,
                                bool bitwise_identical);

// `records` are the ones `report` was computed from (signed loss
// differences and representative runs come from them).
v1::DriftReport ReportToProto(const DriftReport& report,
                              const std::vector<RunRecord>& records,
                              const ReportContext& context);

}  // namespace driftscope

#endif  // DRIFTSCOPE_PROTO_LIB_REPORT_CONVERT_H_
