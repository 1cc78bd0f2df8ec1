// SqliteStore: every Store call, its state rules and its error paths.
#include "server/coordinator/sqlite_store.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/core/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/coordinator/store_test_util.h"

namespace driftscope::coordinator {
namespace {

using ::driftscope::testing::MakeJob;
using ::driftscope::testing::MakeRuns;
using ::driftscope::testing::StoreDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    Reopen();
  }
  void Reopen() {
    store_.reset();
    SqliteStoreOptions options;
    options.directory = dir_.path();
    absl::StatusOr<std::unique_ptr<SqliteStore>> store =
        SqliteStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  // Creates `job_id` with `n` runs and asserts it was created.
  void Create(const std::string& job_id, int n, int64_t created_ms = 1000) {
    absl::StatusOr<CreateJobResult> r =
        store_->CreateJob(MakeJob(job_id, "", created_ms), MakeRuns(job_id, n));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(r->created);
  }
  // A summary whose one tensor is `data`, put in the blob store.
  v1::RunSummary Summary(const std::string& data) {
    absl::StatusOr<std::string> key = store_->blobs().Put(data);
    EXPECT_TRUE(key.ok()) << key.status();
    v1::RunSummary summary;
    summary.set_profile("fp32");
    summary.set_steps(12);
    summary.set_final_loss(0.25);
    v1::TensorInfo* t = summary.add_tensors();
    t->set_name("outputs");
    t->set_size_bytes(static_cast<int64_t>(data.size()));
    t->set_sha256(key.value_or(""));
    return summary;
  }
  RunRow Run(const std::string& run_id) {
    absl::StatusOr<RunRow> run = store_->GetRun(run_id);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.value_or(RunRow{});
  }
  JobRow Job(const std::string& job_id) {
    absl::StatusOr<JobRow> job = store_->GetJob(job_id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.value_or(JobRow{});
  }

  StoreDir dir_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteStoreTest, CreateJobThenGetJobReturnsWhatWasStored) {
  const JobRow in = MakeJob("job-1", "req-1", 1234);
  absl::StatusOr<CreateJobResult> r =
      store_->CreateJob(in, MakeRuns("job-1", 3));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->created);
  EXPECT_EQ(r->job_id, "job-1");

  const JobRow out = Job("job-1");
  EXPECT_EQ(out.client_request_id, "req-1");
  EXPECT_EQ(out.spec_digest, in.spec_digest);
  EXPECT_EQ(out.spec.SerializeAsString(), in.spec.SerializeAsString());
  EXPECT_EQ(out.placement.SerializeAsString(),
            in.placement.SerializeAsString());
  EXPECT_EQ(out.description, in.description);
  EXPECT_EQ(out.state, v1::JOB_QUEUED);
  EXPECT_EQ(out.created_unix_ms, 1234);
  EXPECT_EQ(out.finished_unix_ms, 0);
  ASSERT_EQ(out.init_weights.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(out.init_weights[i].SerializeAsString(),
              in.init_weights[i].SerializeAsString())
        << "init weight " << i;
    // The data lives in the blob directory, addressed by its digest.
    const std::string& data = in.init_weights[i].data();
    EXPECT_TRUE(store_->blobs().Has(Sha256Hex(data.data(), data.size())));
  }
}

TEST_F(SqliteStoreTest, GetRunsListsRunsInCreationOrderAllQueued) {
  Create("job-1", 3);
  absl::StatusOr<std::vector<RunRow>> runs = store_->GetRuns("job-1");
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const RunRow& run = (*runs)[i];
    EXPECT_EQ(run.run_id, "job-1-r" + std::to_string(i));
    EXPECT_EQ(run.job_id, "job-1");
    EXPECT_EQ(run.worker, "w" + std::to_string(i + 1));
    EXPECT_EQ(run.profile, "fp32");
    EXPECT_EQ(run.repeat, i);
    EXPECT_EQ(run.state, v1::RUN_QUEUED);
    EXPECT_EQ(run.current_attempt, 0);
    EXPECT_THAT(run.attempts, IsEmpty());
  }
}

