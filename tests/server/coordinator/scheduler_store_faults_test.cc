// Store faults cannot strand runs: when the store refuses the write of an
// attempt's end (or of a job's end), the scheduler's reconciler writes it
// once the store takes writes again, and re-queues a run the store holds
// RUNNING that nothing runs. Once through a store that fails on purpose,
// once through a real SqliteStore on a tmpfs that fills up.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/job_convert.h"
#include "server/coordinator/job_plan.h"
#include "server/coordinator/scheduler.h"
#include "server/coordinator/sqlite_store.h"
#include "tests/server/coordinator/coordinator_test_util.h"
#include "tests/server/coordinator/store_test_util.h"

namespace driftscope::coordinator {
namespace {

using ::driftscope::testing::Eventually;
using ::driftscope::testing::StoreDir;
using ::driftscope::testing::TinySpec;
using ::testing::HasSubstr;

const RunResult& TinyResult() {
  static const RunResult* r = [] {
    auto result = RunJob(TinySpec(), *Profile::Parse("fp32"));
    EXPECT_TRUE(result.ok()) << result.status();
    return new RunResult(*std::move(result));
  }();
  return *r;
}

// Every Run answers with TinyResult after `before_answer` (when set).
class ResultConnector : public WorkerConnector {
 public:
  std::function<void()> before_answer;
  std::atomic<int> calls{0};

  absl::StatusOr<WorkerDescription> Describe(const WorkerTarget&) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<RunResult> Run(const WorkerTarget&, const JobSpec&,
                                const std::string&, const RunOptions&,
                                const RemoteRunOptions&) override {
    ++calls;
    if (before_answer) before_answer();
    return TinyResult();
  }
};

// Which writes a FaultyStore refuses, as a full disk would.
struct Faults {
  std::atomic<bool> blobs{false};         // Put, PutVerified
  std::atomic<bool> attempt_ends{false};  // FailAttempt, CompleteRun
  std::atomic<bool> job_ends{false};      // FinishJob
  std::atomic<int> refused{0};
};

absl::Status Full(Faults* f) {
  ++f->refused;
  return absl::ResourceExhaustedError("database or disk is full");
}

class FaultyBlobs : public BlobStore {
 public:
  FaultyBlobs(BlobStore* real, Faults* faults) : real_(real), f_(faults) {}
  absl::StatusOr<std::string> Put(absl::string_view data) override {
    if (f_->blobs) return Full(f_);
    return real_->Put(data);
  }
  absl::StatusOr<std::string> PutVerified(absl::string_view data,
                                          absl::string_view sha256) override {
    if (f_->blobs) return Full(f_);
    return real_->PutVerified(data, sha256);
  }
  absl::StatusOr<std::string> Get(absl::string_view sha256) override {
    return real_->Get(sha256);
  }
  absl::Status GetInto(absl::string_view sha256,
                       absl::Span<uint8_t> out) override {
    return real_->GetInto(sha256, out);
  }
  bool Has(absl::string_view sha256) override { return real_->Has(sha256); }

 private:
  BlobStore* const real_;
  Faults* const f_;
};

// A SqliteStore whose writes fail while the test says so.
class FaultyStore : public Store {
 public:
  FaultyStore(Store* real, Faults* faults)
      : real_(real), f_(faults), blobs_(&real->blobs(), faults) {}

  absl::StatusOr<CreateJobResult> CreateJob(
      const JobRow& job, const std::vector<RunRow>& runs) override {
    return real_->CreateJob(job, runs);
  }
  absl::StatusOr<std::optional<JobRow>> FindJobByRequestId(
      absl::string_view id) override {
    return real_->FindJobByRequestId(id);
  }
  absl::StatusOr<JobRow> GetJob(absl::string_view id) override {
    return real_->GetJob(id);
  }
  absl::StatusOr<std::vector<RunRow>> GetRuns(absl::string_view id) override {
    return real_->GetRuns(id);
  }
  absl::StatusOr<RunRow> GetRun(absl::string_view id) override {
    return real_->GetRun(id);
  }
  absl::StatusOr<std::vector<v1::Fingerprint>> GetFingerprints(
      absl::string_view id) override {
    return real_->GetFingerprints(id);
  }
  absl::StatusOr<ListJobsPage> ListJobs(const ListJobsQuery& q) override {
    return real_->ListJobs(q);
  }
  absl::Status StartAttempt(absl::string_view run_id, int attempt,
                            absl::string_view worker, int64_t now) override {
    return real_->StartAttempt(run_id, attempt, worker, now);
  }
  absl::Status FailAttempt(absl::string_view run_id, int attempt, int32_t code,
                           absl::string_view message, bool retry,
                           int64_t now) override {
    if (f_->attempt_ends) return Full(f_);
    return real_->FailAttempt(run_id, attempt, code, message, retry, now);
  }
  absl::Status CompleteRun(absl::string_view run_id, int attempt,
                           const v1::RunSummary& summary,
                           int64_t now) override {
    if (f_->attempt_ends) return Full(f_);
    return real_->CompleteRun(run_id, attempt, summary, now);
  }
  absl::Status CancelJob(absl::string_view id, int64_t now) override {
    return real_->CancelJob(id, now);
  }
  absl::Status FinishJob(absl::string_view id, v1::JobState state,
                         int64_t now) override {
    if (f_->job_ends) return Full(f_);
    return real_->FinishJob(id, state, now);
  }
  absl::StatusOr<std::vector<std::string>> RecoverUnfinished(
      int64_t now) override {
    return real_->RecoverUnfinished(now);
  }
  BlobStore& blobs() override { return blobs_; }

