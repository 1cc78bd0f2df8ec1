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

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

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
};
constexpr int kSchemaVersion =
    static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));

constexpr int32_t kCodeCancelled =
    static_cast<int32_t>(absl::StatusCode::kCancelled);
constexpr int32_t kCodeUnavailable =
    static_cast<int32_t>(absl::StatusCode::kUnavailable);

absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  const std::string text = absl::StrCat(
      what, ": ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(
          absl::StrCat(text, " (another connection holds the database lock)"));
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE ||
          rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return absl::AlreadyExistsError(text);
      }
      return absl::FailedPreconditionError(text);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(text);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(text);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
      return absl::PermissionDeniedError(text);
    default:
      return absl::InternalError(text);
  }
}

bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_SUCCEEDED || s == v1::JOB_FAILED ||
         s == v1::JOB_CANCELLED;
}

// Blob-typed parameter (text parameters are absl::string_view).
struct Bytes {
  absl::string_view data;
};

std::string EncodePageToken(int64_t created_ms, int64_t seq) {
  return absl::WebSafeBase64Escape(absl::StrCat("j1:", created_ms, ":", seq));
}

bool DecodePageToken(absl::string_view token, int64_t* created_ms,
                     int64_t* seq) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return false;
  std::vector<absl::string_view> parts = absl::StrSplit(raw, ':');
  return parts.size() == 3 && parts[0] == "j1" &&
         absl::SimpleAtoi(parts[1], created_ms) &&
         absl::SimpleAtoi(parts[2], seq);
}

}  // namespace

int SqliteStoreSchemaVersion() { return kSchemaVersion; }

// A prepared statement borrowed from the store's cache (or owned, when the
// cached one is in use by an enclosing loop). Parameters bind from 1.
class SqliteStore::Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt, bool* in_use)
      : db_(db), stmt_(stmt), in_use_(in_use) {}
  Statement(Statement&& other) noexcept
      : db_(other.db_),
        stmt_(std::exchange(other.stmt_, nullptr)),
        in_use_(std::exchange(other.in_use_, nullptr)),
        bind_error_(std::move(other.bind_error_)) {}
  Statement& operator=(Statement&&) = delete;
  ~Statement() {
    if (stmt_ == nullptr) return;
    if (in_use_ == nullptr) {
      sqlite3_finalize(stmt_);
      return;
    }
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    *in_use_ = false;
  }

  template <typename... Args>
  Statement& Bind(const Args&... args) {
    int i = 1;
    (BindOne(i++, args), ...);
    return *this;
  }

  // True when a row is ready, false when the statement is done.
  absl::StatusOr<bool> Step() {
    if (!bind_error_.ok()) return bind_error_;
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, rc, sqlite3_sql(stmt_));
  }
  // Steps to the end (for statements that return no rows).
  absl::Status Run() {
    for (;;) {
      absl::StatusOr<bool> row = Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::OkStatus();
    }
  }
  // Ready to bind and step again.
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      sqlite3_column_bytes(stmt_, col));
  }
  std::string Blob(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(static_cast<const char*>(p),
                                      sqlite3_column_bytes(stmt_, col));
  }
  bool IsNull(int col) {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
  }

 private:
  void BindOne(int i, int64_t v) { Check(sqlite3_bind_int64(stmt_, i, v)); }
  void BindOne(int i, absl::string_view v) {
    Check(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT,
                              SQLITE_UTF8));
  }
  void BindOne(int i, Bytes v) {
    // A zero-length blob from a null pointer would bind NULL.
    Check(sqlite3_bind_blob64(stmt_, i, v.data.empty() ? "" : v.data.data(),
                              v.data.size(), SQLITE_TRANSIENT));
  }
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_error_.ok()) {
      bind_error_ = SqliteError(db_, rc, "binding a parameter");
    }
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  bool* in_use_;  // the cache entry's flag; null when this owns stmt_
  absl::Status bind_error_;
};

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

absl::StatusOr<SqliteStore::Statement> SqliteStore::Prepare(
    absl::string_view sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return Statement(db_, it->second.stmt, &it->second.in_use);
  }
  sqlite3_stmt* stmt = nullptr;
  const int rc =
      sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                         SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return SqliteError(db_, rc, absl::StrCat("preparing ", sql));
  }
  if (it != statements_.end()) return Statement(db_, stmt, nullptr);
  CachedStatement& cached = statements_[sql];
  cached.stmt = stmt;
  cached.in_use = true;
  return Statement(db_, stmt, &cached.in_use);
}

