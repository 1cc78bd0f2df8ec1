// SqliteStore: the embedded Store (DESIGN §9). One directory holds
//   coordinator.db (+ -wal, -shm)  jobs, runs, attempts, init-weight index
//   blobs/ab/cdef...               tensors, content-addressed (FileBlobStore)
//   LOCK                           flock'ed while a store has it open
// The database runs in WAL mode with synchronous=FULL and foreign keys on.
// Every mutating call is atomic: it runs in a BEGIN IMMEDIATE transaction
// (shared, under a SAVEPOINT of its own, with the writes that queued
// concurrently), so an OK return is on disk and a failed call changed
// nothing. The state rules of store.h are checked inside that transaction.
// The schema is versioned in PRAGMA user_version and migrated forward on
// Open; a database written by a newer driftscope is refused rather than
// guessed at.
//
// Safe for concurrent use: one connection behind a mutex. Concurrent writes
// are group-committed (one fsync for every write queued meanwhile), so the
// write rate grows with the number of writers instead of being one fsync
// per call. One process at a time per directory: Open fails while another
// store (in this or another process) holds the LOCK.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_SQLITE_STORE_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_SQLITE_STORE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/node_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/coordinator/blob_store.h"
#include "server/coordinator/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace driftscope::coordinator {

class SqliteStatement;

struct SqliteStoreOptions {
  std::string directory;  // created when missing
  // How long a write waits for a lock held by another connection (an
  // operator's sqlite3 shell, a backup) before failing with Unavailable.
  int busy_timeout_ms = 5000;
};

// The schema version this build writes (PRAGMA user_version).
int SqliteStoreSchemaVersion();

class SqliteStore : public Store {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(
      const SqliteStoreOptions& options);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  absl::StatusOr<CreateJobResult> CreateJob(
      const JobRow& job, const std::vector<RunRow>& runs) override;
  absl::StatusOr<std::optional<JobRow>> FindJobByRequestId(
      absl::string_view client_request_id) override;
  absl::StatusOr<JobRow> GetJob(absl::string_view job_id) override;
  absl::StatusOr<std::vector<RunRow>> GetRuns(
      absl::string_view job_id) override;
  absl::StatusOr<RunRow> GetRun(absl::string_view run_id) override;
  absl::StatusOr<std::vector<v1::Fingerprint>> GetFingerprints(
      absl::string_view run_id) override;
  absl::StatusOr<ListJobsPage> ListJobs(const ListJobsQuery& query) override;
  absl::Status StartAttempt(absl::string_view run_id, int attempt,
                            absl::string_view worker,
                            int64_t now_unix_ms) override;
  absl::Status FailAttempt(absl::string_view run_id, int attempt, int32_t code,
                           absl::string_view message, bool retry,
                           int64_t now_unix_ms) override;
  absl::Status CompleteRun(absl::string_view run_id, int attempt,
                           const v1::RunSummary& summary,
                           int64_t now_unix_ms) override;
  absl::Status CancelJob(absl::string_view job_id,
                         int64_t now_unix_ms) override;
  absl::Status FinishJob(absl::string_view job_id, v1::JobState state,
                         int64_t now_unix_ms) override;
  absl::StatusOr<std::vector<std::string>> RecoverUnfinished(
      int64_t now_unix_ms) override;
  BlobStore& blobs() override { return *blobs_; }

  // PRAGMA integrity_check: OK, or DataLoss with SQLite's findings.
  absl::Status CheckIntegrity();

 private:
  struct CachedStatement {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;  // a Statement has it; a nested use prepares anew
  };
  // What the state rules of one run need.
  struct RunHead {
    std::string job_id;
    v1::RunState state = v1::RUN_STATE_UNSPECIFIED;
    int current_attempt = 0;
    v1::JobState job_state = v1::JOB_STATE_UNSPECIFIED;
  };

  SqliteStore(sqlite3* db, int lock_fd, std::unique_ptr<FileBlobStore> blobs);

  // A write waiting for its turn. Writes commit in groups: the writer at the
  // head of the queue runs every queued body in one transaction, each under
  // its own SAVEPOINT (a body that fails rolls back alone), and one COMMIT,
  // one fsync, makes them all durable before any of them returns.
  struct Writer {
    explicit Writer(absl::FunctionRef<absl::Status()> b) : body(b) {}
    absl::FunctionRef<absl::Status()> body;
    absl::Status status;  // set by the group's leader
    bool done = false;    // guarded by queue_mu_
    absl::CondVar cv;     // signalled when done or at the head of the queue
  };

  // Runs `body` as if in a transaction of its own: its changes are durable
  // when it returns OK and absent when it fails. Reads (!write) take a
  // plain BEGIN; writes are group-committed under BEGIN IMMEDIATE.
  absl::Status InTransaction(bool write, absl::FunctionRef<absl::Status()> body)
      ABSL_LOCKS_EXCLUDED(mu_, queue_mu_);
  void CommitGroup(const std::vector<Writer*>& group)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InTransactionLocked(bool write,
                                   absl::FunctionRef<absl::Status()> body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // A cached prepared statement for `sql` (reset when the Statement ends).
  absl::StatusOr<SqliteStatement> Prepare(absl::string_view sql)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Exec(absl::string_view sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int64_t> QueryInt(absl::string_view sql)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckPragmas(int busy_timeout_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Reads shared by the public calls; run inside a transaction.
  // The job with its init weights' metadata; their blob keys, in order, go
  // to `weight_keys` (the data is read outside the lock).
  absl::StatusOr<JobRow> LoadJob(absl::string_view job_id,
                                 std::vector<std::string>* weight_keys)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The runs of job `id` (by_job) or the run `id`, with their attempts.
  absl::StatusOr<std::vector<RunRow>> LoadRuns(bool by_job,
                                               absl::string_view id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::JobState> JobState(absl::string_view job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<RunHead> LoadRunHead(absl::string_view run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Status EndAttempt(absl::string_view run_id, int attempt,
                          absl::string_view outcome, int32_t code,
                          absl::string_view message, int64_t now_unix_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SetJobState(absl::string_view job_id, v1::JobState state,
                           int64_t now_unix_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex queue_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::deque<Writer*> writers_ ABSL_GUARDED_BY(queue_mu_);
  absl::Mutex mu_;  // the connection and everything done through it
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);
  const int lock_fd_;  // flock'ed LOCK file, closed last
  // node_hash_map: a borrowed SqliteStatement points at its entry's in_use
  // flag, which must stay put while other statements are inserted.
  absl::node_hash_map<std::string, CachedStatement> statements_
      ABSL_GUARDED_BY(mu_);
  const std::unique_ptr<FileBlobStore> blobs_;  // thread-safe itself
};

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_SQLITE_STORE_H_