TEST_F(SqliteStoreTest, UnknownIdsAreNotFound) {
  EXPECT_TRUE(absl::IsNotFound(store_->GetJob("nope").status()));
  EXPECT_TRUE(absl::IsNotFound(store_->GetRuns("nope").status()));
  EXPECT_TRUE(absl::IsNotFound(store_->GetRun("nope").status()));
  EXPECT_TRUE(absl::IsNotFound(store_->StartAttempt("nope", 1, "w1", 1)));
  EXPECT_TRUE(
      absl::IsNotFound(store_->FailAttempt("nope", 1, 14, "x", true, 1)));
  EXPECT_TRUE(absl::IsNotFound(store_->CompleteRun("nope", 1, {}, 1)));
  EXPECT_TRUE(absl::IsNotFound(store_->CancelJob("nope", 1)));
  EXPECT_TRUE(
      absl::IsNotFound(store_->FinishJob("nope", v1::JOB_SUCCEEDED, 1)));
}

TEST_F(SqliteStoreTest, SameRequestIdReturnsTheExistingJobAndStoresNothing) {
  ASSERT_TRUE(
      store_->CreateJob(MakeJob("job-1", "req"), MakeRuns("job-1", 1)).ok());
  JobRow again = MakeJob("job-2", "req");
  again.spec_digest = "another digest";
  absl::StatusOr<CreateJobResult> r =
      store_->CreateJob(again, MakeRuns("job-2", 1));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->created);
  EXPECT_EQ(r->job_id, "job-1");
  EXPECT_EQ(r->existing_spec_digest, "digest-job-1");
  EXPECT_TRUE(absl::IsNotFound(store_->GetJob("job-2").status()));
  EXPECT_TRUE(absl::IsNotFound(store_->GetRun("job-2-r0").status()));
}

TEST_F(SqliteStoreTest, FindJobByRequestIdFindsOnlyThatJob) {
  ASSERT_TRUE(
      store_->CreateJob(MakeJob("job-1", "req"), MakeRuns("job-1", 1)).ok());
  absl::StatusOr<std::optional<JobRow>> found =
      store_->FindJobByRequestId("req");
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->job_id, "job-1");
  EXPECT_EQ((*found)->spec_digest, "digest-job-1");
  absl::StatusOr<std::optional<JobRow>> none =
      store_->FindJobByRequestId("other");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
  EXPECT_TRUE(absl::IsInvalidArgument(store_->FindJobByRequestId("").status()));
}

TEST_F(SqliteStoreTest, JobsWithoutRequestIdNeverCollide) {
  Create("job-1", 1);
  Create("job-2", 1);
  absl::StatusOr<ListJobsPage> page = store_->ListJobs({});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->jobs.size(), 2u);
}

TEST_F(SqliteStoreTest, DuplicateIdsAreAlreadyExistsAndStoreNothing) {
  Create("job-1", 2);
  EXPECT_TRUE(absl::IsAlreadyExists(
      store_->CreateJob(MakeJob("job-1"), MakeRuns("job-1", 0)).status()));
  // job-2 reuses run id job-1-r1 after a fresh first run: the whole job is
  // rolled back, not just the clashing run.
  std::vector<RunRow> runs = MakeRuns("job-2", 1);
  runs.push_back(MakeRuns("job-1", 2)[1]);
  runs.back().job_id = "job-2";
  absl::Status s = store_->CreateJob(MakeJob("job-2"), runs).status();
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("job-1-r1"));
  EXPECT_TRUE(absl::IsNotFound(store_->GetJob("job-2").status()));
  EXPECT_TRUE(absl::IsNotFound(store_->GetRun("job-2-r0").status()));
  EXPECT_EQ(Run("job-1-r1").job_id, "job-1");
}