absl::Status SqliteStore::Exec(absl::string_view sql) {
  absl::StatusOr<Statement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  return stmt->Run();
}

absl::Status SqliteStore::InTransaction(
    bool write, absl::FunctionRef<absl::Status()> body) {
  absl::MutexLock lock(&mu_);
  return InTransactionLocked(write, body);
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
  absl::StatusOr<Statement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::InternalError(absl::StrCat(sql, " returned no row"));
  return stmt->Int(0);
}

absl::Status SqliteStore::CheckPragmas(int busy_timeout_ms) {
  // journal_mode answers with the mode now in effect; it stays "delete" on
  // file systems without shared memory, where WAL is unavailable.
  absl::StatusOr<Statement> wal = Prepare("PRAGMA journal_mode=WAL");
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
  return InTransactionLocked(true, [&]() -> absl::Status {
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
  absl::StatusOr<Statement> stmt = Prepare("PRAGMA integrity_check");
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

// ---------------------------------------------------------------------------
// Reads

namespace {

constexpr absl::string_view kJobColumns =
    "job_id, client_request_id, spec_digest, spec, placement, description, "
    "state, created_ms, finished_ms, seq";
constexpr absl::string_view kRunColumns =
    "run_id, job_id, worker, profile, repeat_index, state, current_attempt, "
    "summary, failure_code, failure_message";

}  // namespace

absl::StatusOr<JobRow> SqliteStore::JobFromRow(Statement& row) {
  JobRow job;
  job.job_id = row.Text(0);
  job.client_request_id = row.Text(1);
  job.spec_digest = row.Text(2);
  if (!job.spec.ParseFromString(row.Blob(3)) ||
      !job.placement.ParseFromString(row.Blob(4))) {
    return absl::DataLossError(absl::StrCat(
        "job ", job.job_id, ": stored spec or placement unreadable"));
  }
  job.description = row.Text(5);
  job.state = static_cast<v1::JobState>(row.Int(6));
  job.created_unix_ms = row.Int(7);
  job.finished_unix_ms = row.Int(8);
  return job;
}

absl::StatusOr<JobRow> SqliteStore::LoadJob(absl::string_view job_id,
                                            bool with_weights) {
  absl::StatusOr<Statement> stmt = Prepare(
      absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE job_id = ?"));
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(job_id);
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  absl::StatusOr<JobRow> job = JobFromRow(*stmt);
  if (!job.ok() || !with_weights) return job;

  absl::StatusOr<Statement> weights = Prepare(
      "SELECT tensor, sha256 FROM init_weights WHERE job_id = ? "
      "ORDER BY position");
  if (!weights.ok()) return weights.status();
  weights->Bind(job_id);
  for (;;) {
    absl::StatusOr<bool> next = weights->Step();
    if (!next.ok()) return next.status();
    if (!*next) break;
    v1::Tensor& tensor = job->init_weights.emplace_back();
    if (!tensor.ParseFromString(weights->Blob(0))) {
      return absl::DataLossError(
          absl::StrCat("job ", job_id, ": stored init weight unreadable"));
    }
    const std::string sha256 = weights->Text(1);
    absl::StatusOr<std::string> data = blobs_->Get(sha256);
    if (!data.ok()) {
      return absl::DataLossError(absl::StrCat("job ", job_id, ": init weight ",
                                              job->init_weights.size() - 1,
                                              ": ", data.status().message()));
    }
    *tensor.mutable_data() = *std::move(data);
  }
  return job;
}

absl::StatusOr<std::vector<RunRow>> SqliteStore::LoadRuns(
    bool by_job, absl::string_view id) {
  absl::StatusOr<Statement> stmt =
      Prepare(absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE ",
                           by_job ? "job_id" : "run_id", " = ? ORDER BY seq"));
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(id);
  std::vector<RunRow> runs;
  for (;;) {
    absl::StatusOr<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    RunRow& run = runs.emplace_back();
    run.run_id = stmt->Text(0);
    run.job_id = stmt->Text(1);
    run.worker = stmt->Text(2);
    run.profile = stmt->Text(3);
    run.repeat = static_cast<int>(stmt->Int(4));
    run.state = static_cast<v1::RunState>(stmt->Int(5));
    run.current_attempt = static_cast<int>(stmt->Int(6));
    if (!stmt->IsNull(7) && !run.summary.ParseFromString(stmt->Blob(7))) {
      return absl::DataLossError(
          absl::StrCat("run ", run.run_id, ": stored summary unreadable"));
    }
    if (run.state == v1::RUN_FAILED || run.state == v1::RUN_CANCELLED) {
      run.failure.set_code(static_cast<int32_t>(stmt->Int(8)));
      run.failure.set_message(stmt->Text(9));
    }
  }
  absl::StatusOr<Statement> attempts = Prepare(
      "SELECT attempt, worker, started_ms, ended_ms, outcome, code, message "
      "FROM attempts WHERE run_id = ? ORDER BY attempt");
  if (!attempts.ok()) return attempts.status();
  for (RunRow& run : runs) {
    attempts->Bind(run.run_id);
    for (;;) {
      absl::StatusOr<bool> row = attempts->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      AttemptRow& a = run.attempts.emplace_back();
      a.attempt = static_cast<int>(attempts->Int(0));
      a.worker = attempts->Text(1);
      a.started_unix_ms = attempts->Int(2);
      a.ended_unix_ms = attempts->Int(3);
      a.outcome = attempts->Text(4);
      a.code = static_cast<int32_t>(attempts->Int(5));
      a.message = attempts->Text(6);
    }
    attempts->Reset();
  }
  return runs;
}

absl::StatusOr<JobRow> SqliteStore::GetJob(absl::string_view job_id) {
  absl::StatusOr<JobRow> job;
  absl::Status s = InTransaction(false, [&] {
    job = LoadJob(job_id, /*with_weights=*/true);
    return job.status();
  });
  if (!s.ok()) return s;
  return job;
}

absl::StatusOr<std::vector<RunRow>> SqliteStore::GetRuns(
    absl::string_view job_id) {
  absl::StatusOr<std::vector<RunRow>> runs;
  absl::Status s = InTransaction(false, [&]() -> absl::Status {
    // An unknown job is NotFound, not an empty list.
    if (absl::StatusOr<v1::JobState> state = JobState(job_id); !state.ok()) {
      return state.status();
    }
    runs = LoadRuns(/*by_job=*/true, job_id);
    return runs.status();
  });
  if (!s.ok()) return s;
  return runs;
}

absl::StatusOr<RunRow> SqliteStore::GetRun(absl::string_view run_id) {
  absl::StatusOr<std::vector<RunRow>> runs;
  absl::Status s = InTransaction(false, [&] {
    runs = LoadRuns(/*by_job=*/false, run_id);
    return runs.status();
  });
  if (!s.ok()) return s;
  if (runs->empty()) {
    return absl::NotFoundError(absl::StrCat("no run '", run_id, "'"));
  }
  return std::move(runs->front());
}

absl::StatusOr<ListJobsPage> SqliteStore::ListJobs(const ListJobsQuery& query) {
  constexpr int kDefaultPageSize = 50;
  constexpr int kMaxPageSize = 1000;
  if (query.page_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size ", query.page_size, " is negative; use 0 for the default"));
  }
  const int page_size = query.page_size == 0
                            ? kDefaultPageSize
                            : std::min(query.page_size, kMaxPageSize);
  int64_t after_created_ms = 0;
  int64_t after_seq = 0;
  const bool has_token = !query.page_token.empty();
  if (has_token &&
      !DecodePageToken(query.page_token, &after_created_ms, &after_seq)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token '", query.page_token,
        "' is not one this coordinator issued: pass the previous page's "
        "next_page_token, or none for the first page"));
  }
  std::vector<int> states;
  for (v1::JobState state : query.states) {
    if (state == v1::JOB_STATE_UNSPECIFIED || !v1::JobState_IsValid(state)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "job state filter ", static_cast<int>(state), " is not a job state"));
    }
    states.push_back(static_cast<int>(state));
  }
  // Sorted and unique, so equal filters share one cached statement.
  std::sort(states.begin(), states.end());
  states.erase(std::unique(states.begin(), states.end()), states.end());

  std::string sql = absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE 1");
  if (!states.empty()) {
    absl::StrAppend(&sql, " AND state IN (", absl::StrJoin(states, ","), ")");
  }
  if (has_token) absl::StrAppend(&sql, " AND (created_ms, seq) < (?, ?)");
  absl::StrAppend(&sql, " ORDER BY created_ms DESC, seq DESC LIMIT ?");

  ListJobsPage page;
  absl::Status s = InTransaction(false, [&]() -> absl::Status {
    absl::StatusOr<Statement> stmt = Prepare(sql);
    if (!stmt.ok()) return stmt.status();
    // One extra row says whether another page follows.
    if (has_token) {
      stmt->Bind(after_created_ms, after_seq, int64_t{page_size} + 1);
    } else {
      stmt->Bind(int64_t{page_size} + 1);
    }
    int64_t last_created_ms = 0;
    int64_t last_seq = 0;
    for (;;) {
      absl::StatusOr<bool> row = stmt->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (static_cast<int>(page.jobs.size()) == page_size) {
        page.next_page_token = EncodePageToken(last_created_ms, last_seq);
        break;
      }
      absl::StatusOr<JobRow> job = JobFromRow(*stmt);
      if (!job.ok()) return job.status();
      last_created_ms = job->created_unix_ms;
      last_seq = stmt->Int(9);
      page.jobs.push_back(*std::move(job));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return page;
}

absl::StatusOr<v1::JobState> SqliteStore::JobState(absl::string_view job_id) {
  absl::StatusOr<Statement> stmt =
      Prepare("SELECT state FROM jobs WHERE job_id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(job_id);
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return static_cast<v1::JobState>(stmt->Int(0));
}

absl::StatusOr<SqliteStore::RunHead> SqliteStore::LoadRunHead(
    absl::string_view run_id) {
  absl::StatusOr<Statement> stmt = Prepare(
      "SELECT r.job_id, r.state, r.current_attempt, j.state FROM runs r "
      "JOIN jobs j USING (job_id) WHERE r.run_id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(run_id);
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("no run '", run_id, "'"));
  RunHead head;
  head.job_id = stmt->Text(0);
  head.state = static_cast<v1::RunState>(stmt->Int(1));
  head.current_attempt = static_cast<int>(stmt->Int(2));
  head.job_state = static_cast<v1::JobState>(stmt->Int(3));
  return head;
}

// ---------------------------------------------------------------------------
// Writes

namespace {

absl::Status NotInFlight(absl::string_view run_id, int attempt,
                         v1::RunState state, int current_attempt) {
  return absl::FailedPreconditionError(absl::StrCat(
      "attempt ", attempt, " of run ", run_id, " is not in flight (the run is ",
      v1::RunState_Name(state), ", its current attempt ", current_attempt,
      "): a late result of a superseded attempt, or the run ended"));
}

}  // namespace

absl::StatusOr<CreateJobResult> SqliteStore::CreateJob(
    const JobRow& job, const std::vector<RunRow>& runs) {
  if (job.job_id.empty()) {
    return absl::InvalidArgumentError("CreateJob: job_id is empty");
  }
  if (job.state != v1::JOB_QUEUED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CreateJob: job ", job.job_id, " is ", v1::JobState_Name(job.state),
        "; a new job starts JOB_QUEUED"));
  }
  for (const RunRow& run : runs) {
    if (run.run_id.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("CreateJob: a run of job ", job.job_id, " has no id"));
    }
    if (!run.job_id.empty() && run.job_id != job.job_id) {
      return absl::InvalidArgumentError(
          absl::StrCat("CreateJob: run ", run.run_id, " names job ", run.job_id,
                       ", not ", job.job_id));
    }
    if (run.state != v1::RUN_QUEUED || run.current_attempt != 0 ||
        !run.attempts.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("CreateJob: run ", run.run_id,
                       " must be RUN_QUEUED with no attempts"));
    }
  }
  // Blobs first, outside the lock: content-addressed, so a retry rewrites
  // nothing and a failed CreateJob leaves only unreferenced blobs.
  std::vector<std::string> weight_keys;
  for (const v1::Tensor& tensor : job.init_weights) {
    absl::StatusOr<std::string> key = blobs_->Put(tensor.data());
    if (!key.ok()) return key.status();
    weight_keys.push_back(*std::move(key));
  }

  CreateJobResult result;
  absl::Status s = InTransaction(true, [&]() -> absl::Status {
    if (!job.client_request_id.empty()) {
      absl::StatusOr<Statement> existing = Prepare(
          "SELECT job_id, spec_digest FROM jobs WHERE client_request_id = ?");
      if (!existing.ok()) return existing.status();
      existing->Bind(job.client_request_id);
      absl::StatusOr<bool> row = existing->Step();
      if (!row.ok()) return row.status();
      if (*row) {
        result.job_id = existing->Text(0);
        result.existing_spec_digest = existing->Text(1);
        return absl::OkStatus();
      }
    }
    absl::StatusOr<Statement> insert_job = Prepare(
        "INSERT INTO jobs (job_id, client_request_id, spec_digest, spec, "
        "placement, description, state, created_ms, finished_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)");
    if (!insert_job.ok()) return insert_job.status();
    const std::string spec = job.spec.SerializeAsString();
    const std::string placement = job.placement.SerializeAsString();
    insert_job->Bind(job.job_id, job.client_request_id, job.spec_digest,
                     Bytes{spec}, Bytes{placement}, job.description,
                     int64_t{v1::JOB_QUEUED}, job.created_unix_ms);
    if (absl::Status s = insert_job->Run(); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("job ", job.job_id, ": ", s.message()));
    }
    for (size_t i = 0; i < job.init_weights.size(); ++i) {
      absl::StatusOr<Statement> insert_weight = Prepare(
          "INSERT INTO init_weights (job_id, position, tensor, sha256) "
          "VALUES (?, ?, ?, ?)");
      if (!insert_weight.ok()) return insert_weight.status();
      v1::Tensor meta = job.init_weights[i];
      meta.clear_data();
      const std::string bytes = meta.SerializeAsString();
      insert_weight->Bind(job.job_id, static_cast<int64_t>(i), Bytes{bytes},
                          weight_keys[i]);
      if (absl::Status s = insert_weight->Run(); !s.ok()) return s;
    }
    for (const RunRow& run : runs) {
      absl::StatusOr<Statement> insert_run = Prepare(
          "INSERT INTO runs (run_id, job_id, worker, profile, repeat_index, "
          "state, current_attempt) VALUES (?, ?, ?, ?, ?, ?, 0)");
      if (!insert_run.ok()) return insert_run.status();
      insert_run->Bind(run.run_id, job.job_id, run.worker, run.profile,
                       int64_t{run.repeat}, int64_t{v1::RUN_QUEUED});
      if (absl::Status s = insert_run->Run(); !s.ok()) {
        return absl::Status(
            s.code(), absl::StrCat("run ", run.run_id, ": ", s.message()));
      }
    }
    result.job_id = job.job_id;
    result.created = true;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return result;
}

