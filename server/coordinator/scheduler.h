// Scheduler: dispatches every queued run of every job to a worker, one Run
// RPC per attempt, and records each transition in the store (DESIGN §2).
//
// Placement: a run goes to the worker its placement named while that worker
// is AVAILABLE (it waits for a free slot there: at most max_concurrent_runs
// per worker). When that worker is gone (UNAVAILABLE, DRAINING, or unknown
// longer than the startup grace after a coordinator restart), the run goes
// to the least-loaded other AVAILABLE worker that can run its profile, and
// back to the named one once it returns. A run that finds no eligible
// worker for `placement_timeout` fails with that reason.
//
// Retries: an attempt that ends because its worker disappeared (RPC
// UNAVAILABLE, a broken or corrupted stream, a lease that ran out) or with
// a transient error is retried, up to `max_attempts` failed attempts per
// run; a deterministic failure (INVALID_ARGUMENT, FAILED_PRECONDITION,
// RESOURCE_EXHAUSTED from the worker's limits, DEADLINE_EXCEEDED of
// --run_deadline, ...) ends the run FAILED at once. Every attempt and its
// reason is in the store. A job whose runs are all terminal becomes
// SUCCEEDED (all succeeded) or FAILED.
//
// Results: the tensors received (already checked chunk by chunk by the
// client library) go to the store's blob directory before CompleteRun; the
// store rejects a late result of a superseded attempt or of a cancelled
// job.
//
// Store faults: when the end of an attempt cannot be written (disk full,
// an I/O error), the run would stay RUNNING in the store with nothing
// running it. The scheduler keeps such an end in memory, and a reconciler
// (on the ticker, every `reconcile_interval`, and once right after Start)
// writes it again until the store takes it, then re-queues or ends the run
// as it would have; it does the same for a job whose end could not be
// written. It also re-queues any run the store holds RUNNING whose attempt
// is not in flight here (ending that attempt "failed" with the reason), so
// a write that failed anywhere cannot strand a run until a restart.
//
// Threads: one dispatcher, one ticker (lease expiry, static worker probes,
// the reconciler) and one thread per attempt in flight. Never blocks on a
// watcher (events go through JobEventHub). Safe for concurrent use.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_SCHEDULER_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_SCHEDULER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/core/ndarray.h"
#include "engine/job/job_spec.h"
#include "engine/train/run_result.h"
#include "server/coordinator/job_events.h"
#include "server/coordinator/job_view.h"
#include "server/coordinator/store.h"
#include "server/coordinator/worker_connector.h"
#include "server/coordinator/worker_registry.h"

namespace driftscope::coordinator {

struct SchedulerOptions {
  int max_attempts = 3;  // failed attempts per run before it fails
  absl::Duration placement_timeout = absl::Seconds(60);
  // Static workers (--workers) are described again this often.
  absl::Duration probe_interval = absl::Seconds(5);
  // After a start, a named worker the registry does not know yet is waited
  // for this long (it re-registers after a coordinator restart) before its
  // runs go elsewhere. Negative: the registry's lease.
  absl::Duration startup_grace = absl::Seconds(-1);
  std::vector<std::string> static_workers;  // addresses
  // How often the reconciler retries the writes a store fault refused.
  absl::Duration reconcile_interval = absl::Seconds(5);
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Where the scheduler reports what the store refused (the full error,
  // which may name server paths that clients are not shown). Default:
  // stderr.
  std::function<void(const std::string&)> log;
};

class Scheduler {
 public:
  // None of the pointers is owned; all must outlive the scheduler.
  Scheduler(Store* store, WorkerRegistry* registry, WorkerConnector* connector,
            JobEventHub* events, SchedulerOptions options);
  ~Scheduler();  // Shutdown(zero grace)
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Describes the static workers once, recovers the store's unfinished jobs
  // (attempts in flight at a crash end "interrupted", their runs are queued
  // again) and starts the threads.
  absl::Status Start();

