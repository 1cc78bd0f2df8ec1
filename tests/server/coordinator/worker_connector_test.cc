// GrpcWorkerConnector against a real driftscope-worker with --auth_token:
// each target is called with the token its credential names, and a worker
// that refuses the token it registered with reads as gone (UNAVAILABLE),
// not as a deterministic failure of the run.
#include "server/coordinator/worker_connector.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/worker_process.h"

namespace driftscope::coordinator {
namespace {

using ::driftscope::testing::WorkerProcess;
using ::testing::HasSubstr;
using Kind = WorkerCredential::Kind;

TEST(WorkerConnectorTest, EachTargetIsCalledWithItsOwnCredential) {
  auto worker = WorkerProcess::Start({"--insecure", "--auth_token=worker-tok"});
  ASSERT_TRUE(worker.ok()) << worker.status();
  const std::string address = (*worker)->address();
  WorkerDialOptions o;
  o.insecure = true;
  o.token = "fleet-tok";  // not this worker's
  GrpcWorkerConnector connector(o);

  const absl::StatusOr<WorkerDescription> own =
      connector.Describe({address, {Kind::kOwn, "worker-tok"}});
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_GT(own->presets.size(), 0u);
  const v1::WorkerInfo info = WorkerInfoFromDescription("w", address, *own);
  EXPECT_EQ(info.name(), "w");
  EXPECT_EQ(info.default_profile(), own->default_profile);
  EXPECT_EQ(info.environment().hostname(), own->environment.hostname);

  // The fleet token is sent only to kFleet targets; this worker refuses it.
  EXPECT_EQ(connector.Describe({address, {Kind::kFleet, ""}}).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(connector.Describe({address, {Kind::kNone, ""}}).status().code(),
            absl::StatusCode::kUnauthenticated);

  // A worker that no longer takes the token it registered with has
  // restarted: UNAVAILABLE, so the run moves on instead of failing.
  const absl::Status stale =
      connector.Describe({address, {Kind::kOwn, "old-worker-tok"}}).status();
  EXPECT_EQ(stale.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(stale.message(), HasSubstr("refused the token it registered"));
  // And the right token again works on the same address.
  EXPECT_TRUE(connector.Describe({address, {Kind::kOwn, "worker-tok"}}).ok());
}

}  // namespace
}  // namespace driftscope::coordinator