TEST_F(SqliteStoreTest, MalformedRowsAreInvalidArgument) {
  EXPECT_TRUE(
      absl::IsInvalidArgument(store_->CreateJob(MakeJob(""), {}).status()));
  std::vector<RunRow> runs = MakeRuns("job-1", 1);
  runs[0].run_id = "";
  EXPECT_TRUE(absl::IsInvalidArgument(
      store_->CreateJob(MakeJob("job-1"), runs).status()));
  runs = MakeRuns("other", 1);
  EXPECT_TRUE(absl::IsInvalidArgument(
      store_->CreateJob(MakeJob("job-1"), runs).status()));
  runs = MakeRuns("job-1", 1);
  runs[0].state = v1::RUN_RUNNING;
  EXPECT_TRUE(absl::IsInvalidArgument(
      store_->CreateJob(MakeJob("job-1"), runs).status()));
  JobRow running = MakeJob("job-1");
  running.state = v1::JOB_RUNNING;
  EXPECT_TRUE(absl::IsInvalidArgument(
      store_->CreateJob(running, MakeRuns("job-1", 1)).status()));
  EXPECT_TRUE(absl::IsNotFound(store_->GetJob("job-1").status()));
}

TEST_F(SqliteStoreTest, AttemptsAreNumberedFromOneAndRetriesContinueTheCount) {
  Create("job-1", 1);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->StartAttempt("job-1-r0", 2, "w1", 10)));
  ASSERT_TRUE(store_->StartAttempt("job-1-r0", 1, "w1", 10).ok());
  EXPECT_EQ(Run("job-1-r0").state, v1::RUN_RUNNING);
  EXPECT_EQ(Job("job-1").state, v1::JOB_RUNNING);
  // A running run cannot start again.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->StartAttempt("job-1-r0", 2, "w2", 11)));

  ASSERT_TRUE(
      store_->FailAttempt("job-1-r0", 1, 14, "worker w1 vanished", true, 20)
          .ok());
  RunRow run = Run("job-1-r0");
  EXPECT_EQ(run.state, v1::RUN_QUEUED);
  EXPECT_EQ(run.current_attempt, 1);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->StartAttempt("job-1-r0", 1, "w2", 21)));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->StartAttempt("job-1-r0", 3, "w2", 21)));
  ASSERT_TRUE(store_->StartAttempt("job-1-r0", 2, "w2", 21).ok());

  run = Run("job-1-r0");
  EXPECT_EQ(run.state, v1::RUN_RUNNING);
  EXPECT_EQ(run.current_attempt, 2);
  EXPECT_EQ(run.worker, "w1");  // what the placement asked for
  ASSERT_EQ(run.attempts.size(), 2u);
  const AttemptRow& first = run.attempts[0];
  EXPECT_EQ(first.attempt, 1);
  EXPECT_EQ(first.worker, "w1");
  EXPECT_EQ(first.started_unix_ms, 10);
  EXPECT_EQ(first.ended_unix_ms, 20);
  EXPECT_EQ(first.outcome, "failed");
  EXPECT_EQ(first.code, 14);
  EXPECT_EQ(first.message, "worker w1 vanished");
  const AttemptRow& second = run.attempts[1];
  EXPECT_EQ(second.attempt, 2);
  EXPECT_EQ(second.worker, "w2");
  EXPECT_EQ(second.ended_unix_ms, 0);
  EXPECT_EQ(second.outcome, "");
}

TEST_F(SqliteStoreTest, FailAttemptWithoutRetryFailsTheRunWithTheReason) {
  Create("job-1", 1);
  ASSERT_TRUE(store_->StartAttempt("job-1-r0", 1, "w1", 10).ok());
  ASSERT_TRUE(
      store_->FailAttempt("job-1-r0", 1, 3, "bad spec", false, 20).ok());
  const RunRow run = Run("job-1-r0");
  EXPECT_EQ(run.state, v1::RUN_FAILED);
  EXPECT_EQ(run.failure.code(), 3);
  EXPECT_EQ(run.failure.message(), "bad spec");
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->FailAttempt("job-1-r0", 1, 3, "again", false, 21)));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->StartAttempt("job-1-r0", 2, "w1", 22)));
}