  // Queues the runs of a job the store holds (after CreateJob).
  absl::Status AddJob(const std::string& job_id);

  // After the store committed the cancel: drops the job's queued runs,
  // cancels its attempts in flight (their results, if any still arrive,
  // are rejected by the store) and tells the watchers.
  void JobCancelled(const std::string& job_id);

  std::optional<RunProgress> Progress(const std::string& run_id) const;
  // Attempts in flight per worker name.
  std::map<std::string, int> RunningByWorker() const;

  // One pass of the reconciler (see above); the ticker calls it every
  // reconcile_interval. Returns how many runs and jobs it recovered.
  int Reconcile() ABSL_LOCKS_EXCLUDED(mu_);

  // Stops dispatching, lets attempts in flight run up to `grace`, then
  // cancels the rest (they stay in flight in the store and are queued again
  // on the next start) and joins every thread. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  struct ActiveJob;
  struct Pending;
  struct Attempt;
  struct Outcome;
  enum class Abort { kNone, kJobCancelled, kWorkerLost, kShutdown };

  static std::unique_ptr<Pending> PendingFromRow(const RunRow& row,
                                                 absl::Time now);
  int64_t NowMs() const;
  void DispatchLoop();
  void TickLoop();
  void ProbeStaticWorkers();
  void OnWorkerLost(const std::string& name);
  // One pass over the queue: starts what can start, fails what waited too
  // long for a worker.
  void DispatchOnce();
  void FailUnplaceable(std::unique_ptr<Pending> pending,
                       const std::string& reason);
  void RunAttempt(Attempt* attempt);
  // Moves the tensors out of `result` into the blob store.
  absl::Status StoreResult(const Attempt& attempt, RunResult* result);
  void EndAttempt(Attempt* attempt, absl::StatusOr<RunResult>* result);
  // Writes how an attempt ended, then re-queues the run or ends it. When
  // the store refuses the write (other than FailedPrecondition: the run
  // moved on, e.g. cancelled), the outcome waits in unrecorded_ for the
  // reconciler.
  void Record(Outcome outcome);
  // A run of `job_id` became terminal; finishes the job after its last.
  void RunEnded(const std::string& job_id, bool failed);
  void FinishJob(const std::string& job_id, v1::JobState state);
  // Re-queues, with the reason, the runs the store holds RUNNING that are
  // not in flight here.
  int RequeueOrphans();
  void Log(const std::string& line) const;
  void Unmark(const std::string& run_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishRun(const std::string& job_id, const std::string& run_id);
  void ReapFinished() ABSL_LOCKS_EXCLUDED(mu_);

  Store* const store_;
  WorkerRegistry* const registry_;
  WorkerConnector* const connector_;
  JobEventHub* const events_;
  const SchedulerOptions options_;
  absl::Time started_ = absl::InfinitePast();

  mutable absl::Mutex mu_;
  absl::CondVar wake_;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;  // something changed: dispatch
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::shared_ptr<ActiveJob>> jobs_ ABSL_GUARDED_BY(mu_);
  std::list<std::unique_ptr<Pending>> queue_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<Attempt>> in_flight_
      ABSL_GUARDED_BY(mu_);  // by run id
  std::vector<std::unique_ptr<Attempt>> finished_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> running_ ABSL_GUARDED_BY(mu_);  // by worker
  std::map<std::string, RunProgress> progress_ ABSL_GUARDED_BY(mu_);
  // Runs neither queued nor in flight while a write about them is under
  // way (a StartAttempt, or the end of an attempt): not orphans.
  std::multiset<std::string> writing_ ABSL_GUARDED_BY(mu_);
  // Attempt ends and job ends the store refused, for the reconciler.
  std::vector<Outcome> unrecorded_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::JobState> unfinished_jobs_ ABSL_GUARDED_BY(mu_);
  std::thread dispatcher_, ticker_;
};

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_SCHEDULER_H_