 private:
  Store* const real_;
  Faults* const f_;
  FaultyBlobs blobs_;
};

class SchedulerStoreFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::WorkerInfo w;
    w.set_name("a:1");
    w.set_address("a:1");
    w.set_default_profile("fp32");
    w.add_presets("fp32");
    w.set_max_concurrent_runs(1);
    registry_.UpdateStatic(w, /*available=*/true);
  }

  void OpenStore(const std::string& dir) {
    auto store = SqliteStore::Open(SqliteStoreOptions{dir});
    ASSERT_TRUE(store.ok()) << store.status();
    sqlite_ = *std::move(store);
    faulty_ = std::make_unique<FaultyStore>(sqlite_.get(), &faults_);
  }

  void StartScheduler() {
    SchedulerOptions o;
    o.reconcile_interval = absl::Milliseconds(50);
    o.log = [this](const std::string& line) {
      absl::MutexLock lock(&log_mu_);
      log_.push_back(line);
    };
    scheduler_ = std::make_unique<Scheduler>(faulty_.get(), &registry_,
                                             &connector_, &events_, o);
    ASSERT_TRUE(scheduler_->Start().ok());
  }

  // A job of one run of TinySpec on a:1, stored but not yet scheduled.
  std::string CreateJob() {
    v1::SubmitJobRequest r;
    *r.mutable_spec() = JobSpecToProto(TinySpec());
    r.mutable_placement()->add_workers("a:1");
    const std::string id = "job-" + std::to_string(next_id_++);
    auto plan = PlanJob(r, registry_.All(), SubmitLimits(), id, 1000);
    EXPECT_TRUE(plan.ok()) << plan.status();
    EXPECT_TRUE(sqlite_->CreateJob(plan->job, plan->runs).ok());
    return id;
  }

  v1::JobState JobState(const std::string& id) {
    auto job = sqlite_->GetJob(id);
    return job.ok() ? job->state : v1::JOB_STATE_UNSPECIFIED;
  }

  bool Ends(const std::string& id, v1::JobState state) {
    return Eventually([&] { return JobState(id) == state; },
                      std::chrono::seconds(30));
  }

  std::vector<std::string> Logged() {
    absl::MutexLock lock(&log_mu_);
    return log_;
  }

  Faults faults_;
  std::unique_ptr<SqliteStore> sqlite_;
  std::unique_ptr<FaultyStore> faulty_;
  WorkerRegistry registry_{WorkerRegistryOptions{}};
  ResultConnector connector_;
  JobEventHub events_;
  absl::Mutex log_mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(log_mu_);
  std::unique_ptr<Scheduler> scheduler_;  // stopped before the rest
  int next_id_ = 1;
};

TEST_F(SchedulerStoreFaultsTest, AttemptEndTheStoreRefusedIsRecordedLater) {
  StoreDir dir;
  OpenStore(dir.path());
  StartScheduler();
  // The result cannot be stored, and neither can the failed attempt.
  faults_.blobs = true;
  faults_.attempt_ends = true;
  const std::string id = CreateJob();
  ASSERT_TRUE(scheduler_->AddJob(id).ok());
  ASSERT_TRUE(Eventually([&] { return faults_.refused >= 2; }));
  // The reconciler tries every 50 ms; the store still refuses.
  absl::SleepFor(absl::Milliseconds(400));
  EXPECT_EQ(JobState(id), v1::JOB_RUNNING);
  EXPECT_EQ(connector_.calls, 1);

  faults_.blobs = false;
  faults_.attempt_ends = false;
  ASSERT_TRUE(Ends(id, v1::JOB_SUCCEEDED)) << v1::JobState_Name(JobState(id));
  auto runs = sqlite_->GetRuns(id);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->front().attempts.size(), 2u);
  EXPECT_EQ(runs->front().attempts[0].outcome, "failed");
  EXPECT_THAT(runs->front().attempts[0].message,
              HasSubstr("storing the result failed"));
  EXPECT_EQ(runs->front().attempts[1].outcome, "succeeded");
  EXPECT_EQ(connector_.calls, 2);
  // The operator's log says what the store refused.
  const std::vector<std::string> log = Logged();
  ASSERT_FALSE(log.empty());
  EXPECT_THAT(log.front(), HasSubstr("database or disk is full"));
}

