// The medians and histograms of the drift metrics (part of CompareArrays,
// engine/drift/array_drift.h), and a group's DriftStats. A median is exact:
// PlanGroup reads the ranks off a group's fine-key histograms, and when a
// middle rank falls in a key holding more than one value the second pass
// gathers that key's values (kernels' Gather) for FinishMedians to select
// from. GroupStats turns what is kept of a group into its DriftStats.
//
// Thread-safety: pure functions over caller-owned values; a GroupResult is
// used by one thread at a time. Private to engine/drift.
#ifndef DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_MEDIANS_H_
#define DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_MEDIANS_H_

#include <array>
#include <cstdint>
#include <vector>

#include "engine/drift/array_drift.h"
#include "engine/drift/array_drift_accumulate.h"
#include "engine/drift/array_drift_kernels.h"

namespace driftscope {
namespace drift_internal {

using drift_kernels::KeyRange;

// Exact median over fine keys: the keys holding the two middle ranks, and
// the median itself when both keys hold a single value.
struct MedianTarget {
  bool need_values = false;
  KeyRange keys;
  int64_t in_keys = 0;  // elements with keys in `keys`
  int64_t below = 0;    // elements with smaller keys
  int64_t rank_lo = 0, rank_hi = 0;
  double known = 0;
};

// What is kept of a group once its elements are visited.
struct GroupResult {
  Acc acc;
  std::array<int64_t, kUlpBuckets> ulp_buckets{};
  MedianTarget ulp, sig;
  std::vector<uint64_t> ulp_values, sig_values;
  double median_ulp = 0, median_sig = 0;
};

// The ULP buckets of a group from its histograms, and its median targets.
void PlanGroup(const std::vector<int64_t>& ulp_hist,
               const std::vector<int64_t>& sig_hist, const Params& p,
               GroupResult* g);

// False when the gathered values do not match the histograms.
bool FinishMedians(GroupResult* g);

// The DriftStats of a group, with the verdict under `o`.
DriftStats GroupStats(const GroupResult& g, const DriftOptions& o, double cap);

}  // namespace drift_internal
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_MEDIANS_H_