absl::Status SqliteStore::StartAttempt(absl::string_view run_id, int attempt,
                                       absl::string_view worker,
                                       int64_t now_unix_ms) {
  if (worker.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("StartAttempt: run ", run_id, ": worker is empty"));
  }
  return InTransaction(true, [&]() -> absl::Status {
    absl::StatusOr<RunHead> run = LoadRunHead(run_id);
    if (!run.ok()) return run.status();
    if (IsTerminal(run->job_state)) {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", run_id, ": its job ", run->job_id, " is ",
                       v1::JobState_Name(run->job_state)));
    }
    if (run->state != v1::RUN_QUEUED) {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", run_id, " is ", v1::RunState_Name(run->state),
                       ", not RUN_QUEUED"));
    }
    if (attempt != run->current_attempt + 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", run_id, ": the next attempt is ",
                       run->current_attempt + 1, ", not ", attempt));
    }
    absl::StatusOr<Statement> insert = Prepare(
        "INSERT INTO attempts (run_id, attempt, worker, started_ms) "
        "VALUES (?, ?, ?, ?)");
    if (!insert.ok()) return insert.status();
    insert->Bind(run_id, int64_t{attempt}, worker, now_unix_ms);
    if (absl::Status s = insert->Run(); !s.ok()) return s;
    absl::StatusOr<Statement> update_run = Prepare(
        "UPDATE runs SET state = ?, current_attempt = ? WHERE run_id = ?");
    if (!update_run.ok()) return update_run.status();
    update_run->Bind(int64_t{v1::RUN_RUNNING}, int64_t{attempt}, run_id);
    if (absl::Status s = update_run->Run(); !s.ok()) return s;
    absl::StatusOr<Statement> update_job =
        Prepare("UPDATE jobs SET state = ? WHERE job_id = ? AND state = ?");
    if (!update_job.ok()) return update_job.status();
    update_job->Bind(int64_t{v1::JOB_RUNNING}, run->job_id,
                     int64_t{v1::JOB_QUEUED});
    return update_job->Run();
  });
}

