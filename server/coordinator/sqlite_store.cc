#include "server/coordinator/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/coordinator/sqlite_statement.h"

namespace driftscope::coordinator {
namespace {

// Schema migrations, applied in order; PRAGMA user_version counts how many a
// database has had. Append only: never edit a migration that has shipped.
constexpr const char* kMigrations[] = {
    // 1: jobs, their init weights (tensor data in blobs/), runs, attempts.
    R"sql(
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY,            -- insertion order, breaks created_ms ties
  job_id TEXT NOT NULL UNIQUE,
  client_request_id TEXT NOT NULL,    -- '' when the client gave none
  spec_digest TEXT NOT NULL,
  spec BLOB NOT NULL,                 -- driftscope.v1.JobSpec
  placement BLOB NOT NULL,            -- driftscope.v1.Placement
  description TEXT NOT NULL,
  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 5),  -- v1.JobState
  created_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX jobs_by_request_id ON jobs (client_request_id)
  WHERE client_request_id <> '';
CREATE INDEX jobs_newest_first ON jobs (created_ms DESC, seq DESC);
CREATE INDEX jobs_by_state ON jobs (state, created_ms DESC, seq DESC);

CREATE TABLE init_weights (
  job_id TEXT NOT NULL REFERENCES jobs (job_id),
  position INTEGER NOT NULL,          -- Keras get_weights() order
  tensor BLOB NOT NULL,               -- driftscope.v1.Tensor, data cleared
  sha256 TEXT NOT NULL,               -- the data, in blobs/
  PRIMARY KEY (job_id, position)
) WITHOUT ROWID;

CREATE TABLE runs (
  seq INTEGER PRIMARY KEY,            -- creation order
  run_id TEXT NOT NULL UNIQUE,
  job_id TEXT NOT NULL REFERENCES jobs (job_id),
  worker TEXT NOT NULL,
  profile TEXT NOT NULL,
  repeat_index INTEGER NOT NULL,
  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 5),  -- v1.RunState
  current_attempt INTEGER NOT NULL,
  summary BLOB,                       -- driftscope.v1.RunSummary
  failure_code INTEGER NOT NULL DEFAULT 0,
  failure_message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_job ON runs (job_id, seq);

CREATE TABLE attempts (
  run_id TEXT NOT NULL REFERENCES runs (run_id),
  attempt INTEGER NOT NULL CHECK (attempt >= 1),
  worker TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  ended_ms INTEGER NOT NULL DEFAULT 0,
  outcome TEXT NOT NULL DEFAULT '',   -- '' while in flight
  code INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, attempt)
) WITHOUT ROWID;
CREATE INDEX attempts_in_flight ON attempts (run_id) WHERE outcome = '';
)sql",
    // 2: a succeeded run's fingerprints apart from its summary, which keeps
    // the first and the last (runs stored before keep all in the summary).
    R"sql(
CREATE TABLE run_fingerprints (
  run_id TEXT PRIMARY KEY REFERENCES runs (run_id),
  batch BLOB NOT NULL                 -- driftscope.v1.FingerprintBatch
) WITHOUT ROWID;
)sql",
};
constexpr int kSchemaVersion =
    static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));

}  // namespace

int SqliteStoreSchemaVersion() { return kSchemaVersion; }

SqliteStore::SqliteStore(sqlite3* db, int lock_fd,
                         std::unique_ptr<FileBlobStore> blobs)
    : db_(db), lock_fd_(lock_fd), blobs_(std::move(blobs)) {}

