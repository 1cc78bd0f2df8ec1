// Placement: which worker a queued run goes to now, if any — the decision
// of the scheduler's dispatch loop as a pure function, so the policy is
// tested without threads, sockets or clocks (tests/server/coordinator/
// placement_test.cc). The scheduler only acts on the answer.
//
// The policy: a run waits for the worker its placement named while that
// worker is registered and available (or, when it has never been seen,
// during the startup grace); it starts there when a slot is free. When the
// named worker is gone, the run moves to the least loaded available worker
// that can run its profile. A run that no available worker could ever take
// is given up once it has waited placement_timeout.
//
// Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_PLACEMENT_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_PLACEMENT_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "driftscope/v1/coordinator.pb.h"

namespace driftscope::coordinator {

// A registered worker as placement sees it.
struct WorkerSlots {
  const v1::WorkerInfo* info = nullptr;  // name, max_concurrent_runs, presets
  bool available = false;                // WORKER_AVAILABLE
  int free_slots = 0;  // max_concurrent_runs minus the runs it has now
};

// A queued run.
struct QueuedRun {
  std::string worker;   // the worker its placement named
  std::string profile;  // requested profile text
  absl::Time queued_since;
};

// When the decision is made.
struct PlacementClock {
  absl::Time now;
  // Whether the startup grace is over: a named worker that has never
  // registered counts as gone only then.
  bool grace_over = false;
  absl::Duration placement_timeout;
};

struct Placement {
  enum Kind { kStart, kWait, kGiveUp } kind = kWait;
  int worker = -1;  // kStart: index into the workers given
};

Placement PlaceRun(const QueuedRun& run,
                   const std::vector<WorkerSlots>& workers,
                   const PlacementClock& clock);

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_PLACEMENT_H_
