// The coordinator's durable state (DESIGN §9): jobs, their runs and every
// dispatch attempt, plus a content-addressed blob directory for tensors.
//
// Store is an interface so that a PostgreSQL implementation can later serve
// several coordinators; SqliteStore (sqlite_store.h) is the embedded
// default. Every mutating call is one transaction: when it returns OK the
// change is durable (synchronous=FULL), when it fails nothing changed.
//
// Progress (the step counter of a running run) is deliberately NOT stored:
// it changes every training step and lives in the scheduler's memory. Only
// state transitions are written.
//
// Implementations are safe for concurrent use.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_STORE_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "driftscope/v1/coordinator.pb.h"
#include "driftscope/v1/job.pb.h"
#include "driftscope/v1/worker.pb.h"

namespace driftscope::coordinator {

// One dispatch of a run to a worker. Attempts are numbered from 1.
struct AttemptRow {
  int attempt = 0;
  std::string worker;
  int64_t started_unix_ms = 0;
  int64_t ended_unix_ms = 0;  // 0 while in flight
  // How it ended: "" while in flight, "succeeded", "failed", "cancelled",
  // "interrupted" (coordinator restarted while it was in flight).
  std::string outcome;
  int32_t code = 0;     // google.rpc.Code when it failed
  std::string message;  // the reason, readable
};

struct RunRow {
  std::string run_id;  // unique across jobs
  std::string job_id;
  // Worker the placement asked for; the attempt may run elsewhere after a
  // retry (AttemptRow::worker).
  std::string worker;
  std::string profile;  // requested profile text
  int repeat = 0;       // 0-based
  v1::RunState state = v1::RUN_QUEUED;
  int current_attempt = 0;           // 0: never dispatched
  std::vector<AttemptRow> attempts;  // in attempt order
  v1::RunSummary summary;  // when RUN_SUCCEEDED; tensors[i].sha256 = blob
  v1::RunFailed failure;   // when RUN_FAILED or RUN_CANCELLED
};

struct JobRow {
  std::string job_id;
  std::string client_request_id;  // "" when the client gave none
  std::string spec_digest;
  v1::JobSpec spec;
  v1::Placement placement;
  std::string description;
  std::vector<v1::Tensor> init_weights;  // persisted by the store
  v1::JobState state = v1::JOB_QUEUED;
  int64_t created_unix_ms = 0;
  int64_t finished_unix_ms = 0;  // 0 while not terminal
};

struct CreateJobResult {
  // The job now stored under the request id: the new one, or the one a
  // previous SubmitJob with the same client_request_id created.
  std::string job_id;
  bool created = false;
  std::string existing_spec_digest;  // when !created: compare before reuse
};

struct ListJobsQuery {
  int page_size = 50;
  std::string page_token;            // "" = first page; opaque otherwise
  std::vector<v1::JobState> states;  // empty = all
};

struct ListJobsPage {
  std::vector<JobRow> jobs;     // newest first; init_weights not loaded
  std::string next_page_token;  // "" on the last page
};

// Content-addressed blobs: the key is the lowercase hex SHA-256 of the
// bytes. Put is idempotent and durable (written to a temporary file,
// fsync'ed, renamed, directory fsync'ed) before it returns.
// Drops all of `summary`'s fingerprints but the first and the last: what a
// stored summary keeps (CompleteRun) and what a job view shows.
inline void KeepFirstAndLastFingerprints(v1::RunSummary* summary) {
  const int n = summary->fingerprints_size();
  if (n > 2) {
    summary->mutable_fingerprints()->SwapElements(1, n - 1);
    summary->mutable_fingerprints()->DeleteSubrange(2, n - 2);
  }
}

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  virtual absl::StatusOr<std::string> Put(absl::string_view data) = 0;
  // Put for bytes whose SHA-256 the caller has just checked (a received
  // tensor): stored under `sha256` without hashing them again. Get still
  // re-hashes, so a wrong digest surfaces as DataLoss there. InvalidArgument
  // when `sha256` is not 64 lowercase hex digits.
  virtual absl::StatusOr<std::string> PutVerified(absl::string_view data,
                                                  absl::string_view sha256) = 0;
  // NotFound when absent; DataLoss when the bytes no longer hash to `sha256`.
  virtual absl::StatusOr<std::string> Get(absl::string_view sha256) = 0;
  // The same, read straight into `out` (a tensor's memory), which must be
  // the blob's size: DataLoss naming both sizes when it is not.
  virtual absl::Status GetInto(absl::string_view sha256,
                               absl::Span<uint8_t> out) = 0;
  virtual bool Has(absl::string_view sha256) = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Inserts the job and its runs (all RUN_QUEUED) atomically. When
  // job.client_request_id is non-empty and already used, stores nothing and
  // returns the existing job's id with created = false.
  virtual absl::StatusOr<CreateJobResult> CreateJob(
      const JobRow& job, const std::vector<RunRow>& runs) = 0;

