#include "server/coordinator/sqlite_statement.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace driftscope::coordinator {

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

SqliteStatement::SqliteStatement(SqliteStatement&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      in_use_(std::exchange(other.in_use_, nullptr)),
      bind_error_(std::move(other.bind_error_)) {}

SqliteStatement::~SqliteStatement() {
  if (stmt_ == nullptr) return;
  if (in_use_ == nullptr) {
    sqlite3_finalize(stmt_);
    return;
  }
  Reset();
  *in_use_ = false;
}

absl::StatusOr<bool> SqliteStatement::Step() {
  if (!bind_error_.ok()) return bind_error_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(db_, rc, sqlite3_sql(stmt_));
}

absl::Status SqliteStatement::Run() {
  for (;;) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

void SqliteStatement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = absl::OkStatus();
}

int64_t SqliteStatement::Int(int col) {
  return sqlite3_column_int64(stmt_, col);
}

std::string SqliteStatement::Text(int col) {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  return p == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(p),
                                    sqlite3_column_bytes(stmt_, col));
}

std::string SqliteStatement::Blob(int col) {
  const void* p = sqlite3_column_blob(stmt_, col);
  return p == nullptr ? std::string()
                      : std::string(static_cast<const char*>(p),
                                    sqlite3_column_bytes(stmt_, col));
}

bool SqliteStatement::IsNull(int col) {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

void SqliteStatement::BindOne(int i, int64_t v) {
  Check(sqlite3_bind_int64(stmt_, i, v));
}

void SqliteStatement::BindOne(int i, absl::string_view v) {
  // A null pointer (a default string_view) would bind NULL, not "".
  Check(sqlite3_bind_text64(stmt_, i, v.data() == nullptr ? "" : v.data(),
                            v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
}

void SqliteStatement::BindOne(int i, SqliteBytes v) {
  // A null pointer would bind NULL rather than an empty blob.
  Check(sqlite3_bind_blob64(stmt_, i, v.data.empty() ? "" : v.data.data(),
                            v.data.size(), SQLITE_TRANSIENT));
}

void SqliteStatement::Check(int rc) {
  if (rc != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = SqliteError(db_, rc, "binding a parameter");
  }
}

}  // namespace driftscope::coordinator
