// Scheduler over a real SqliteStore with workers replaced by a connector
// that fails on purpose: which failures are retried where, when a run
// gives up, and that a result arriving after a cancel is not stored; and
// that a device run's backend reaches the stored summary and the record.
#include "server/coordinator/scheduler.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "engine/core/sha256.h"
#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/run_records.h"
#include "proto/lib/status.h"
#include "server/coordinator/job_plan.h"
#include "server/coordinator/sqlite_store.h"
#include "tests/server/coordinator/coordinator_test_util.h"
#include "tests/server/coordinator/store_test_util.h"

namespace driftscope::coordinator {
namespace {

using ::driftscope::testing::Eventually;
using ::driftscope::testing::StoreDir;
using ::driftscope::testing::TinySpec;
using ::testing::HasSubstr;

// Answers Run with whatever the test's function for that address says.
class FakeConnector : public WorkerConnector {
 public:
  using RunFn = std::function<absl::StatusOr<RunResult>(const RunOptions&)>;

  void On(const std::string& address, RunFn fn) {
    absl::MutexLock lock(&mu_);
    fns_[address] = std::move(fn);
  }
  int calls(const std::string& address) {
    absl::MutexLock lock(&mu_);
    return calls_[address];
  }

  absl::StatusOr<WorkerDescription> Describe(const WorkerTarget&) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<RunResult> Run(const WorkerTarget& target, const JobSpec&,
                                const std::string&, const RunOptions& options,
                                const RemoteRunOptions&) override {
    const std::string& address = target.address;
    RunFn fn;
    {
      absl::MutexLock lock(&mu_);
      ++calls_[address];
      fn = fns_[address];
    }
    return fn(options);
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, RunFn> fns_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
};

const RunResult& TinyResult() {
  static const RunResult* r = [] {
    auto result = RunJob(TinySpec(), *Profile::Parse("fp32"));
    EXPECT_TRUE(result.ok()) << result.status();
    return new RunResult(*std::move(result));
  }();
  return *r;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStore::Open(SqliteStoreOptions{dir_.path()});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    for (const char* name : {"a:1", "b:1"}) AddWorker(name);
  }

  void AddWorker(const std::string& name,
                 const std::string& extra_preset = "") {
    v1::WorkerInfo w;
    w.set_name(name);
    w.set_address(name);
    w.set_default_profile("fp32");
    w.add_presets("fp32");
    if (!extra_preset.empty()) w.add_presets(extra_preset);
    w.set_max_concurrent_runs(1);
    registry_.UpdateStatic(w, /*available=*/true);
  }

  void StartScheduler(int max_attempts = 3) {
    SchedulerOptions o;
    o.max_attempts = max_attempts;
    o.placement_timeout = absl::Milliseconds(200);
    scheduler_ = std::make_unique<Scheduler>(store_.get(), &registry_,
                                             &connector_, &events_, o);
    ASSERT_TRUE(scheduler_->Start().ok());
  }

  // One run of TinySpec placed on `worker`; returns the job id.
  std::string Submit(const std::string& worker,
                     const std::string& profile = "") {
    v1::SubmitJobRequest r;
    *r.mutable_spec() = JobSpecToProto(TinySpec());
    r.mutable_placement()->add_workers(worker);
    if (!profile.empty())
      r.mutable_placement()->add_profiles()->set_text(profile);
    const std::string id = "job-" + std::to_string(next_id_++);
    auto plan = PlanJob(r, registry_.All(), SubmitLimits(), id, 1000);
    EXPECT_TRUE(plan.ok()) << plan.status();
    EXPECT_TRUE(store_->CreateJob(plan->job, plan->runs).ok());
    EXPECT_TRUE(scheduler_->AddJob(id).ok());
    return id;
  }

  RunRow WaitForRun(const std::string& job_id) {
    EXPECT_TRUE(Eventually(
        [&] {
          auto job = store_->GetJob(job_id);
          return job.ok() && job->state != v1::JOB_QUEUED &&
                 job->state != v1::JOB_RUNNING;
        },
        std::chrono::seconds(30)));
    auto runs = store_->GetRuns(job_id);
    EXPECT_TRUE(runs.ok() && runs->size() == 1u);
    return runs->front();
  }