  // The job a CreateJob with this (non-empty) client_request_id stored,
  // without its init_weights; nullopt when there is none. One read, so a
  // retried SubmitJob finds its job before planning it again.
  virtual absl::StatusOr<std::optional<JobRow>> FindJobByRequestId(
      absl::string_view client_request_id) = 0;

  // NotFound when the id is unknown.
  virtual absl::StatusOr<JobRow> GetJob(absl::string_view job_id) = 0;
  virtual absl::StatusOr<std::vector<RunRow>> GetRuns(
      absl::string_view job_id) = 0;  // in creation order
  virtual absl::StatusOr<RunRow> GetRun(absl::string_view run_id) = 0;
  // Every weight fingerprint of a succeeded run, in step order (empty for a
  // run without a result). NotFound when the id is unknown.
  virtual absl::StatusOr<std::vector<v1::Fingerprint>> GetFingerprints(
      absl::string_view run_id) = 0;
  // InvalidArgument for a malformed page token.
  virtual absl::StatusOr<ListJobsPage> ListJobs(const ListJobsQuery& query) = 0;

  // Records attempt number `attempt` (must be current_attempt + 1) of a
  // QUEUED run on `worker`; the run becomes RUN_RUNNING and the job
  // JOB_RUNNING. FailedPrecondition when the run is not QUEUED, the attempt
  // number is wrong or the job is terminal.
  virtual absl::Status StartAttempt(absl::string_view run_id, int attempt,
                                    absl::string_view worker,
                                    int64_t now_unix_ms) = 0;

  // Ends the current attempt `attempt` unsuccessfully with (code, message).
  // retry = true puts the run back to RUN_QUEUED (a later StartAttempt),
  // false makes it RUN_FAILED with `failure` = (code, message).
  // FailedPrecondition when `attempt` is not the current in-flight attempt.
  virtual absl::Status FailAttempt(absl::string_view run_id, int attempt,
                                   int32_t code, absl::string_view message,
                                   bool retry, int64_t now_unix_ms) = 0;

  // Stores a successful result of attempt `attempt`: the run becomes
  // RUN_SUCCEEDED with `summary`. The summary's fingerprints (one per step)
  // are kept apart: the stored summary holds only the first and the last,
  // GetFingerprints all of them, so reading a job never parses a long run's
  // fingerprints. Every summary.tensors[i].sha256 must already be in
  // blobs(). Rejected with FailedPrecondition, storing
  // nothing, when `attempt` is not the run's current in-flight attempt (a
  // late result of a superseded attempt), or the run or its job is
  // terminal (e.g. cancelled).
  virtual absl::Status CompleteRun(absl::string_view run_id, int attempt,
                                   const v1::RunSummary& summary,
                                   int64_t now_unix_ms) = 0;

  // Marks the job JOB_CANCELLED and every non-terminal run RUN_CANCELLED
  // (in-flight attempts end "cancelled") in one transaction. Cancelling a
  // terminal job is FailedPrecondition and changes nothing.
  virtual absl::Status CancelJob(absl::string_view job_id,
                                 int64_t now_unix_ms) = 0;

  // Sets a terminal job state (SUCCEEDED or FAILED) once every run is
  // terminal; FailedPrecondition otherwise.
  virtual absl::Status FinishJob(absl::string_view job_id, v1::JobState state,
                                 int64_t now_unix_ms) = 0;

  // For a restart: every in-flight attempt ends "interrupted" and its run
  // goes back to RUN_QUEUED; returns the ids of non-terminal jobs, oldest
  // first, so the scheduler can queue their runs again.
  virtual absl::StatusOr<std::vector<std::string>> RecoverUnfinished(
      int64_t now_unix_ms) = 0;

  virtual BlobStore& blobs() = 0;
};

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_STORE_H_