absl::Status SqliteStore::EndAttempt(absl::string_view run_id, int attempt,
                                     absl::string_view outcome, int32_t code,
                                     absl::string_view message,
                                     int64_t now_unix_ms) {
  absl::StatusOr<Statement> stmt = Prepare(
      "UPDATE attempts SET ended_ms = ?, outcome = ?, code = ?, message = ? "
      "WHERE run_id = ? AND attempt = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(now_unix_ms, outcome, int64_t{code}, message, run_id,
             int64_t{attempt});
  return stmt->Run();
}

absl::Status SqliteStore::FailAttempt(absl::string_view run_id, int attempt,
                                      int32_t code, absl::string_view message,
                                      bool retry, int64_t now_unix_ms) {
  return InTransaction(true, [&]() -> absl::Status {
    absl::StatusOr<RunHead> run = LoadRunHead(run_id);
    if (!run.ok()) return run.status();
    if (run->state != v1::RUN_RUNNING || run->current_attempt != attempt) {
      return NotInFlight(run_id, attempt, run->state, run->current_attempt);
    }
    if (absl::Status s =
            EndAttempt(run_id, attempt, "failed", code, message, now_unix_ms);
        !s.ok()) {
      return s;
    }
    absl::StatusOr<Statement> update = Prepare(
        "UPDATE runs SET state = ?, failure_code = ?, failure_message = ? "
        "WHERE run_id = ?");
    if (!update.ok()) return update.status();
    if (retry) {
      update->Bind(int64_t{v1::RUN_QUEUED}, int64_t{0}, "", run_id);
    } else {
      update->Bind(int64_t{v1::RUN_FAILED}, int64_t{code}, message, run_id);
    }
    return update->Run();
  });
}