// The scheduler records a run that no worker could take as an attempt on
// worker "" that failed.
TEST_F(SqliteStoreTest, AnAttemptThatReachedNoWorkerCanFailTheRun) {
  Create("job-1", 1);
  ASSERT_TRUE(store_->StartAttempt("job-1-r0", 1, "", 10).ok());
  ASSERT_TRUE(
      store_->FailAttempt("job-1-r0", 1, 14, "no worker", false, 11).ok());
  const RunRow run = Run("job-1-r0");
  EXPECT_EQ(run.state, v1::RUN_FAILED);
  ASSERT_EQ(run.attempts.size(), 1u);
  EXPECT_EQ(run.attempts[0].worker, "");
  EXPECT_EQ(run.attempts[0].message, "no worker");
}

TEST_F(SqliteStoreTest, CompleteRunStoresTheSummaryAndEndsTheAttempt) {
  Create("job-1", 1);
  ASSERT_TRUE(store_->StartAttempt("job-1-r0", 1, "w1", 10).ok());
  const v1::RunSummary summary = Summary("the outputs");
  ASSERT_TRUE(store_->CompleteRun("job-1-r0", 1, summary, 30).ok());
  const RunRow run = Run("job-1-r0");
  EXPECT_EQ(run.state, v1::RUN_SUCCEEDED);
  EXPECT_EQ(run.summary.SerializeAsString(), summary.SerializeAsString());
  ASSERT_EQ(run.attempts.size(), 1u);
  EXPECT_EQ(run.attempts[0].outcome, "succeeded");
  EXPECT_EQ(run.attempts[0].ended_unix_ms, 30);
  absl::StatusOr<std::string> data =
      store_->blobs().Get(run.summary.tensors(0).sha256());
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, "the outputs");
  // A second result for the same attempt is rejected.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->CompleteRun("job-1-r0", 1, summary, 31)));
}

TEST_F(SqliteStoreTest, FingerprintsAreKeptApartFromTheSummary) {
  // A long run's fingerprints: the stored summary keeps the first and the
  // last (what a job view shows), GetFingerprints has every one, in order.
  Create("job-1", 2);
  ASSERT_TRUE(store_->StartAttempt("job-1-r0", 1, "w1", 10).ok());
  v1::RunSummary summary = Summary("the outputs");
  for (int step = 0; step <= 5000; ++step) {
    v1::Fingerprint* f = summary.add_fingerprints();
    f->set_step(step);
    f->set_sha256(absl::StrCat("sha-", step));
    f->set_sha256_f32(absl::StrCat("f32-", step));
  }
  ASSERT_TRUE(store_->CompleteRun("job-1-r0", 1, summary, 30).ok());
  Reopen();
  const RunRow run = Run("job-1-r0");
  ASSERT_EQ(run.summary.fingerprints_size(), 2);
  EXPECT_EQ(run.summary.fingerprints(0).step(), 0);
  EXPECT_EQ(run.summary.fingerprints(1).step(), 5000);
  EXPECT_EQ(run.summary.fingerprints(1).sha256(), "sha-5000");
  absl::StatusOr<std::vector<v1::Fingerprint>> all =
      store_->GetFingerprints("job-1-r0");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 5001u);
  for (int step = 0; step <= 5000; ++step) {
    ASSERT_EQ((*all)[step].step(), step);
    ASSERT_EQ((*all)[step].sha256_f32(), absl::StrCat("f32-", step));
  }
  // A run without a result has none; an unknown run is NotFound.
  all = store_->GetFingerprints("job-1-r1");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, IsEmpty());
  EXPECT_TRUE(absl::IsNotFound(store_->GetFingerprints("nope").status()));
}

TEST_F(SqliteStoreTest, CompleteRunWithATensorNotInTheBlobStoreIsRejected) {
  Create("job-1", 1);
  ASSERT_TRUE(store_->StartAttempt("job-1-r0", 1, "w1", 10).ok());
  v1::RunSummary summary = Summary("x");
  summary.mutable_tensors(0)->set_sha256(std::string(64, 'a'));
  absl::Status s = store_->CompleteRun("job-1-r0", 1, summary, 30);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("outputs"));
  EXPECT_EQ(Run("job-1-r0").state, v1::RUN_RUNNING);
}

