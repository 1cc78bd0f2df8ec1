// SqliteStatement: one prepared SQLite statement in use, with typed binding
// and column reads, for SqliteStore. It either borrows a statement from the
// store's cache (resetting it and clearing its in-use flag when it ends) or
// owns one (finalizing it). SqliteError turns an SQLite result code into an
// absl::Status with the code a caller can act on.
//
// One thread at a time, and only while SqliteStore's mutex is held: the
// connection is shared.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_SQLITE_STATEMENT_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_SQLITE_STATEMENT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace driftscope::coordinator {

// BUSY/LOCKED -> Unavailable, UNIQUE/PRIMARY KEY -> AlreadyExists, other
// constraints -> FailedPrecondition, CORRUPT/NOTADB -> DataLoss, FULL ->
// ResourceExhausted, READONLY/PERM/CANTOPEN -> PermissionDenied, else
// Internal. The message is `what` and SQLite's own message (from `db` when
// given, else from `rc`).
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what);

// A parameter bound as a BLOB (absl::string_view binds as TEXT).
struct SqliteBytes {
  absl::string_view data;
};

class SqliteStatement {
 public:
  // `in_use` is the cache entry's flag when borrowed, null when owned.
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, bool* in_use)
      : db_(db), stmt_(stmt), in_use_(in_use) {}
  SqliteStatement(SqliteStatement&& other) noexcept;
  SqliteStatement& operator=(SqliteStatement&&) = delete;
  ~SqliteStatement();

  // Binds parameters 1..n; a failure is reported by the next Step.
  template <typename... Args>
  SqliteStatement& Bind(const Args&... args) {
    int i = 1;
    (BindOne(i++, args), ...);
    return *this;
  }

  // True when a row is ready, false when the statement is done.
  absl::StatusOr<bool> Step();
  // Steps to the end (for statements that return no rows).
  absl::Status Run();
  // Ready to bind and step again.
  void Reset();

  int64_t Int(int col);
  std::string Text(int col);
  std::string Blob(int col);
  bool IsNull(int col);

 private:
  void BindOne(int i, int64_t v);
  void BindOne(int i, absl::string_view v);
  void BindOne(int i, SqliteBytes v);
  void Check(int rc);

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  bool* in_use_;
  absl::Status bind_error_;
};

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_SQLITE_STATEMENT_H_
