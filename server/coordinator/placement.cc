#include "server/coordinator/placement.h"

#include <limits>

#include "server/coordinator/job_plan.h"

namespace driftscope::coordinator {

Placement PlaceRun(const QueuedRun& run,
                   const std::vector<WorkerSlots>& workers,
                   const PlacementClock& clock) {
  int named = -1;
  for (size_t i = 0; i < workers.size(); ++i) {
    if (workers[i].info->name() == run.worker) named = static_cast<int>(i);
  }
  const bool gone = named < 0 ? clock.grace_over
                              : !workers[static_cast<size_t>(named)].available;
  int target = -1;
  bool eligible_exists = false;
  if (!gone) {
    eligible_exists = true;  // the named worker: wait for it
    if (named >= 0 && workers[static_cast<size_t>(named)].free_slots > 0) {
      target = named;
    }
  } else {
    double best_load = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < workers.size(); ++i) {
      const WorkerSlots& w = workers[i];
      if (!w.available || !CanRunProfile(*w.info, run.profile)) continue;
      eligible_exists = true;
      if (w.free_slots <= 0) continue;
      const double load = 1.0 - static_cast<double>(w.free_slots) /
                                    w.info->max_concurrent_runs();
      if (load < best_load) {
        best_load = load;
        target = static_cast<int>(i);
      }
    }
  }
  if (target >= 0) return {Placement::kStart, target};
  if (!eligible_exists &&
      clock.now - run.queued_since > clock.placement_timeout) {
    return {Placement::kGiveUp, -1};
  }
  return {Placement::kWait, -1};
}

}  // namespace driftscope::coordinator
