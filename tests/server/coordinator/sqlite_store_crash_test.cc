// Crash safety of SqliteStore: a child process writes jobs and results,
// acknowledging each on a pipe, and is killed with SIGKILL mid-stream. The
// reopened store must hold everything acknowledged, intact.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/core/sha256.h"
#include "gtest/gtest.h"
#include "server/coordinator/sqlite_store.h"
#include "tests/server/coordinator/store_test_util.h"

extern char** environ;

namespace driftscope::coordinator {
namespace {

using ::driftscope::testing::MakeRuns;
using ::driftscope::testing::SeededTensor;
using ::driftscope::testing::StoreDir;

constexpr char kDirVariable[] = "DRIFTSCOPE_CRASH_STORE_DIR";
constexpr int kAckFd = 3;
constexpr int kAcksBeforeKill = 40;

std::string JobId(int i) { return absl::StrCat("job-", i); }
// What run i produced: distinct, and large enough to span many pages.
std::string ResultBytes(int i) { return SeededTensor(8192, 1000 + i).data(); }

// Job i: even ones run to the end, odd ones stop with their attempt in
// flight (what a restart must requeue).
absl::Status WriteJob(Store& store, int i) {
  const std::string id = JobId(i);
  JobRow job = testing::MakeJob(id, "req-" + id, 1000 + i);
  job.init_weights = {SeededTensor(1000, i)};
  absl::StatusOr<CreateJobResult> created =
      store.CreateJob(job, MakeRuns(id, 1));
  if (!created.ok()) return created.status();
  const std::string run_id = id + "-r0";
  if (absl::Status s = store.StartAttempt(run_id, 1, "w1", 2000 + i); !s.ok()) {
    return s;
  }
  if (i % 2 == 1) return absl::OkStatus();
  absl::StatusOr<std::string> key = store.blobs().Put(ResultBytes(i));
  if (!key.ok()) return key.status();
  v1::RunSummary summary;
  summary.set_steps(i);
  v1::TensorInfo* t = summary.add_tensors();
  t->set_name("outputs");
  t->set_sha256(*key);
  if (absl::Status s = store.CompleteRun(run_id, 1, summary, 3000 + i);
      !s.ok()) {
    return s;
  }
  return store.FinishJob(id, v1::JOB_SUCCEEDED, 3000 + i);
}

// The child: run only by KilledMidWriteKeepsAcknowledgedData, which sets
// the directory and reads the acknowledgements ("<i>\n") from fd 3.
TEST(SqliteStoreCrashTest, DISABLED_ChildWritesUntilKilled) {
  const char* dir = std::getenv(kDirVariable);
  if (dir == nullptr)
    GTEST_SKIP() << "run by KilledMidWriteKeepsAcknowledgedData";
  SqliteStoreOptions options;
  options.directory = dir;
  absl::StatusOr<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 100000; ++i) {
    absl::Status s = WriteJob(**store, i);
    ASSERT_TRUE(s.ok()) << s;
    const std::string ack = absl::StrCat(i, "\n");
    ASSERT_EQ(write(kAckFd, ack.data(), ack.size()),
              static_cast<ssize_t>(ack.size()));
  }
}

TEST(SqliteStoreCrashTest, KilledMidWriteKeepsAcknowledgedData) {
  StoreDir dir;
  ASSERT_FALSE(dir.path().empty());
  int acks[2];
  ASSERT_EQ(pipe2(acks, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, acks[1], kAckFd);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  std::vector<std::string> env = {absl::StrCat(kDirVariable, "=", dir.path())};
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = {
      "/proc/self/exe",
      "--gtest_filter=SqliteStoreCrashTest.DISABLED_ChildWritesUntilKilled",
      "--gtest_also_run_disabled_tests"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc =
      posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(acks[1]);
  ASSERT_EQ(rc, 0) << "cannot start the child";

  // Read acknowledgements until enough have arrived, then kill -9 while
  // the child is in the middle of further writes.
  std::string received;
  int acked = -1;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (acked + 1 < kAcksBeforeKill) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{acks[0], POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      break;
    }
    char buf[256];
    const ssize_t n = read(acks[0], buf, sizeof(buf));
    if (n <= 0) break;  // the child died on its own
    received.append(buf, static_cast<size_t>(n));
    for (absl::string_view line : absl::StrSplit(received, '\n')) {
      int i;
      if (absl::SimpleAtoi(line, &i) && i > acked) acked = i;
    }
  }
  kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  close(acks[0]);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child ended before it was killed (status " << status << ")";
  ASSERT_GE(acked + 1, kAcksBeforeKill) << "too few acknowledgements";

  SqliteStoreOptions options;
  options.directory = dir.path();
  absl::StatusOr<std::unique_ptr<SqliteStore>> opened =
      SqliteStore::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  SqliteStore& store = **opened;
  EXPECT_TRUE(store.CheckIntegrity().ok()) << store.CheckIntegrity();

  std::set<std::string> in_flight;
  for (int i = 0; i <= acked; ++i) {
    SCOPED_TRACE(JobId(i));
    absl::StatusOr<JobRow> job = store.GetJob(JobId(i));
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_EQ(job->init_weights.size(), 1u);
    EXPECT_EQ(job->init_weights[0].data(), SeededTensor(1000, i).data());
    absl::StatusOr<RunRow> run = store.GetRun(JobId(i) + "-r0");
    ASSERT_TRUE(run.ok()) << run.status();
    if (i % 2 == 1) {
      EXPECT_EQ(run->state, v1::RUN_RUNNING);
      in_flight.insert(JobId(i));
      continue;
    }
    EXPECT_EQ(job->state, v1::JOB_SUCCEEDED);
    ASSERT_EQ(run->state, v1::RUN_SUCCEEDED);
    ASSERT_EQ(run->summary.tensors_size(), 1);
    const std::string expected = ResultBytes(i);
    EXPECT_EQ(run->summary.tensors(0).sha256(),
              Sha256Hex(expected.data(), expected.size()));
    absl::StatusOr<std::string> data =
        store.blobs().Get(run->summary.tensors(0).sha256());
    ASSERT_TRUE(data.ok()) << data.status();
    EXPECT_EQ(*data, expected);
  }

  // The restart requeues every acknowledged in-flight run; the one job the
  // kill interrupted (not acknowledged) may be there too, and nothing else.
  absl::StatusOr<std::vector<std::string>> unfinished =
      store.RecoverUnfinished(9999);
  ASSERT_TRUE(unfinished.ok()) << unfinished.status();
  std::set<std::string> recovered(unfinished->begin(), unfinished->end());
  recovered.erase(JobId(acked + 1));
  EXPECT_EQ(recovered, in_flight);
  absl::StatusOr<RunRow> requeued = store.GetRun(JobId(1) + "-r0");
  ASSERT_TRUE(requeued.ok()) << requeued.status();
  EXPECT_EQ(requeued->state, v1::RUN_QUEUED);
  EXPECT_EQ(requeued->attempts.at(0).outcome, "interrupted");
}

}  // namespace
}  // namespace driftscope::coordinator