SqliteStore::~SqliteStore() {
  {
    absl::MutexLock lock(&mu_);
    for (auto& [sql, cached] : statements_) sqlite3_finalize(cached.stmt);
    statements_.clear();
  }
  sqlite3_close_v2(db_);
  if (lock_fd_ >= 0) close(lock_fd_);  // releases the flock
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    const SqliteStoreOptions& options) {
  const std::string& dir = options.directory;
  if (dir.empty()) {
    return absl::InvalidArgumentError("the store directory is empty");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create store directory ", dir, ": ", ec.message()));
  }
  const std::string lock_path = dir + "/LOCK";
  const int lock_fd =
      open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot open ", lock_path, ": ", strerror(errno)));
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(lock_fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "store directory ", dir, " is in use by another coordinator (",
        lock_path, " is locked: ", strerror(err), ")"));
  }
  absl::StatusOr<std::unique_ptr<FileBlobStore>> blobs =
      FileBlobStore::Open(dir + "/blobs");
  if (!blobs.ok()) {
    close(lock_fd);
    return blobs.status();
  }
  const std::string db_path = dir + "/coordinator.db";
  sqlite3* db = nullptr;
  // Our mutex serializes every use of the connection.
  const int rc = sqlite3_open_v2(
      db_path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(db, rc, absl::StrCat("cannot open ", db_path));
    sqlite3_close_v2(db);
    close(lock_fd);
    return s;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  std::unique_ptr<SqliteStore> store(
      new SqliteStore(db, lock_fd, *std::move(blobs)));
  absl::MutexLock lock(&store->mu_);
  if (absl::Status s = store->CheckPragmas(options.busy_timeout_ms); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(db_path, ": ", s.message()));
  }
  if (absl::Status s = store->Migrate(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(db_path, ": ", s.message()));
  }
  return store;
}

absl::StatusOr<SqliteStatement> SqliteStore::Prepare(absl::string_view sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return SqliteStatement(db_, it->second.stmt, &it->second.in_use);
  }
  sqlite3_stmt* stmt = nullptr;
  const int rc =
      sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                         SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return SqliteError(db_, rc, absl::StrCat("preparing ", sql));
  }
  if (it != statements_.end()) return SqliteStatement(db_, stmt, nullptr);
  CachedStatement& cached = statements_[sql];
  cached.stmt = stmt;
  cached.in_use = true;
  return SqliteStatement(db_, stmt, &cached.in_use);
}

absl::Status SqliteStore::Exec(absl::string_view sql) {
  absl::StatusOr<SqliteStatement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  return stmt->Run();
}

absl::Status SqliteStore::InTransaction(
    bool write, absl::FunctionRef<absl::Status()> body) {
  if (!write) {
    absl::MutexLock lock(&mu_);
    return InTransactionLocked(false, body);
  }
  // Group commit, as in LevelDB's DBImpl::Write: queue, wait to be done by
  // a leader or to lead; the leader commits everything queued so far.
  constexpr size_t kMaxGroup = 64;
  Writer self(body);
  queue_mu_.Lock();
  writers_.push_back(&self);
  while (!self.done && writers_.front() != &self) self.cv.Wait(&queue_mu_);
  if (self.done) {
    queue_mu_.Unlock();
    return self.status;
  }
  const size_t n = std::min(writers_.size(), kMaxGroup);
  const std::vector<Writer*> group(writers_.begin(), writers_.begin() + n);
  // Later writers queue up while this group is committed.
  queue_mu_.Unlock();
  {
    absl::MutexLock lock(&mu_);
    CommitGroup(group);
  }
  queue_mu_.Lock();
  for (Writer* w : group) {
    writers_.pop_front();
    if (w != &self) {
      w->done = true;
      w->cv.Signal();
    }
  }
  if (!writers_.empty()) writers_.front()->cv.Signal();
  queue_mu_.Unlock();
  return self.status;
}

void SqliteStore::CommitGroup(const std::vector<Writer*>& group) {
  if (group.size() == 1) {
    group[0]->status = InTransactionLocked(true, group[0]->body);
    return;
  }
  absl::Status s = Exec("BEGIN IMMEDIATE");
  absl::Status cause = s;  // why the transaction broke, if it did
  if (s.ok()) {
    for (Writer* w : group) {
      s = Exec("SAVEPOINT one_write");
      if (s.ok()) {
        w->status = w->body();
        if (!w->status.ok()) s = Exec("ROLLBACK TO one_write");
        if (s.ok()) s = Exec("RELEASE one_write");
      }
      if (!s.ok()) {
        // Some errors (disk full, I/O) end the whole transaction.
        cause = w->status.ok() ? s : w->status;
        break;
      }
    }
  }
  if (s.ok()) s = cause = Exec("COMMIT");
  if (s.ok()) return;
  if (sqlite3_get_autocommit(db_) == 0) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  // Nothing of the group is stored: every write that had not already failed
  // on its own fails with the reason.
  for (Writer* w : group) {
    if (w->status.ok()) {
      w->status = absl::Status(
          cause.code(), absl::StrCat("not committed: ", cause.message()));
    }
  }
}