absl::Status SqliteStore::CompleteRun(absl::string_view run_id, int attempt,
                                      const v1::RunSummary& summary,
                                      int64_t now_unix_ms) {
  // Blobs are never deleted, so checking before the transaction is enough.
  for (const v1::TensorInfo& tensor : summary.tensors()) {
    if (!blobs_->Has(tensor.sha256())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", run_id, ": tensor '", tensor.name(), "' (sha256 '",
          tensor.sha256(), "') is not in the blob store; Put it first"));
    }
  }
  const std::string bytes = summary.SerializeAsString();
  return InTransaction(true, [&]() -> absl::Status {
    absl::StatusOr<RunHead> run = LoadRunHead(run_id);
    if (!run.ok()) return run.status();
    if (IsTerminal(run->job_state)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", run_id, ": its job ", run->job_id, " is ",
          v1::JobState_Name(run->job_state), "; the result is discarded"));
    }
    if (run->state != v1::RUN_RUNNING || run->current_attempt != attempt) {
      return NotInFlight(run_id, attempt, run->state, run->current_attempt);
    }
    if (absl::Status s =
            EndAttempt(run_id, attempt, "succeeded", 0, "", now_unix_ms);
        !s.ok()) {
      return s;
    }
    absl::StatusOr<Statement> update =
        Prepare("UPDATE runs SET state = ?, summary = ? WHERE run_id = ?");
    if (!update.ok()) return update.status();
    update->Bind(int64_t{v1::RUN_SUCCEEDED}, Bytes{bytes}, run_id);
    return update->Run();
  });
}

