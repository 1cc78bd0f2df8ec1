// SqliteStore used from several threads at once: every write lands, request
// ids stay unique, readers see consistent rows.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/coordinator/sqlite_store.h"
#include "tests/server/coordinator/store_test_util.h"

namespace driftscope::coordinator {
namespace {

using ::driftscope::testing::MakeJob;
using ::driftscope::testing::MakeRuns;
using ::driftscope::testing::StoreDir;

constexpr int kThreads = 8;
constexpr int kJobsPerThread = 15;

// One job through its whole life; returns the first error.
absl::Status RunJobToCompletion(Store& store, const std::string& job_id,
                                int64_t created_ms) {
  absl::StatusOr<CreateJobResult> created = store.CreateJob(
      MakeJob(job_id, "req-" + job_id, created_ms), MakeRuns(job_id, 2));
  if (!created.ok()) return created.status();
  for (int r = 0; r < 2; ++r) {
    const std::string run_id = absl::StrCat(job_id, "-r", r);
    if (absl::Status s = store.StartAttempt(run_id, 1, "w1", created_ms);
        !s.ok()) {
      return s;
    }
    absl::StatusOr<std::string> key = store.blobs().Put(run_id);
    if (!key.ok()) return key.status();
    v1::RunSummary summary;
    v1::TensorInfo* t = summary.add_tensors();
    t->set_name("outputs");
    t->set_sha256(*key);
    if (absl::Status s = store.CompleteRun(run_id, 1, summary, created_ms);
        !s.ok()) {
      return s;
    }
  }
  return store.FinishJob(job_id, v1::JOB_SUCCEEDED, created_ms);
}

TEST(SqliteStoreConcurrencyTest, WritersOnSeveralThreadsAllLand) {
  StoreDir dir;
  SqliteStoreOptions options;
  options.directory = dir.path();
  absl::StatusOr<std::unique_ptr<SqliteStore>> opened =
      SqliteStore::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  SqliteStore& store = **opened;

  std::vector<absl::Status> errors(kThreads);
  std::atomic<int> shared_created{0};
  std::vector<std::string> shared_ids(kThreads);
  std::atomic<bool> writers_done{false};
  std::atomic<int> reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Every thread submits the same request id: exactly one creates it.
      absl::StatusOr<CreateJobResult> shared =
          store.CreateJob(MakeJob(absl::StrCat("shared-", t), "same-request"),
                          MakeRuns(absl::StrCat("shared-", t), 1));
      if (!shared.ok()) {
        errors[t] = shared.status();
        return;
      }
      if (shared->created) ++shared_created;
      shared_ids[t] = shared->job_id;
      for (int j = 0; j < kJobsPerThread; ++j) {
        absl::Status s = RunJobToCompletion(
            store, absl::StrCat("t", t, "-j", j), 1000 + j * kThreads + t);
        if (!s.ok()) {
          errors[t] = s;
          return;
        }
      }
    });
  }
  // A reader alongside: every listed job is in a state it can be in.
  std::thread reader([&] {
    while (!writers_done) {
      absl::StatusOr<ListJobsPage> page = store.ListJobs({});
      ASSERT_TRUE(page.ok()) << page.status();
      for (const JobRow& job : page->jobs) {
        ASSERT_NE(job.state, v1::JOB_STATE_UNSPECIFIED);
      }
      ++reads;
    }
  });
  for (std::thread& t : threads) t.join();
  writers_done = true;
  reader.join();

  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(errors[t].ok()) << errors[t];
  EXPECT_EQ(shared_created.load(), 1);
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(shared_ids[t], shared_ids[0]);
  EXPECT_GT(reads.load(), 0);

  ListJobsQuery done;
  done.states = {v1::JOB_SUCCEEDED};
  done.page_size = 1000;
  absl::StatusOr<ListJobsPage> page = store.ListJobs(done);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->jobs.size(), static_cast<size_t>(kThreads * kJobsPerThread));
  ListJobsQuery all;
  all.page_size = 1000;
  EXPECT_EQ(store.ListJobs(all)->jobs.size(),
            static_cast<size_t>(kThreads * kJobsPerThread + 1));
  EXPECT_TRUE(store.CheckIntegrity().ok());
}

// Concurrent writes are committed in groups, one savepoint each: a write
// that fails after it changed something (a job inserted, then a clashing
// run id) must vanish without taking its group's other writes with it.
TEST(SqliteStoreConcurrencyTest, AFailedWriteRollsBackAloneInItsGroup) {
  StoreDir dir;
  SqliteStoreOptions options;
  options.directory = dir.path();
  absl::StatusOr<std::unique_ptr<SqliteStore>> opened =
      SqliteStore::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  SqliteStore& store = **opened;

  constexpr int kThreads = 16;
  constexpr int kRounds = 10;
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const std::string good = absl::StrCat("good-", t, "-", i);
        absl::StatusOr<CreateJobResult> ok =
            store.CreateJob(MakeJob(good), MakeRuns(good, 1));
        if (!ok.ok() || !ok->created) {
          errors[t] = absl::StrCat(good, ": ", ok.status().ToString());
          return;
        }
        const std::string bad = absl::StrCat("bad-", t, "-", i);
        std::vector<RunRow> runs = MakeRuns(bad, 1);
        runs.push_back(runs[0]);
        runs.back().run_id = good + "-r0";  // already taken
        absl::Status clash = store.CreateJob(MakeJob(bad), runs).status();
        if (!absl::IsAlreadyExists(clash)) {
          errors[t] = absl::StrCat(bad, ": ", clash.ToString());
          return;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << t;

  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kRounds; ++i) {
      EXPECT_TRUE(store.GetJob(absl::StrCat("good-", t, "-", i)).ok());
      EXPECT_TRUE(absl::IsNotFound(
          store.GetJob(absl::StrCat("bad-", t, "-", i)).status()));
      EXPECT_TRUE(absl::IsNotFound(
          store.GetRun(absl::StrCat("bad-", t, "-", i, "-r0")).status()));
    }
  }
  ListJobsQuery all;
  all.page_size = 1000;
  EXPECT_EQ(store.ListJobs(all)->jobs.size(),
            static_cast<size_t>(kThreads * kRounds));
  EXPECT_TRUE(store.CheckIntegrity().ok());
}

}  // namespace
}  // namespace driftscope::coordinator
