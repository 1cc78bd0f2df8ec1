// Stored rows (store.h) as the Job / RunInfo messages clients see.
// Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_JOB_VIEW_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_JOB_VIEW_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "driftscope/v1/coordinator.pb.h"
#include "proto/lib/run_records.h"  // IsTerminal
#include "server/coordinator/store.h"

namespace driftscope::coordinator {

// Progress of a running run (the scheduler keeps it in memory only).
struct RunProgress {
  int64_t step = 0;
  int64_t total_steps = 0;
};
using ProgressLookup =
    std::function<std::optional<RunProgress>(const std::string& run_id)>;

// The summary keeps only the first and the last fingerprint
// (coordinator.proto, RunInfo.summary). `with_summary` false leaves the
// summary out (ListJobs).
v1::RunInfo RunInfoFromRow(const RunRow& row,
                           const std::optional<RunProgress>& progress,
                           bool with_summary = true);

// `with_details` false: no spec and no run summaries (ListJobs).
v1::Job JobFromRows(const JobRow& job, const std::vector<RunRow>& runs,
                    const ProgressLookup& progress, bool with_details = true);

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_JOB_VIEW_H_