absl::Status SqliteStore::CancelJob(absl::string_view job_id,
                                    int64_t now_unix_ms) {
  return InTransaction(true, [&]() -> absl::Status {
    absl::StatusOr<v1::JobState> state = JobState(job_id);
    if (!state.ok()) return state.status();
    if (IsTerminal(*state)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id, " is already ", v1::JobState_Name(*state)));
    }
    constexpr absl::string_view kWhy = "the job was cancelled";
    absl::StatusOr<Statement> attempts = Prepare(
        "UPDATE attempts SET ended_ms = ?, outcome = 'cancelled', code = ?, "
        "message = ? WHERE outcome = '' AND run_id IN "
        "(SELECT run_id FROM runs WHERE job_id = ?)");
    if (!attempts.ok()) return attempts.status();
    attempts->Bind(now_unix_ms, int64_t{kCodeCancelled}, kWhy, job_id);
    if (absl::Status s = attempts->Run(); !s.ok()) return s;
    absl::StatusOr<Statement> runs = Prepare(
        "UPDATE runs SET state = ?, failure_code = ?, failure_message = ? "
        "WHERE job_id = ? AND state IN (?, ?)");
    if (!runs.ok()) return runs.status();
    runs->Bind(int64_t{v1::RUN_CANCELLED}, int64_t{kCodeCancelled}, kWhy,
               job_id, int64_t{v1::RUN_QUEUED}, int64_t{v1::RUN_RUNNING});
    if (absl::Status s = runs->Run(); !s.ok()) return s;
    return SetJobState(job_id, v1::JOB_CANCELLED, now_unix_ms);
  });
}