  StoreDir dir_;
  std::unique_ptr<SqliteStore> store_;
  WorkerRegistry registry_{WorkerRegistryOptions{}};
  FakeConnector connector_;
  JobEventHub events_;
  std::unique_ptr<Scheduler> scheduler_;
  int next_id_ = 1;
};

TEST_F(SchedulerTest, UnreachableWorkerRunMovesToAnother) {
  connector_.On("a:1", [](const RunOptions&) -> absl::StatusOr<RunResult> {
    return absl::UnavailableError("connection refused");
  });
  connector_.On("b:1", [](const RunOptions&) -> absl::StatusOr<RunResult> {
    return TinyResult();
  });
  StartScheduler();
  const RunRow run = WaitForRun(Submit("a:1"));
  EXPECT_EQ(run.state, v1::RUN_SUCCEEDED);
  ASSERT_EQ(run.attempts.size(), 2u);
  EXPECT_EQ(run.attempts[0].worker, "a:1");
  EXPECT_EQ(run.attempts[0].code,
            static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_EQ(run.attempts[1].worker, "b:1");
  EXPECT_EQ(registry_.Get("a:1")->state, v1::WORKER_UNAVAILABLE);
  // The stored summary points at blobs that hold the tensors.
  for (const v1::TensorInfo& t : run.summary.tensors()) {
    EXPECT_TRUE(store_->blobs().Has(t.sha256())) << t.name();
  }
  // Every step's fingerprint, kept apart from the summary.
  auto fingerprints = store_->GetFingerprints(run.run_id);
  ASSERT_TRUE(fingerprints.ok()) << fingerprints.status();
  EXPECT_EQ(fingerprints->size(), TinyResult().fingerprints.size());
}

TEST_F(SchedulerTest, DigestsCheckedOnArrivalAreNotComputedAgain) {
  // A remote result carries each tensor's SHA-256 as the client checked it;
  // the blob goes under that key without a second hash. (Given a wrong one
  // on purpose here, which reading the blob back then catches.)
  const std::string wrong(64, 'a');
  connector_.On("a:1", [&](const RunOptions&) -> absl::StatusOr<RunResult> {
    RunResult r = TinyResult();
    r.tensor_sha256["outputs"] = wrong;
    r.tensor_sha256["losses"] =
        Sha256Hex(r.losses.raw(), static_cast<size_t>(r.losses.nbytes()));
    return r;
  });
  StartScheduler();
  const RunRow run = WaitForRun(Submit("a:1"));
  ASSERT_EQ(run.state, v1::RUN_SUCCEEDED);
  int seen = 0;
  for (const v1::TensorInfo& t : run.summary.tensors()) {
    if (t.name() == "outputs") {
      ++seen;
      EXPECT_EQ(t.sha256(), wrong);
      EXPECT_TRUE(absl::IsDataLoss(store_->blobs().Get(t.sha256()).status()));
    } else {
      // Checked digest or none: the blob reads back.
      EXPECT_TRUE(store_->blobs().Get(t.sha256()).ok()) << t.name();
    }
  }
  EXPECT_EQ(seen, 1);
}

// What ran a device profile reaches the stored summary and, from it, the
// record the coordinator's reports are made of (a real cuda-det-emu run: the
// emulated deterministic GPU path, whose backend and math are known).
TEST_F(SchedulerTest, StoredSummaryAndRecordSayWhichDeviceRan) {
  absl::StatusOr<RunResult> emu =
      RunJob(TinySpec(), *Profile::Parse("cuda-det-emu"));
  ASSERT_TRUE(emu.ok()) << emu.status();
  AddWorker("e:1", "cuda-det-emu");
  connector_.On("e:1", [&](const RunOptions&) -> absl::StatusOr<RunResult> {
    return *emu;
  });
  StartScheduler();
  // Asked for cuda-det-emu: the result check accepts only the profile asked.
  const RunRow row = WaitForRun(Submit("e:1", "cuda-det-emu"));
  ASSERT_EQ(row.state, v1::RUN_SUCCEEDED);
  ASSERT_TRUE(row.summary.has_device());
  EXPECT_EQ(row.summary.device().backend(), "cuda-emu");
  EXPECT_EQ(row.summary.device().math_mode(), "ordered-fma");

  v1::RunInfo info;
  info.set_run_id(row.run_id);
  info.set_worker("e:1");
  *info.mutable_summary() = row.summary;
  std::vector<NamedArray> tensors = {{"outputs", emu->outputs}};
  absl::StatusOr<RunRecord> rec =
      RecordFromRun(info, "emu", std::move(tensors), {});
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->environment["device.backend"], "cuda-emu");
  EXPECT_EQ(rec->environment["device.math_mode"], "ordered-fma");
  EXPECT_EQ(rec->environment["device.gpu"], "none (host emulation)");
  // No GPU, driver or library versions: those entries are left out.
  EXPECT_EQ(rec->environment.count("device.driver"), 0u);
  EXPECT_EQ(rec->environment.count("device.cudnn"), 0u);
}

// A CPU run's summary has no device.
TEST_F(SchedulerTest, CpuRunSummaryHasNoDevice) {
  connector_.On("a:1", [](const RunOptions&) -> absl::StatusOr<RunResult> {
    return TinyResult();
  });
  StartScheduler();
  const RunRow row = WaitForRun(Submit("a:1"));
  ASSERT_EQ(row.state, v1::RUN_SUCCEEDED);
  EXPECT_FALSE(row.summary.has_device());
}

// The issue: a run that crashes its worker was retried on the next worker
// until none was left (one submission killed both workers). The fake here
// is the test-only crash: every worker the run reaches "dies" under it (the
// stream breaks with UNAVAILABLE). Checked before the fix: the run was sent
// to all three workers.
TEST_F(SchedulerTest, RunThatLosesTwoWorkersFailsAndIsNotSentToAThird) {
  AddWorker("c:1");
  for (const char* address : {"a:1", "b:1", "c:1"}) {
    connector_.On(address, [](const RunOptions&) -> absl::StatusOr<RunResult> {
      return absl::UnavailableError("Socket closed");
    });
  }
  StartScheduler(/*max_attempts=*/5);
  const std::string job = Submit("a:1");
  const RunRow run = WaitForRun(job);
  EXPECT_EQ(run.state, v1::RUN_FAILED);
  ASSERT_EQ(run.attempts.size(), 2u);
  EXPECT_NE(run.attempts[0].worker, run.attempts[1].worker);
  EXPECT_THAT(run.failure.message(), HasSubstr("lost 2 workers"));
  EXPECT_THAT(run.failure.message(), HasSubstr("not sent to another"));
  EXPECT_EQ(connector_.calls("a:1") + connector_.calls("b:1") +
                connector_.calls("c:1"),
            2);
  EXPECT_EQ(store_->GetJob(job)->state, v1::JOB_FAILED);
}

// A draining worker's refusal is UNAVAILABLE too, but no worker was lost
// under the run: it goes on, and only the two that broke count.
TEST_F(SchedulerTest, DrainingWorkerIsNotCountedAsLost) {
  AddWorker("c:1");
  connector_.On("a:1", [](const RunOptions&) -> absl::StatusOr<RunResult> {
    return WithErrorReason(absl::UnavailableError("draining"),
                           kReasonWorkerDraining);
  });
  for (const char* address : {"b:1", "c:1"}) {
    connector_.On(address, [](const RunOptions&) -> absl::StatusOr<RunResult> {
      return absl::UnavailableError("Socket closed");
    });
  }
  StartScheduler(/*max_attempts=*/5);
  const RunRow run = WaitForRun(Submit("a:1"));
  EXPECT_EQ(run.state, v1::RUN_FAILED);
  ASSERT_EQ(run.attempts.size(), 3u);
  EXPECT_EQ(run.attempts[0].worker, "a:1");
  EXPECT_THAT(run.failure.message(), HasSubstr("lost 2 workers"));
}

// A worker that returns something other than the job (the issue's
// impostor: another spec digest) fails each attempt with the reason and
// nothing is stored: the run ends FAILED, not succeeded. Stored as
// succeeded before the fix.
TEST_F(SchedulerTest, ResultUnlikeTheJobFailsTheAttemptAndIsNotStored) {
  connector_.On("a:1", [](const RunOptions&) -> absl::StatusOr<RunResult> {
    RunResult r = TinyResult();
    r.spec_digest = std::string(64, '0');
    return r;
  });
  StartScheduler(/*max_attempts=*/2);
  const std::string job = Submit("a:1");
  const RunRow run = WaitForRun(job);
  EXPECT_EQ(run.state, v1::RUN_FAILED);
  ASSERT_EQ(run.attempts.size(), 2u);
  for (const AttemptRow& a : run.attempts) {
    EXPECT_EQ(a.outcome, "failed");
    EXPECT_EQ(a.code, static_cast<int>(absl::StatusCode::kDataLoss));
    EXPECT_THAT(a.message, HasSubstr("does not match the job: the spec "
                                     "digest is 0000"));
  }
  EXPECT_EQ(run.summary.spec_digest(), "");  // nothing stored
  EXPECT_EQ(store_->GetJob(job)->state, v1::JOB_FAILED);
}

TEST_F(SchedulerTest, TransientFailuresGiveUpAfterMaxAttempts) {
  connector_.On("a:1", [](const RunOptions&) -> absl::StatusOr<RunResult> {
    return absl::InternalError("worker crashed");
  });
  StartScheduler(/*max_attempts=*/3);
  const std::string job = Submit("a:1");
  const RunRow run = WaitForRun(job);
  EXPECT_EQ(run.state, v1::RUN_FAILED);
  EXPECT_EQ(run.attempts.size(), 3u);
  EXPECT_THAT(run.failure.message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_THAT(run.failure.message(), HasSubstr("worker crashed"));
  EXPECT_EQ(store_->GetJob(job)->state, v1::JOB_FAILED);
}

TEST_F(SchedulerTest, DeterministicFailuresAreNotRetried) {
  for (const absl::Status& failure :
       {absl::InvalidArgumentError("init weights: expected 6 arrays"),
        absl::FailedPreconditionError("profile needs AVX-512"),
        absl::ResourceExhaustedError("spec.training.epochs is 9, above this "
                                     "worker's --max_epochs=1"),
        absl::DeadlineExceededError("Deadline Exceeded")}) {
    SCOPED_TRACE(failure.ToString());
    connector_.On("a:1",
                  [failure](const RunOptions&) -> absl::StatusOr<RunResult> {
                    return failure;
                  });
    if (scheduler_ == nullptr) StartScheduler();
    const RunRow run = WaitForRun(Submit("a:1"));
    EXPECT_EQ(run.state, v1::RUN_FAILED);
    ASSERT_EQ(run.attempts.size(), 1u);
    EXPECT_EQ(run.failure.code(), static_cast<int>(failure.code()));
    EXPECT_THAT(run.failure.message(), HasSubstr(failure.message()));
  }
}

TEST_F(SchedulerTest, BusyWorkerIsRetriedOutsideTheAttemptBudget) {
  // RESOURCE_EXHAUSTED with the worker-busy reason is waited out (a second
  // later) without spending --max_attempts; the reason, not the message,
  // tells it from a job over the worker's limits.
  std::atomic<int> calls{0};
  connector_.On("a:1", [&](const RunOptions&) -> absl::StatusOr<RunResult> {
    if (calls++ == 0) {
      return WithErrorReason(absl::ResourceExhaustedError("all slots taken"),
                             kReasonWorkerBusy);
    }
    return TinyResult();
  });
  StartScheduler(/*max_attempts=*/1);
  const RunRow run = WaitForRun(Submit("a:1"));
  EXPECT_EQ(run.state, v1::RUN_SUCCEEDED);
  ASSERT_EQ(run.attempts.size(), 2u);
  EXPECT_EQ(run.attempts[0].code,
            static_cast<int>(absl::StatusCode::kResourceExhausted));
}

TEST_F(SchedulerTest, ResultAfterTheStoreCancelledIsNotStored) {
  absl::Notification started, release;
  connector_.On("a:1", [&](const RunOptions&) -> absl::StatusOr<RunResult> {
    started.Notify();
    release.WaitForNotification();  // ignores the cancel flag on purpose
    return TinyResult();
  });
  StartScheduler();
  const std::string job = Submit("a:1");
  started.WaitForNotification();
  // The store has the cancel; the scheduler has not heard of it yet.
  ASSERT_TRUE(store_->CancelJob(job, 2000).ok());
  release.Notify();
  ASSERT_TRUE(
      Eventually([&] { return scheduler_->RunningByWorker()["a:1"] == 0; }));
  const RunRow run = store_->GetRuns(job)->front();
  EXPECT_EQ(run.state, v1::RUN_CANCELLED);
  EXPECT_EQ(run.summary.tensors_size(), 0);
  EXPECT_EQ(store_->GetJob(job)->state, v1::JOB_CANCELLED);
}

TEST_F(SchedulerTest, CancelStopsTheAttemptInFlight) {
  std::atomic<bool> saw_cancel{false};
  connector_.On("a:1", [&](const RunOptions& o) -> absl::StatusOr<RunResult> {
    while (!o.cancel->load()) absl::SleepFor(absl::Milliseconds(1));
    saw_cancel = true;
    return absl::CancelledError("run cancelled by the client");
  });
  StartScheduler();
  const std::string job = Submit("a:1");
  ASSERT_TRUE(Eventually([&] { return connector_.calls("a:1") == 1; }));
  ASSERT_TRUE(store_->CancelJob(job, 2000).ok());
  scheduler_->JobCancelled(job);
  ASSERT_TRUE(Eventually([&] { return saw_cancel.load(); }));
  ASSERT_TRUE(
      Eventually([&] { return scheduler_->RunningByWorker()["a:1"] == 0; }));
  const RunRow run = store_->GetRuns(job)->front();
  EXPECT_EQ(run.state, v1::RUN_CANCELLED);
  EXPECT_EQ(run.attempts.size(), 1u);
  EXPECT_EQ(connector_.calls("a:1"), 1);  // not retried
}

TEST_F(SchedulerTest, NoEligibleWorkerFailsAfterThePlacementTimeout) {
  registry_.MarkUnreachable("a:1");
  registry_.MarkUnreachable("b:1");
  StartScheduler();
  const RunRow run = WaitForRun(Submit("a:1"));
  EXPECT_EQ(run.state, v1::RUN_FAILED);
  EXPECT_THAT(run.failure.message(), HasSubstr("no eligible worker"));
  ASSERT_EQ(run.attempts.size(), 1u);
  EXPECT_EQ(run.attempts[0].worker, "(none)");
  EXPECT_EQ(connector_.calls("a:1") + connector_.calls("b:1"), 0);
}

TEST_F(SchedulerTest, AtMostMaxConcurrentRunsPerWorker) {
  std::atomic<int> running{0}, most{0};
  connector_.On("a:1", [&](const RunOptions&) -> absl::StatusOr<RunResult> {
    const int now = ++running;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
    absl::SleepFor(absl::Milliseconds(20));
    --running;
    return TinyResult();
  });
  StartScheduler();
  std::vector<std::string> jobs;
  for (int i = 0; i < 4; ++i) jobs.push_back(Submit("a:1"));
  for (const std::string& j : jobs) {
    EXPECT_EQ(WaitForRun(j).state, v1::RUN_SUCCEEDED);
  }
  EXPECT_EQ(most.load(), 1);  // a:1 takes one run at a time
}

}  // namespace
}  // namespace driftscope::coordinator
