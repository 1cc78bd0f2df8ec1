// CoordinatorService: what the coordinator does for each call of
// driftscope.v1.Coordinator, without gRPC (coordinator_server.h is the thin
// gRPC layer over it).
//
// SubmitJob first looks its client_request_id up (a retry gets its job
// even when the workers it was planned for are gone), else checks the
// request completely and plans its runs before the store is touched, answers
// only after the store committed the job (acknowledged = durable), and is
// idempotent on client_request_id. RegisterWorker checks who registers
// (WorkerRegistry::CheckRegistrant), then describes the worker at the
// address it gave, with the credential the registration earned, and
// registers what that Describe says (see RegisterWorkerRequest). CancelJob
// answers after the store committed the cancel; from then on no run result of
// the job is stored. WatchJob streams a snapshot, then the job's events until
// it is terminal; it runs on the caller's thread and never slows the scheduler.
// Safe for concurrent use.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_COORDINATOR_SERVICE_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_COORDINATOR_SERVICE_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "driftscope/v1/coordinator.pb.h"
#include "server/coordinator/job_events.h"
#include "server/coordinator/job_plan.h"
#include "server/coordinator/scheduler.h"
#include "server/coordinator/store.h"
#include "server/coordinator/worker_connector.h"
#include "server/coordinator/worker_registry.h"

namespace driftscope::coordinator {

struct CoordinatorServiceOptions {
  SubmitLimits limits;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // How often a watcher with nothing to send checks whether its client left.
  absl::Duration watch_poll = absl::Milliseconds(200);
};

class CoordinatorService {
 public:
  // Returns false when the receiver is gone.
  using EventSink = std::function<bool(const v1::JobEvent&)>;
  using ChunkSink = std::function<bool(v1::TensorChunk*)>;
  using FingerprintSink = std::function<bool(const v1::FingerprintBatch&)>;

  // Nothing is owned; everything must outlive the service.
  CoordinatorService(Store* store, WorkerRegistry* registry,
                     Scheduler* scheduler, JobEventHub* events,
                     WorkerConnector* connector,
                     CoordinatorServiceOptions options);
  CoordinatorService(const CoordinatorService&) = delete;
  CoordinatorService& operator=(const CoordinatorService&) = delete;

  // `identity`: the caller's proven identity, its client certificate's
  // under mTLS, else "" (Registrant). A worker whose Describe fails is not
  // registered: FailedPrecondition when it refused the coordinator's
  // credential, else Unavailable, naming worker.address.
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request,
      const std::string& identity = "");
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request);
  v1::ListWorkersResponse ListWorkers() const;

  absl::StatusOr<v1::Job> SubmitJob(const v1::SubmitJobRequest& request);
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id) const;
  absl::StatusOr<v1::ListJobsResponse> ListJobs(
      const v1::ListJobsRequest& request) const;
  // Ends OK after the terminal job_state event; Cancelled when `cancelled`
  // turns true or the sink fails first.
  absl::Status WatchJob(const std::string& job_id,
                        const std::function<bool()>& cancelled,
                        const EventSink& sink);
  absl::StatusOr<v1::Job> CancelJob(const std::string& job_id);

  absl::StatusOr<v1::DriftReport> GetReport(
      const v1::GetReportRequest& request) const;
  absl::Status FetchResult(const v1::FetchResultRequest& request,
                           const std::function<bool()>& cancelled,
                           const ChunkSink& sink) const;
  // Every stored fingerprint of a succeeded run, in batches of at most
  // kFingerprintsPerBatch.
  absl::Status FetchFingerprints(const v1::FetchFingerprintsRequest& request,
                                 const std::function<bool()>& cancelled,
                                 const FingerprintSink& sink) const;
  static constexpr int kFingerprintsPerBatch = 4096;

  // Draining: every WatchJob ends with Unavailable ("watch again") and
  // SubmitJob is Unavailable (a client retries it on the next coordinator,
  // and its client_request_id keeps that from making a second job).
  void BeginDraining() { stopping_.store(true); }

 private:
  // The answer to a submission whose client_request_id already names
  // `existing`: that job when `spec_digest` is its digest, else
  // AlreadyExists.
  absl::StatusOr<v1::Job> SameJobAgain(const v1::SubmitJobRequest& request,
                                       const JobRow& existing,
                                       const std::string& spec_digest);
  // The run `run_id` of job `job_id`, which must have succeeded.
  absl::StatusOr<RunRow> SucceededRun(const std::string& job_id,
                                      const std::string& run_id) const;

  Store* const store_;
  WorkerRegistry* const registry_;
  Scheduler* const scheduler_;
  JobEventHub* const events_;
  WorkerConnector* const connector_;
  const CoordinatorServiceOptions options_;
  std::atomic<bool> stopping_{false};
};

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_COORDINATOR_SERVICE_H_
