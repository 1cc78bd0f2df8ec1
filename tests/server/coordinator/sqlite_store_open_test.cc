// SqliteStore::Open: pragmas, schema versions, the directory lock, files
// that are not a store.
#include <sqlite3.h>

#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator/sqlite_store.h"
#include "tests/server/coordinator/store_test_util.h"

namespace driftscope::coordinator {
namespace {

using ::driftscope::testing::StoreDir;
using ::testing::HasSubstr;

absl::StatusOr<std::unique_ptr<SqliteStore>> OpenAt(const std::string& dir) {
  SqliteStoreOptions options;
  options.directory = dir;
  return SqliteStore::Open(options);
}

// Runs `sql` on the database with a connection of its own; returns the
// first column of the first row as text ("" when none).
std::string RawQuery(const std::string& dir, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open((dir + "/coordinator.db").c_str(), &db) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0)) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return out;
}

TEST(SqliteStoreOpenTest, NewStoreIsWalAtTheCurrentSchemaVersion) {
  StoreDir dir;
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = OpenAt(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  store->reset();
  // journal_mode=WAL is persistent in the file; the version is in the header.
  EXPECT_EQ(RawQuery(dir.path(), "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawQuery(dir.path(), "PRAGMA user_version"),
            std::to_string(SqliteStoreSchemaVersion()));
  // Reopening an up-to-date store migrates nothing and works.
  EXPECT_TRUE(OpenAt(dir.path()).ok());
}

TEST(SqliteStoreOpenTest, StoreOfSchemaOneIsMigratedAndKeepsItsFingerprints) {
  // A store written before schema 2 kept every fingerprint in the run's
  // summary and had no run_fingerprints table: opening it adds the table,
  // and GetFingerprints still finds the old run's fingerprints.
  StoreDir dir;
  v1::RunSummary summary;
  summary.set_steps(3);
  for (int step = 0; step <= 3; ++step) {
    v1::Fingerprint* f = summary.add_fingerprints();
    f->set_step(step);
    f->set_sha256(absl::StrCat("sha-", step));
  }
  {
    auto store = OpenAt(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(
        (*store)
            ->CreateJob(::driftscope::testing::MakeJob("job-1", "", 1000),
                        ::driftscope::testing::MakeRuns("job-1", 1))
            .ok());
    ASSERT_TRUE((*store)->StartAttempt("job-1-r0", 1, "w1", 10).ok());
    ASSERT_TRUE((*store)->CompleteRun("job-1-r0", 1, summary, 20).ok());
  }
  // Back to schema 1: the whole summary in the row, no table.
  RawQuery(dir.path(),
           absl::StrCat("UPDATE runs SET summary = X'",
                        absl::BytesToHexString(summary.SerializeAsString()),
                        "' WHERE run_id = 'job-1-r0'"));
  RawQuery(dir.path(), "DROP TABLE run_fingerprints");
  RawQuery(dir.path(), "PRAGMA user_version = 1");
  ASSERT_EQ(RawQuery(dir.path(), "PRAGMA user_version"), "1");

  auto store = OpenAt(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(RawQuery(dir.path(), "PRAGMA user_version"),
            std::to_string(SqliteStoreSchemaVersion()));
  absl::StatusOr<std::vector<v1::Fingerprint>> all =
      (*store)->GetFingerprints("job-1-r0");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[2].sha256(), "sha-2");
}

TEST(SqliteStoreOpenTest, DatabaseFromANewerVersionIsRefused) {
  StoreDir dir;
  ASSERT_TRUE(OpenAt(dir.path()).ok());
  const int newer = SqliteStoreSchemaVersion() + 1;
  RawQuery(dir.path(), absl::StrCat("PRAGMA user_version = ", newer));
  ASSERT_EQ(RawQuery(dir.path(), "PRAGMA user_version"), std::to_string(newer));
  absl::Status s = OpenAt(dir.path()).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("schema version ", newer)));
  // Refusing did not touch it.
  EXPECT_EQ(RawQuery(dir.path(), "PRAGMA user_version"), std::to_string(newer));
}

TEST(SqliteStoreOpenTest, SecondStoreOnTheSameDirectoryIsRefused) {
  StoreDir dir;
  absl::StatusOr<std::unique_ptr<SqliteStore>> first = OpenAt(dir.path());
  ASSERT_TRUE(first.ok()) << first.status();
  absl::Status s = OpenAt(dir.path()).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("in use"));
  first->reset();
  EXPECT_TRUE(OpenAt(dir.path()).ok()) << "the lock goes with the store";
}

TEST(SqliteStoreOpenTest, AFileThatIsNotADatabaseIsDataLoss) {
  StoreDir dir;
  std::ofstream(dir.path() + "/coordinator.db")
      << "this is not an SQLite database, but long enough to look like a "
         "header: 0123456789012345678901234567890123456789";
  absl::Status s = OpenAt(dir.path()).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("coordinator.db"));
}

TEST(SqliteStoreOpenTest, EmptyDirectoryNameIsInvalidArgument) {
  EXPECT_TRUE(absl::IsInvalidArgument(OpenAt("").status()));
}

}  // namespace
}  // namespace driftscope::coordinator