TEST_F(SqliteStoreTest, LateResultOfASupersededAttemptIsRejectedNothingStored) {
  Create("job-1", 1);
  ASSERT_TRUE(store_->StartAttempt("job-1-r0", 1, "w1", 10).ok());
  ASSERT_TRUE(store_->FailAttempt("job-1-r0", 1, 4, "deadline", true, 20).ok());
  ASSERT_TRUE(store_->StartAttempt("job-1-r0", 2, "w2", 21).ok());

  absl::Status late =
      store_->CompleteRun("job-1-r0", 1, Summary("late result"), 25);
  EXPECT_TRUE(absl::IsFailedPrecondition(late)) << late;
  EXPECT_THAT(late.message(), HasSubstr("superseded"));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->FailAttempt("job-1-r0", 1, 14, "late failure", false, 26)));
  RunRow run = Run("job-1-r0");
  EXPECT_EQ(run.state, v1::RUN_RUNNING);
  EXPECT_EQ(run.summary.tensors_size(), 0);
  ASSERT_EQ(run.attempts.size(), 2u);
  EXPECT_EQ(run.attempts[1].outcome, "");

  // The current attempt's result is still accepted.
  ASSERT_TRUE(store_->CompleteRun("job-1-r0", 2, Summary("current"), 30).ok());
  EXPECT_EQ(Run("job-1-r0").state, v1::RUN_SUCCEEDED);
}

TEST_F(SqliteStoreTest, CancelEndsEveryRunAndALaterResultIsRejected) {
  Create("job-1", 3);
  ASSERT_TRUE(store_->StartAttempt("job-1-r0", 1, "w1", 10).ok());
  ASSERT_TRUE(store_->StartAttempt("job-1-r1", 1, "w2", 10).ok());
  ASSERT_TRUE(store_->CompleteRun("job-1-r1", 1, Summary("done"), 15).ok());
  ASSERT_TRUE(store_->CancelJob("job-1", 20).ok());

  const JobRow job = Job("job-1");
  EXPECT_EQ(job.state, v1::JOB_CANCELLED);
  EXPECT_EQ(job.finished_unix_ms, 20);
  RunRow running = Run("job-1-r0");
  EXPECT_EQ(running.state, v1::RUN_CANCELLED);
  EXPECT_EQ(running.failure.code(),
            static_cast<int>(absl::StatusCode::kCancelled));
  ASSERT_EQ(running.attempts.size(), 1u);
  EXPECT_EQ(running.attempts[0].outcome, "cancelled");
  EXPECT_EQ(running.attempts[0].ended_unix_ms, 20);
  EXPECT_EQ(Run("job-1-r1").state, v1::RUN_SUCCEEDED);  // already done
  EXPECT_EQ(Run("job-1-r2").state, v1::RUN_CANCELLED);

  absl::Status late =
      store_->CompleteRun("job-1-r0", 1, Summary("after cancel"), 25);
  EXPECT_TRUE(absl::IsFailedPrecondition(late)) << late;
  running = Run("job-1-r0");
  EXPECT_EQ(running.state, v1::RUN_CANCELLED);
  EXPECT_EQ(running.summary.tensors_size(), 0);
  EXPECT_EQ(running.attempts[0].outcome, "cancelled");
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->StartAttempt("job-1-r2", 1, "w3", 26)));
}

TEST_F(SqliteStoreTest, CancellingATerminalJobIsRejectedAndChangesNothing) {
  Create("job-1", 1);
  ASSERT_TRUE(store_->CancelJob("job-1", 20).ok());
  absl::Status again = store_->CancelJob("job-1", 30);
  EXPECT_TRUE(absl::IsFailedPrecondition(again)) << again;
  EXPECT_EQ(Job("job-1").finished_unix_ms, 20);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->FinishJob("job-1", v1::JOB_SUCCEEDED, 30)));
  EXPECT_EQ(Job("job-1").state, v1::JOB_CANCELLED);
}

