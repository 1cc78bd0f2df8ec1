// Self-registration against the real coordinator: real driftscope-worker
// and driftscope-coordinator processes on 127.0.0.1. A worker started with
// --coordinator shows up in ListWorkers and runs the jobs placed on it; a
// coordinator restarted without its registrations gets the worker back by
// itself; SIGTERM turns the worker DRAINING.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/coordinator/coordinator_test_util.h"
#include "tests/server/worker_process.h"

namespace driftscope {
namespace {

using ::driftscope::testing::CoordinatorProcess;
using ::driftscope::testing::CoordinatorStub;
using ::driftscope::testing::Ctx;
using ::driftscope::testing::Eventually;
using ::driftscope::testing::WaitForJob;
using ::driftscope::testing::WorkerProcess;
using ::testing::Contains;
using ::testing::Pair;

std::optional<v1::WorkerStatus> FindWorker(v1::Coordinator::Stub& stub,
                                           const std::string& name) {
  v1::ListWorkersResponse r;
  auto ctx = Ctx();
  if (!stub.ListWorkers(ctx.get(), v1::ListWorkersRequest(), &r).ok()) {
    return std::nullopt;
  }
  for (const v1::WorkerStatus& w : r.workers()) {
    if (w.worker().name() == name) return w;
  }
  return std::nullopt;
}

bool HasState(v1::Coordinator::Stub& stub, const std::string& name,
              v1::WorkerState state) {
  std::optional<v1::WorkerStatus> w = FindWorker(stub, name);
  return w.has_value() && w->state() == state;
}

std::string StoreDir(const std::string& test) {
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/", test, "-", getpid());
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return dir;
}

TEST(WorkerRegistrationE2eTest, RegisteredWorkerRunsTheJobsPlacedOnIt) {
  auto coordinator = CoordinatorProcess::Start(
      {"--insecure", "--worker_insecure",
       "--store_dir=" + StoreDir("registration-e2e")});
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  auto worker = WorkerProcess::Start(
      {"--insecure", "--coordinator=" + (*coordinator)->address(),
       "--coordinator_insecure", "--name=cpu-sse2",
       "--default_profile=fp32-sse2", "--labels=rack=r1"});
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto stub = CoordinatorStub((*coordinator)->address());
  ASSERT_TRUE(Eventually(
      [&] { return HasState(*stub, "cpu-sse2", v1::WORKER_AVAILABLE); }));
  const v1::WorkerStatus w = *FindWorker(*stub, "cpu-sse2");
  EXPECT_EQ(w.worker().address(), (*worker)->address());
  EXPECT_THAT(w.worker().labels(), Contains(Pair("rack", "r1")));

  v1::SubmitJobRequest req;
  req.set_client_request_id("registration-e2e");
  *req.mutable_spec() = JobSpecToProto(testing::TinySpec());
  req.mutable_placement()->add_workers("cpu-sse2");
  v1::Job job;
  auto ctx = Ctx();
  ASSERT_TRUE(stub->SubmitJob(ctx.get(), req, &job).ok());
  job = WaitForJob(*stub, job.job_id());
  EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED) << job.DebugString();
  ASSERT_EQ(job.runs_size(), 1);
  // The worker's default profile ran, on that worker.
  EXPECT_EQ(job.runs(0).worker(), "cpu-sse2");
  EXPECT_THAT(job.runs(0).summary().profile(), ::testing::HasSubstr("x86-64"));
}

TEST(WorkerRegistrationE2eTest, WorkerComesBackAfterACoordinatorRestart) {
  const std::string store = StoreDir("registration-restart");
  auto first = CoordinatorProcess::Start(
      {"--insecure", "--worker_insecure", "--store_dir=" + store});
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string address = (*first)->address();
  auto worker = WorkerProcess::Start({"--insecure", "--coordinator=" + address,
                                      "--coordinator_insecure", "--name=w"});
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto stub = CoordinatorStub(address);
  ASSERT_TRUE(
      Eventually([&] { return HasState(*stub, "w", v1::WORKER_AVAILABLE); }));

  // Registrations are not stored: the new coordinator answers the worker's
  // next heartbeat NOT_FOUND, and the worker registers again.
  (*first)->Kill9();
  auto second =
      CoordinatorProcess::Start({"--listen=" + address, "--insecure",
                                 "--worker_insecure", "--store_dir=" + store});
  ASSERT_TRUE(second.ok()) << second.status();
  auto stub2 = CoordinatorStub(address);
  EXPECT_TRUE(
      Eventually([&] { return HasState(*stub2, "w", v1::WORKER_AVAILABLE); }));
}

TEST(WorkerRegistrationE2eTest, SigtermMakesTheWorkerDraining) {
  auto coordinator = CoordinatorProcess::Start(
      {"--insecure", "--worker_insecure",
       "--store_dir=" + StoreDir("registration-drain")});
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  auto worker = WorkerProcess::Start(
      {"--insecure", "--coordinator=" + (*coordinator)->address(),
       "--coordinator_insecure", "--name=w", "--grace_period=30s"});
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto stub = CoordinatorStub((*coordinator)->address());
  ASSERT_TRUE(
      Eventually([&] { return HasState(*stub, "w", v1::WORKER_AVAILABLE); }));

  ASSERT_EQ(kill((*worker)->pid(), SIGTERM), 0);
  // Said before it exits; the lease (10 s) outlives the worker.
  EXPECT_TRUE(
      Eventually([&] { return HasState(*stub, "w", v1::WORKER_DRAINING); }));
  EXPECT_EQ((*worker)->WaitFor(std::chrono::seconds(20)), 0);
}

}  // namespace
}  // namespace driftscope
