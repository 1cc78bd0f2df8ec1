// The standard services of a real driftscope-worker: server reflection lists
// the Worker and health services, and health follows the daemon's life:
// SERVING while it runs jobs, NOT_SERVING while it drains after SIGTERM (new
// runs then get UNAVAILABLE), until it exits 0.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "client/lib/worker_client.h"
#include "engine/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/eventually.h"
#include "tests/server/grpc_probe.h"
#include "tests/server/worker_process.h"
#include "tests/server/worker_test_specs.h"

namespace driftscope {
namespace {

using ::driftscope::testing::Eventually;

using ::driftscope::testing::CheckHealth;
using ::driftscope::testing::kNotServing;
using ::driftscope::testing::kServing;
using ::driftscope::testing::PlaintextChannel;
using ::driftscope::testing::ReflectedServices;
using ::driftscope::testing::WorkerProcess;
using ::testing::Contains;
using ::testing::HasSubstr;

using ::driftscope::testing::SmallSpec;

using ::driftscope::testing::LongWorkerSpec;

std::unique_ptr<WorkerClient> Client(const std::string& address) {
  WorkerClientOptions o;
  o.address = address;
  o.insecure = true;
  o.max_attempts = 1;
  return *WorkerClient::Create(o);
}

TEST(WorkerHealthTest, ReflectionListsTheWorkerAndHealthServices) {
  // With a token configured: reflection, like health, needs none.
  auto worker = WorkerProcess::Start({"--insecure", "--auth_token=t0ken"});
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto services = ReflectedServices(PlaintextChannel((*worker)->address()));
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, Contains("driftscope.v1.Worker"));
  EXPECT_THAT(*services, Contains("grpc.health.v1.Health"));
}

TEST(WorkerHealthTest, NotServingWhileDrainingNewRunsRefusedThenExitZero) {
  // A grace period far longer than the test: the drain ends because the
  // last run ends, not because time ran out.
  auto started = WorkerProcess::Start({"--insecure", "--grace_period=120s"});
  ASSERT_TRUE(started.ok()) << started.status();
  WorkerProcess& worker = **started;
  const auto channel = PlaintextChannel(worker.address());
  auto client = Client(worker.address());

  std::atomic<bool> cancel{false};
  std::atomic<int64_t> steps{0};
  RunOptions options;
  options.cancel = &cancel;
  options.on_progress = [&](const ProgressEvent& e) { steps = e.step; };
  RemoteRunOptions remote;
  remote.capture.progress_every_steps = 1;
  auto run = std::async(std::launch::async, [&] {
    return client->Run(LongWorkerSpec(), "fp32", options, remote);
  });
  ASSERT_TRUE(Eventually([&] { return steps.load() > 0; }));
  EXPECT_EQ(CheckHealth(channel, "").value_or(testing::kUnknown), kServing);
  EXPECT_EQ(
      CheckHealth(channel, "driftscope.v1.Worker").value_or(testing::kUnknown),
      kServing);

  ASSERT_EQ(kill(worker.pid(), SIGTERM), 0);
  EXPECT_TRUE(Eventually([&] {
    return CheckHealth(channel, "").value_or(testing::kUnknown) == kNotServing;
  }));
  EXPECT_EQ(
      CheckHealth(channel, "driftscope.v1.Worker").value_or(testing::kUnknown),
      kNotServing);
  auto refused = Client(worker.address())->Run(SmallSpec(), "fp32");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.status().message(), HasSubstr("draining"));
  // The run in flight was not disturbed by the drain.
  const int64_t before = steps.load();
  EXPECT_TRUE(Eventually([&] { return steps.load() > before; }));
  EXPECT_EQ(worker.WaitFor(std::chrono::milliseconds(10)), -1);  // running

  // Its end ends the drain: the process exits 0, long before the grace.
  cancel = true;
  ASSERT_EQ(run.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(run.get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(worker.WaitFor(std::chrono::seconds(30)), 0);
}

}  // namespace
}  // namespace driftscope