TEST_F(SqliteStoreTest, FinishJobOnlyOnceEveryRunIsTerminal) {
  Create("job-1", 2);
  EXPECT_TRUE(absl::IsInvalidArgument(
      store_->FinishJob("job-1", v1::JOB_CANCELLED, 5)));
  EXPECT_TRUE(
      absl::IsInvalidArgument(store_->FinishJob("job-1", v1::JOB_RUNNING, 5)));
  ASSERT_TRUE(store_->StartAttempt("job-1-r0", 1, "w1", 10).ok());
  ASSERT_TRUE(store_->CompleteRun("job-1-r0", 1, Summary("a"), 20).ok());
  absl::Status early = store_->FinishJob("job-1", v1::JOB_SUCCEEDED, 21);
  EXPECT_TRUE(absl::IsFailedPrecondition(early)) << early;
  EXPECT_THAT(early.message(), HasSubstr("1 unfinished"));
  ASSERT_TRUE(store_->StartAttempt("job-1-r1", 1, "w2", 22).ok());
  ASSERT_TRUE(store_->FailAttempt("job-1-r1", 1, 13, "nan", false, 23).ok());
  ASSERT_TRUE(store_->FinishJob("job-1", v1::JOB_FAILED, 24).ok());
  const JobRow job = Job("job-1");
  EXPECT_EQ(job.state, v1::JOB_FAILED);
  EXPECT_EQ(job.finished_unix_ms, 24);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->FinishJob("job-1", v1::JOB_SUCCEEDED, 25)));
}

TEST_F(SqliteStoreTest, RecoverUnfinishedRequeuesInFlightRunsOldestJobFirst) {
  Create("new", 1, /*created_ms=*/300);
  Create("old", 2, /*created_ms=*/100);
  Create("done", 1, /*created_ms=*/200);
  ASSERT_TRUE(store_->StartAttempt("old-r0", 1, "w1", 400).ok());
  ASSERT_TRUE(store_->StartAttempt("done-r0", 1, "w1", 400).ok());
  ASSERT_TRUE(store_->CompleteRun("done-r0", 1, Summary("d"), 410).ok());
  ASSERT_TRUE(store_->FinishJob("done", v1::JOB_SUCCEEDED, 410).ok());

  Reopen();  // a restart
  absl::StatusOr<std::vector<std::string>> jobs =
      store_->RecoverUnfinished(500);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(*jobs, ElementsAre("old", "new"));
  RunRow run = Run("old-r0");
  EXPECT_EQ(run.state, v1::RUN_QUEUED);
  ASSERT_EQ(run.attempts.size(), 1u);
  EXPECT_EQ(run.attempts[0].outcome, "interrupted");
  EXPECT_EQ(run.attempts[0].ended_unix_ms, 500);
  EXPECT_EQ(run.attempts[0].code,
            static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_EQ(Run("done-r0").state, v1::RUN_SUCCEEDED);
  // The interrupted attempt's late result is rejected; the next attempt is 2.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->CompleteRun("old-r0", 1, Summary("late"), 510)));
  ASSERT_TRUE(store_->StartAttempt("old-r0", 2, "w2", 520).ok());
}

TEST_F(SqliteStoreTest, ListJobsPagesNewestFirstWithTiesInCreationTime) {
  // created_ms: a=100, b=200, c=200, d=200, e=300; ties keep insertion order.
  const std::vector<std::pair<std::string, int64_t>> jobs = {
      {"a", 100}, {"b", 200}, {"c", 200}, {"d", 200}, {"e", 300}};
  for (const auto& [id, ms] : jobs) Create(id, 1, ms);
  std::vector<std::string> seen;
  ListJobsQuery query;
  query.page_size = 2;
  int pages = 0;
  do {
    absl::StatusOr<ListJobsPage> page = store_->ListJobs(query);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_LE(page->jobs.size(), 2u);
    for (const JobRow& job : page->jobs) {
      seen.push_back(job.job_id);
      EXPECT_THAT(job.init_weights, IsEmpty()) << "listings skip weights";
    }
    query.page_token = page->next_page_token;
    ASSERT_LT(++pages, 10);
  } while (!query.page_token.empty());
  EXPECT_THAT(seen, ElementsAre("e", "d", "c", "b", "a"));
  EXPECT_EQ(pages, 3);
}

TEST_F(SqliteStoreTest, ListJobsFiltersByState) {
  Create("queued", 1, 100);
  Create("running", 1, 200);
  Create("cancelled", 1, 300);
  ASSERT_TRUE(store_->StartAttempt("running-r0", 1, "w1", 400).ok());
  ASSERT_TRUE(store_->CancelJob("cancelled", 400).ok());
  ListJobsQuery query;
  query.states = {v1::JOB_QUEUED, v1::JOB_RUNNING, v1::JOB_QUEUED};
  absl::StatusOr<ListJobsPage> page = store_->ListJobs(query);
  ASSERT_TRUE(page.ok()) << page.status();
  std::vector<std::string> ids;
  for (const JobRow& job : page->jobs) ids.push_back(job.job_id);
  EXPECT_THAT(ids, ElementsAre("running", "queued"));
  EXPECT_EQ(page->next_page_token, "");
}

TEST_F(SqliteStoreTest, ListJobsRejectsBadTokensAndSizes) {
  Create("a", 1);
  for (const char* token : {"garbage!", "Zm9v", "ajE6eDp5"}) {
    ListJobsQuery query;
    query.page_token = token;
    absl::Status s = store_->ListJobs(query).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << token << ": " << s;
  }
  ListJobsQuery negative;
  negative.page_size = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(store_->ListJobs(negative).status()));
  ListJobsQuery bad_state;
  bad_state.states = {v1::JOB_STATE_UNSPECIFIED};
  EXPECT_TRUE(absl::IsInvalidArgument(store_->ListJobs(bad_state).status()));
}

