// A real driftscope-coordinator and real workers on 127.0.0.1 when things
// go wrong: a worker killed with SIGKILL during a run, the coordinator
// killed after acknowledging a job, a cancel while runs are in flight, a
// registered worker that stops heartbeating. Every test ends with the job
// terminal: nothing hangs.
#include <signal.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/core/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/tensor_stream.h"
#include "tests/server/coordinator/coordinator_test_util.h"
#include "tests/server/coordinator/store_test_util.h"
#include "tests/server/worker_process.h"

namespace driftscope {
namespace {

using ::driftscope::testing::CoordinatorProcess;
using ::driftscope::testing::CoordinatorStub;
using ::driftscope::testing::Ctx;
using ::driftscope::testing::Eventually;
using ::driftscope::testing::LongSpec;
using ::driftscope::testing::SecondsSpec;
using ::driftscope::testing::StoreDir;
using ::driftscope::testing::TinySpec;
using ::driftscope::testing::WaitForJob;
using ::driftscope::testing::WorkerProcess;
using ::testing::HasSubstr;

std::unique_ptr<WorkerProcess> StartWorker(std::vector<std::string> flags) {
  flags.insert(flags.begin(), "--insecure");
  auto w = WorkerProcess::Start(std::move(flags));
  EXPECT_TRUE(w.ok()) << w.status();
  return w.ok() ? *std::move(w) : nullptr;
}

std::unique_ptr<CoordinatorProcess> StartCoordinator(
    const std::string& store_dir, const std::vector<std::string>& workers,
    std::vector<std::string> flags = {}) {
  flags.push_back("--insecure");
  flags.push_back("--worker_insecure");
  flags.push_back("--store_dir=" + store_dir);
  std::string list;
  for (const std::string& w : workers) {
    absl::StrAppend(&list, list.empty() ? "" : ",", w);
  }
  if (!list.empty()) flags.push_back("--workers=" + list);
  auto c = CoordinatorProcess::Start(std::move(flags));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

v1::SubmitJobRequest Submission(const JobSpec& spec,
                                std::vector<std::string> workers,
                                int repeats = 1) {
  v1::SubmitJobRequest r;
  *r.mutable_spec() = JobSpecToProto(spec);
  for (const std::string& w : workers) r.mutable_placement()->add_workers(w);
  r.mutable_placement()->set_repeats(repeats);
  return r;
}

v1::Job Submit(v1::Coordinator::Stub& stub, const v1::SubmitJobRequest& r) {
  v1::Job job;
  const grpc::Status s = stub.SubmitJob(Ctx().get(), r, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return job;
}

v1::Job Get(v1::Coordinator::Stub& stub, const std::string& job_id) {
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  v1::Job job;
  const grpc::Status s = stub.GetJob(Ctx().get(), req, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return job;
}

// Until run `i` of the job reports training progress.
bool RunIsTraining(v1::Coordinator::Stub& stub, const std::string& job_id,
                   int i) {
  return Eventually([&] {
    const v1::Job job = Get(stub, job_id);
    return job.runs_size() > i && job.runs(i).state() == v1::RUN_RUNNING &&
           job.runs(i).step() > 0;
  });
}

TEST(CoordinatorFaultsTest, WorkerKilledDuringRunIsRetriedOnAnother) {
  auto a = StartWorker({});
  auto b = StartWorker({});
  ASSERT_TRUE(a && b);
  StoreDir dir;
  auto c = StartCoordinator(dir.path(), {a->address(), b->address()});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  const v1::Job job = Submit(*stub, Submission(SecondsSpec(2), {a->address()}));
  ASSERT_TRUE(RunIsTraining(*stub, job.job_id(), 0));
  kill(a->pid(), SIGKILL);

  const v1::Job done = WaitForJob(*stub, job.job_id());
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const v1::RunInfo& run = done.runs(0);
  EXPECT_EQ(run.worker(), a->address());  // what the placement asked for
  ASSERT_EQ(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).worker(), a->address());
  EXPECT_EQ(run.attempts(0).outcome(), "failed");
  EXPECT_EQ(run.attempts(0).code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(run.attempts(1).worker(), b->address());
  EXPECT_EQ(run.attempts(1).outcome(), "succeeded");
}

TEST(CoordinatorFaultsTest, OnlyWorkerKilledRunFailsWithTheReason) {
  auto a = StartWorker({});
  ASSERT_NE(a, nullptr);
  StoreDir dir;
  auto c =
      StartCoordinator(dir.path(), {a->address()}, {"--placement_timeout=1s"});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  const v1::Job job = Submit(*stub, Submission(LongSpec(), {a->address()}));
  ASSERT_TRUE(RunIsTraining(*stub, job.job_id(), 0));
  kill(a->pid(), SIGKILL);

  const v1::Job done =
      WaitForJob(*stub, job.job_id(), std::chrono::seconds(30));
  ASSERT_EQ(done.state(), v1::JOB_FAILED) << done.ShortDebugString();
  const v1::RunInfo& run = done.runs(0);
  EXPECT_EQ(run.state(), v1::RUN_FAILED);
  EXPECT_THAT(run.failure().message(), HasSubstr("no eligible worker"));
  ASSERT_GE(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(run.attempts(0).worker(), a->address());
}

TEST(CoordinatorFaultsTest, CoordinatorKilledAfterAckRestartsAndFinishes) {
  auto a = StartWorker({"--max_concurrent_runs=1"});
  ASSERT_NE(a, nullptr);
  StoreDir dir;
  auto c = StartCoordinator(dir.path(), {a->address()});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  // Two runs, one at a time (the worker has one slot): the first finishes
  // before the kill, the second is in flight when it comes.
  const v1::Job job =
      Submit(*stub, Submission(SecondsSpec(2), {a->address()}, 2));
  ASSERT_TRUE(RunIsTraining(*stub, job.job_id(), 1));
  const v1::Job before = Get(*stub, job.job_id());
  ASSERT_EQ(before.runs(0).state(), v1::RUN_SUCCEEDED);
  const v1::RunSummary finished = before.runs(0).summary();
  c->Kill9();

  auto c2 = StartCoordinator(dir.path(), {a->address()});
  ASSERT_NE(c2, nullptr);
  auto stub2 = CoordinatorStub(c2->address());
  const v1::Job done = WaitForJob(*stub2, job.job_id());
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  // The completed result is intact, bit for bit.
  EXPECT_EQ(done.runs(0).summary().SerializeAsString(),
            finished.SerializeAsString());
  ASSERT_EQ(done.runs(0).attempts_size(), 1);
  // The interrupted attempt is on record; a later one finished the run.
  const v1::RunInfo& second = done.runs(1);
  ASSERT_GE(second.attempts_size(), 2);
  EXPECT_EQ(second.attempts(0).outcome(), "interrupted");
  EXPECT_EQ(second.attempts(second.attempts_size() - 1).outcome(), "succeeded");

  v1::FetchResultRequest fetch;
  fetch.set_job_id(job.job_id());
  fetch.set_run_id(done.runs(0).run_id());
  auto ctx = Ctx();
  auto reader = stub2->FetchResult(ctx.get(), fetch);
  TensorAssembler assembler;
  v1::TensorChunk chunk;
  while (reader->Read(&chunk)) ASSERT_TRUE(assembler.Add(chunk).ok());
  ASSERT_TRUE(reader->Finish().ok());
  auto tensors = assembler.Finish();
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  ASSERT_EQ(static_cast<int>(tensors->size()), finished.tensors_size());
  for (const NamedArray& t : *tensors) {
    bool found = false;
    for (const v1::TensorInfo& info : finished.tensors()) {
      if (info.name() != t.name) continue;
      found = true;
      EXPECT_EQ(Sha256Hex(t.array.raw(), t.array.nbytes()), info.sha256());
    }
    EXPECT_TRUE(found) << t.name;
  }
}

TEST(CoordinatorFaultsTest, JobAcknowledgedThenKilledIsThereAfterRestart) {
  auto a = StartWorker({});
  ASSERT_NE(a, nullptr);
  StoreDir dir;
  auto c = StartCoordinator(dir.path(), {a->address()});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  v1::SubmitJobRequest r = Submission(testing::TinySpec(), {a->address()}, 2);
  r.set_client_request_id("acked-then-killed");
  const v1::Job job = Submit(*stub, r);
  c->Kill9();  // right after the acknowledgement

  auto c2 = StartCoordinator(dir.path(), {a->address()});
  ASSERT_NE(c2, nullptr);
  auto stub2 = CoordinatorStub(c2->address());
  const v1::Job done = WaitForJob(*stub2, job.job_id());
  EXPECT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  // The retry of the submission finds the same job.
  EXPECT_EQ(Submit(*stub2, r).job_id(), job.job_id());
}

TEST(CoordinatorFaultsTest, SigtermDrainsAndTheRunResumesOnRestart) {
  auto a = StartWorker({});
  ASSERT_NE(a, nullptr);
  StoreDir dir;
  auto c =
      StartCoordinator(dir.path(), {a->address()}, {"--grace_period=200ms"});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  const v1::Job job = Submit(*stub, Submission(SecondsSpec(2), {a->address()}));
  ASSERT_TRUE(RunIsTraining(*stub, job.job_id(), 0));
  kill(c->pid(), SIGTERM);
  EXPECT_EQ(c->WaitFor(std::chrono::seconds(20)), 0) << c->Stderr();

  auto c2 = StartCoordinator(dir.path(), {a->address()});
  ASSERT_NE(c2, nullptr);
  auto stub2 = CoordinatorStub(c2->address());
  const v1::Job done = WaitForJob(*stub2, job.job_id());
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.ShortDebugString();
  const v1::RunInfo& run = done.runs(0);
  ASSERT_GE(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).outcome(), "interrupted");
  EXPECT_EQ(run.attempts(run.attempts_size() - 1).outcome(), "succeeded");
}

TEST(CoordinatorFaultsTest, HealthIsServingThenNotServingWhileDraining) {
  auto a = StartWorker({});
  ASSERT_NE(a, nullptr);
  StoreDir dir;
  // A long grace: the run in flight keeps the coordinator draining until
  // the test cancels it.
  auto c =
      StartCoordinator(dir.path(), {a->address()}, {"--grace_period=120s"});
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(testing::HealthStatus(c->address()), 1);
  EXPECT_EQ(testing::HealthStatus(c->address(), "driftscope.v1.Coordinator"),
            1);
  auto stub = CoordinatorStub(c->address());
  const v1::Job job = Submit(*stub, Submission(LongSpec(), {a->address()}));
  ASSERT_TRUE(RunIsTraining(*stub, job.job_id(), 0));
  kill(c->pid(), SIGTERM);
  EXPECT_TRUE(
      Eventually([&] { return testing::HealthStatus(c->address()) == 2; },
                 std::chrono::seconds(30)));
  EXPECT_EQ(testing::HealthStatus(c->address(), "driftscope.v1.Coordinator"),
            2);
  // Still answering while draining, but taking no new job.
  EXPECT_EQ(Get(*stub, job.job_id()).job_id(), job.job_id());
  v1::Job refused;
  const grpc::Status s = stub->SubmitJob(
      Ctx().get(), Submission(TinySpec(), {a->address()}), &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("shutting down"));
  // Cancels work too; with nothing left in flight the drain ends, exit 0.
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.job_id());
  v1::Job cancelled;
  ASSERT_TRUE(stub->CancelJob(Ctx().get(), cancel, &cancelled).ok());
  EXPECT_EQ(c->WaitFor(std::chrono::seconds(30)), 0) << c->Stderr();
}

TEST(CoordinatorFaultsTest, AfterCancelNoRunResultIsStored) {
  auto a = StartWorker({"--max_concurrent_runs=2"});
  ASSERT_NE(a, nullptr);
  StoreDir dir;
  auto c = StartCoordinator(dir.path(), {a->address()});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  const v1::Job job = Submit(*stub, Submission(LongSpec(), {a->address()}, 3));
  ASSERT_TRUE(RunIsTraining(*stub, job.job_id(), 0));

  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.job_id());
  v1::Job cancelled;
  ASSERT_TRUE(stub->CancelJob(Ctx().get(), cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::JOB_CANCELLED);
  for (const v1::RunInfo& run : cancelled.runs()) {
    EXPECT_EQ(run.state(), v1::RUN_CANCELLED);
  }
  // The attempts in flight end (the worker frees its slots) ...
  ASSERT_TRUE(Eventually([&] {
    v1::ListWorkersResponse workers;
    return stub->ListWorkers(Ctx().get(), v1::ListWorkersRequest(), &workers)
               .ok() &&
           workers.workers_size() == 1 &&
           workers.workers(0).running_runs() == 0;
  }));
  // ... and nothing of them was stored.
  const v1::Job after = Get(*stub, job.job_id());
  EXPECT_EQ(after.state(), v1::JOB_CANCELLED);
  for (const v1::RunInfo& run : after.runs()) {
    EXPECT_EQ(run.state(), v1::RUN_CANCELLED);
    EXPECT_FALSE(run.has_summary());
  }
  v1::FetchResultRequest fetch;
  fetch.set_job_id(job.job_id());
  fetch.set_run_id(job.runs(0).run_id());
  auto ctx = Ctx();
  auto reader = stub->FetchResult(ctx.get(), fetch);
  v1::TensorChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  EXPECT_EQ(reader->Finish().error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // Cancelling again is harmless; a watcher sees the end at once.
  ASSERT_TRUE(stub->CancelJob(Ctx().get(), cancel, &cancelled).ok());
  v1::WatchJobRequest watch;
  watch.set_job_id(job.job_id());
  auto wctx = Ctx();
  auto events = stub->WatchJob(wctx.get(), watch);
  v1::JobEvent e;
  ASSERT_TRUE(events->Read(&e));
  EXPECT_TRUE(e.has_snapshot());
  ASSERT_TRUE(events->Read(&e));
  EXPECT_EQ(e.job_state(), v1::JOB_CANCELLED);
  EXPECT_FALSE(events->Read(&e));
  EXPECT_TRUE(events->Finish().ok());
}

TEST(CoordinatorFaultsTest, WorkerWhoseLeaseRunsOutLosesItsRuns) {
  auto a = StartWorker({});
  auto b = StartWorker({});
  ASSERT_TRUE(a && b);
  StoreDir dir;
  // b is static; a registers (here the test registers it for the worker).
  auto c = StartCoordinator(dir.path(), {b->address()}, {"--lease_seconds=1"});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  v1::RegisterWorkerRequest reg;
  reg.set_worker_secret("a-secret-of-16-chars-or-more");
  reg.mutable_worker()->set_name("worker-a");
  reg.mutable_worker()->set_address(a->address());
  reg.mutable_worker()->set_default_profile("fp32");
  reg.mutable_worker()->add_presets("fp32");
  reg.mutable_worker()->set_max_concurrent_runs(1);
  (*reg.mutable_worker()->mutable_labels())["pool"] = "blue";
  v1::RegisterWorkerResponse lease;
  ASSERT_TRUE(stub->RegisterWorker(Ctx().get(), reg, &lease).ok());
  EXPECT_EQ(lease.lease_seconds(), 1);
  std::atomic<bool> heartbeat{true};
  std::thread beats([&] {
    auto s = CoordinatorStub(c->address());
    while (heartbeat.load()) {
      v1::HeartbeatRequest hb;
      hb.set_lease_id(lease.lease_id());
      v1::HeartbeatResponse ignored;
      EXPECT_TRUE(s->Heartbeat(Ctx().get(), hb, &ignored).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });

  v1::SubmitJobRequest r = Submission(SecondsSpec(3), {});
  (*r.mutable_placement()->mutable_labels())["pool"] = "blue";
  const v1::Job job = Submit(*stub, r);
  ASSERT_EQ(job.runs_size(), 1);
  EXPECT_EQ(job.runs(0).worker(), "worker-a");
  const bool training = RunIsTraining(*stub, job.job_id(), 0);
  heartbeat = false;
  beats.join();
  ASSERT_TRUE(training);

  const v1::Job done = WaitForJob(*stub, job.job_id());
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const v1::RunInfo& run = done.runs(0);
  ASSERT_EQ(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).worker(), "worker-a");
  EXPECT_THAT(run.attempts(0).message(), HasSubstr("lost"));
  EXPECT_EQ(run.attempts(1).worker(), b->address());

  v1::HeartbeatRequest late;
  late.set_lease_id(lease.lease_id());
  v1::HeartbeatResponse ignored;
  EXPECT_EQ(stub->Heartbeat(Ctx().get(), late, &ignored).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::ListWorkersResponse workers;
  ASSERT_TRUE(
      stub->ListWorkers(Ctx().get(), v1::ListWorkersRequest(), &workers).ok());
  ASSERT_EQ(workers.workers_size(), 2);
  for (const v1::WorkerStatus& w : workers.workers()) {
    if (w.worker().name() == "worker-a") {
      EXPECT_EQ(w.state(), v1::WORKER_UNAVAILABLE);
      EXPECT_EQ(w.worker().labels().at("pool"), "blue");
    } else {
      EXPECT_EQ(w.state(), v1::WORKER_AVAILABLE);
      EXPECT_EQ(w.worker().labels().at("default_profile"),
                w.worker().default_profile());
      EXPECT_GT(w.worker().presets_size(), 0);
    }
  }
}

}  // namespace
}  // namespace driftscope