absl::Status SqliteStore::InTransactionLocked(
    bool write, absl::FunctionRef<absl::Status()> body) {
  // IMMEDIATE takes the write lock up front, so a writer never fails halfway
  // with SQLITE_BUSY on lock upgrade.
  absl::Status s = Exec(write ? "BEGIN IMMEDIATE" : "BEGIN");
  if (!s.ok()) return s;
  s = body();
  if (s.ok()) s = Exec("COMMIT");
  if (!s.ok() && sqlite3_get_autocommit(db_) == 0) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return s;
}

absl::StatusOr<int64_t> SqliteStore::QueryInt(absl::string_view sql) {
  absl::StatusOr<SqliteStatement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::InternalError(absl::StrCat(sql, " returned no row"));
  return stmt->Int(0);
}

absl::Status SqliteStore::CheckPragmas(int busy_timeout_ms) {
  // journal_mode answers with the mode now in effect; it stays "delete" on
  // file systems without shared memory, where WAL is unavailable.
  absl::StatusOr<SqliteStatement> wal = Prepare("PRAGMA journal_mode=WAL");
  if (!wal.ok()) return wal.status();
  absl::StatusOr<bool> row = wal->Step();
  if (!row.ok()) return row.status();
  const std::string mode = *row ? wal->Text(0) : "";
  if (mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("journal_mode is '", mode,
                     "', not 'wal': put the store on a local file system"));
  }
  for (const char* sql :
       {"PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"}) {
    if (absl::Status s = Exec(sql); !s.ok()) return s;
  }
  const struct {
    const char* query;
    int64_t want;
  } checks[] = {{"PRAGMA synchronous", 2},
                {"PRAGMA foreign_keys", 1},
                {"PRAGMA busy_timeout", busy_timeout_ms}};
  for (const auto& check : checks) {
    absl::StatusOr<int64_t> got = QueryInt(check.query);
    if (!got.ok()) return got.status();
    if (*got != check.want) {
      return absl::FailedPreconditionError(absl::StrCat(
          check.query, " is ", *got, " after setting it to ", check.want));
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::Migrate() {
  return InTransactionLocked(
      true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        absl::StatusOr<int64_t> version = QueryInt("PRAGMA user_version");
        if (!version.ok()) return version.status();
        if (*version > kSchemaVersion || *version < 0) {
          return absl::FailedPreconditionError(absl::StrCat(
              "the database has schema version ", *version,
              " but this driftscope-coordinator knows versions up to ",
              kSchemaVersion,
              ": run the newer driftscope that wrote it, or restore a backup"));
        }
        for (int64_t v = *version; v < kSchemaVersion; ++v) {
          char* error = nullptr;
          const int rc =
              sqlite3_exec(db_, kMigrations[v], nullptr, nullptr, &error);
          if (rc != SQLITE_OK) {
            absl::Status s = SqliteError(
                nullptr, rc,
                absl::StrCat("schema migration ", v + 1,
                             " failed: ", error != nullptr ? error : ""));
            sqlite3_free(error);
            return s;
          }
        }
        if (*version == kSchemaVersion) return absl::OkStatus();
        return Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion));
      });
}

absl::Status SqliteStore::CheckIntegrity() {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SqliteStatement> stmt = Prepare("PRAGMA integrity_check");
  if (!stmt.ok()) return stmt.status();
  std::vector<std::string> problems;
  for (;;) {
    absl::StatusOr<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (std::string line = stmt->Text(0); line != "ok") {
      problems.push_back(std::move(line));
    }
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("integrity_check: ", absl::StrJoin(problems, "; ")));
}

}  // namespace driftscope::coordinator