TEST_F(SqliteStoreTest, EverythingSurvivesCloseAndReopen) {
  Create("job-1", 2);
  ASSERT_TRUE(store_->StartAttempt("job-1-r0", 1, "w1", 10).ok());
  const v1::RunSummary summary = Summary("result bytes");
  ASSERT_TRUE(store_->CompleteRun("job-1-r0", 1, summary, 20).ok());
  ASSERT_TRUE(store_->StartAttempt("job-1-r1", 1, "w2", 10).ok());

  Reopen();
  const JobRow job = Job("job-1");
  EXPECT_EQ(job.state, v1::JOB_RUNNING);
  ASSERT_EQ(job.init_weights.size(), 2u);
  EXPECT_EQ(job.init_weights[1].data(), MakeJob("x").init_weights[1].data());
  const RunRow done = Run("job-1-r0");
  EXPECT_EQ(done.state, v1::RUN_SUCCEEDED);
  EXPECT_EQ(done.summary.SerializeAsString(), summary.SerializeAsString());
  EXPECT_EQ(*store_->blobs().Get(summary.tensors(0).sha256()), "result bytes");
  EXPECT_EQ(Run("job-1-r1").state, v1::RUN_RUNNING);
  EXPECT_TRUE(store_->CheckIntegrity().ok());
}

TEST_F(SqliteStoreTest, LostInitWeightBlobIsDataLoss) {
  Create("job-1", 1);
  const std::string data = MakeJob("job-1").init_weights[0].data();
  const std::string path = dir_.path() + "/blobs/" +
                           Sha256Hex(data.data(), data.size()).substr(0, 2) +
                           "/" + Sha256Hex(data.data(), data.size()).substr(2);
  ASSERT_EQ(std::remove(path.c_str()), 0) << path;
  absl::Status s = store_->GetJob("job-1").status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
}

}  // namespace
}  // namespace driftscope::coordinator