absl::Status SqliteStore::SetJobState(absl::string_view job_id,
                                      v1::JobState state, int64_t now_unix_ms) {
  absl::StatusOr<Statement> stmt =
      Prepare("UPDATE jobs SET state = ?, finished_ms = ? WHERE job_id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(int64_t{state}, now_unix_ms, job_id);
  return stmt->Run();
}

absl::Status SqliteStore::FinishJob(absl::string_view job_id,
                                    v1::JobState state, int64_t now_unix_ms) {
  if (state != v1::JOB_SUCCEEDED && state != v1::JOB_FAILED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FinishJob: job ", job_id, ": state ", v1::JobState_Name(state),
        " is not JOB_SUCCEEDED or JOB_FAILED (use CancelJob)"));
  }
  return InTransaction(true, [&]() -> absl::Status {
    absl::StatusOr<v1::JobState> current = JobState(job_id);
    if (!current.ok()) return current.status();
    if (IsTerminal(*current)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id, " is already ", v1::JobState_Name(*current)));
    }
    absl::StatusOr<Statement> open_runs = Prepare(
        "SELECT COUNT(*) FROM runs WHERE job_id = ? AND state IN (?, ?)");
    if (!open_runs.ok()) return open_runs.status();
    open_runs->Bind(job_id, int64_t{v1::RUN_QUEUED}, int64_t{v1::RUN_RUNNING});
    absl::StatusOr<bool> row = open_runs->Step();
    if (!row.ok()) return row.status();
    if (const int64_t n = *row ? open_runs->Int(0) : 0; n > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " still has ", n, " unfinished run(s)"));
    }
    return SetJobState(job_id, state, now_unix_ms);
  });
}

absl::StatusOr<std::vector<std::string>> SqliteStore::RecoverUnfinished(
    int64_t now_unix_ms) {
  std::vector<std::string> job_ids;
  absl::Status s = InTransaction(true, [&]() -> absl::Status {
    absl::StatusOr<Statement> attempts = Prepare(
        "UPDATE attempts SET ended_ms = ?, outcome = 'interrupted', code = ?, "
        "message = 'the coordinator restarted while this attempt was in "
        "flight' WHERE outcome = ''");
    if (!attempts.ok()) return attempts.status();
    attempts->Bind(now_unix_ms, int64_t{kCodeUnavailable});
    if (absl::Status s = attempts->Run(); !s.ok()) return s;
    absl::StatusOr<Statement> runs =
        Prepare("UPDATE runs SET state = ? WHERE state = ?");
    if (!runs.ok()) return runs.status();
    runs->Bind(int64_t{v1::RUN_QUEUED}, int64_t{v1::RUN_RUNNING});
    if (absl::Status s = runs->Run(); !s.ok()) return s;
    absl::StatusOr<Statement> jobs = Prepare(
        "SELECT job_id FROM jobs WHERE state IN (?, ?) "
        "ORDER BY created_ms, seq");
    if (!jobs.ok()) return jobs.status();
    jobs->Bind(int64_t{v1::JOB_QUEUED}, int64_t{v1::JOB_RUNNING});
    for (;;) {
      absl::StatusOr<bool> row = jobs->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::OkStatus();
      job_ids.push_back(jobs->Text(0));
    }
  });
  if (!s.ok()) return s;
  return job_ids;
}

}  // namespace driftscope::coordinator