TEST_F(SchedulerStoreFaultsTest, JobEndTheStoreRefusedIsRecordedLater) {
  StoreDir dir;
  OpenStore(dir.path());
  StartScheduler();
  faults_.job_ends = true;
  const std::string id = CreateJob();
  ASSERT_TRUE(scheduler_->AddJob(id).ok());
  ASSERT_TRUE(Eventually([&] {
    auto runs = sqlite_->GetRuns(id);
    return runs.ok() && runs->front().state == v1::RUN_SUCCEEDED &&
           faults_.refused >= 2;
  }));
  EXPECT_EQ(JobState(id), v1::JOB_RUNNING);
  faults_.job_ends = false;
  EXPECT_TRUE(Ends(id, v1::JOB_SUCCEEDED)) << v1::JobState_Name(JobState(id));
}

TEST_F(SchedulerStoreFaultsTest, RunningRunThatNothingRunsIsQueuedAgain) {
  StoreDir dir;
  OpenStore(dir.path());
  StartScheduler();
  const std::string id = CreateJob();
  auto runs = sqlite_->GetRuns(id);
  ASSERT_TRUE(runs.ok());
  // An attempt the store holds in flight after the start (so the restart
  // recovery does not see it), as a write that failed after it would leave
  // it, with no thread of this scheduler behind it.
  ASSERT_TRUE(sqlite_->StartAttempt(runs->front().run_id, 1, "a:1", 1000).ok());
  ASSERT_TRUE(scheduler_->AddJob(id).ok());
  ASSERT_TRUE(Ends(id, v1::JOB_SUCCEEDED)) << v1::JobState_Name(JobState(id));
  runs = sqlite_->GetRuns(id);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->front().attempts.size(), 2u);
  EXPECT_THAT(runs->front().attempts[0].message,
              HasSubstr("not running anywhere"));
  EXPECT_EQ(connector_.calls, 1);
}

// A tmpfs of its own, in a mount namespace of this thread (and of the
// threads it starts), removed at the end.
class SmallTmpfs {
 public:
  // "" when it is mounted; otherwise why not.
  std::string Mount(const std::string& size) {
    if (geteuid() != 0) return "needs root (mounts a tmpfs)";
    if (unshare(CLONE_NEWNS) != 0) {
      return absl::StrCat("unshare(CLONE_NEWNS): ", strerror(errno));
    }
    // Mounts made here stay out of the other namespaces.
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      return absl::StrCat("making / private: ", strerror(errno));
    }
    std::string templ = ::testing::TempDir() + "/tmpfs_XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) return "mkdtemp failed";
    path_ = templ;
    const std::string options = "size=" + size;
    if (mount("tmpfs", path_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      return absl::StrCat("mount tmpfs: ", strerror(errno));
    }
    mounted_ = true;
    return "";
  }
  ~SmallTmpfs() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
    if (!path_.empty()) rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }

  // Writes a file until the file system is full; the bytes written.
  int64_t Fill(const std::string& name) {
    const std::string file = path_ + "/" + name;
    const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    const std::string block(64 * 1024, 'x');
    int64_t total = 0;
    for (size_t n = block.size(); n > 0; n /= 2) {
      for (;;) {
        const ssize_t w = write(fd, block.data(), n);
        if (w <= 0) break;
        total += w;
      }
    }
    close(fd);
    return total;
  }

 private:
  std::string path_;
  bool mounted_ = false;
};

TEST_F(SchedulerStoreFaultsTest, JobsFinishOnceTheFullDiskHasSpaceAgain) {
  SmallTmpfs disk;
  if (std::string why = disk.Mount("8m"); !why.empty()) {
    GTEST_SKIP() << "no tmpfs for the disk-full test: " << why;
  }
  const std::string store_dir = disk.path() + "/store";
  OpenStore(store_dir);
  // Each run's answer waits until the test has filled the disk.
  absl::Notification filled;
  connector_.before_answer = [&] { filled.WaitForNotification(); };
  StartScheduler();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(CreateJob());
  for (const std::string& id : ids) ASSERT_TRUE(scheduler_->AddJob(id).ok());
  ASSERT_TRUE(Eventually([&] { return connector_.calls >= 1; }));
  ASSERT_GT(disk.Fill("filler"), 0);
  filled.Notify();
  // The result and the failed attempt both find the disk full; the
  // reconciler keeps trying.
  ASSERT_TRUE(Eventually([&] { return !Logged().empty(); }))
      << "the store never refused a write on the full disk";
  absl::SleepFor(absl::Milliseconds(500));
  for (const std::string& id : ids) {
    EXPECT_NE(JobState(id), v1::JOB_SUCCEEDED) << id;
  }

  ASSERT_EQ(unlink((disk.path() + "/filler").c_str()), 0);
  for (const std::string& id : ids) {
    EXPECT_TRUE(Ends(id, v1::JOB_SUCCEEDED))
        << id << ": " << v1::JobState_Name(JobState(id));
  }
  scheduler_.reset();
  faulty_.reset();
  sqlite_.reset();
}

}  // namespace
}  // namespace driftscope::coordinator
