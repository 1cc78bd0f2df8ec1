// WorkerRegistry with a hand-driven clock: leases, heartbeats, expiry,
// draining, static workers and derived labels.
#include "server/coordinator/worker_registry.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class WorkerRegistryTest : public ::testing::Test {
 protected:
  WorkerRegistryTest()
      : registry_(WorkerRegistryOptions{absl::Seconds(10),
                                        [this] { return now_; }}) {}

  static v1::WorkerInfo Info(const std::string& name) {
    v1::WorkerInfo w;
    w.set_name(name);
    w.set_address("10.0.0.1:7070");
    w.set_default_profile("fp32");
    w.set_max_concurrent_runs(2);
    w.mutable_environment()->set_hostname("box");
    w.mutable_environment()->set_cpu_model("Zen 4");
    return w;
  }

  v1::WorkerState State(const std::string& name) {
    std::optional<WorkerView> w = registry_.Get(name);
    return w.has_value() ? w->state : v1::WORKER_STATE_UNSPECIFIED;
  }

  absl::Status Beat(const std::string& lease, bool draining = false) {
    v1::HeartbeatRequest hb;
    hb.set_lease_id(lease);
    hb.set_draining(draining);
    return registry_.Heartbeat(hb).status();
  }

  absl::Time now_ = absl::FromUnixSeconds(1000);
  WorkerRegistry registry_;
};

TEST_F(WorkerRegistryTest, LeaseKeptByHeartbeatsEndsWithoutThem) {
  std::vector<std::string> lost;
  registry_.SetLossListener([&](const std::string& n) { lost.push_back(n); });
  auto lease = registry_.Register(Info("a"));
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->lease_seconds(), 10);
  EXPECT_EQ(State("a"), v1::WORKER_AVAILABLE);

  now_ += absl::Seconds(9);
  EXPECT_TRUE(Beat(lease->lease_id()).ok());
  now_ += absl::Seconds(9);
  EXPECT_TRUE(registry_.ExpireLeases().empty());
  EXPECT_EQ(State("a"), v1::WORKER_AVAILABLE);

  now_ += absl::Seconds(2);  // 11 s after the last heartbeat
  EXPECT_THAT(registry_.ExpireLeases(), ElementsAre("a"));
  EXPECT_THAT(lost, ElementsAre("a"));
  EXPECT_EQ(State("a"), v1::WORKER_UNAVAILABLE);
  const absl::Status late = Beat(lease->lease_id());
  EXPECT_EQ(late.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(late.message(), HasSubstr("register again"));

  auto again = registry_.Register(Info("a"));
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->lease_id(), lease->lease_id());
  EXPECT_EQ(State("a"), v1::WORKER_AVAILABLE);
}

TEST_F(WorkerRegistryTest, LateHeartbeatEndsTheLeaseEvenBeforeTheSweep) {
  std::vector<std::string> lost;
  registry_.SetLossListener([&](const std::string& n) { lost.push_back(n); });
  auto lease = registry_.Register(Info("a"));
  ASSERT_TRUE(lease.ok());
  now_ += absl::Seconds(30);
  EXPECT_EQ(Beat(lease->lease_id()).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(lost, ElementsAre("a"));
  EXPECT_EQ(State("a"), v1::WORKER_UNAVAILABLE);
}

TEST_F(WorkerRegistryTest, ReRegistrationRetiresTheOldLease) {
  auto first = registry_.Register(Info("a"));
  auto second = registry_.Register(Info("a"));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(Beat(first->lease_id()).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Beat(second->lease_id()).ok());
}

// The issue: a client re-registered under an existing worker's name and
// captured its runs. A name held by a live lease now stays with the
// identity (client certificate) that holds it; before this fix the second
// registration below took the name.
TEST_F(WorkerRegistryTest, LiveLeasesNameCannotBeTakenByAnotherIdentity) {
  auto real = registry_.Register(Info("a"), "cn=worker-a");
  ASSERT_TRUE(real.ok());
  v1::WorkerInfo impostor = Info("a");
  impostor.set_address("10.6.6.6:7070");
  auto taken = registry_.Register(impostor, "cn=someone-else");
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(taken.status().message(), HasSubstr("live lease"));
  EXPECT_EQ(registry_.Get("a")->info.address(), "10.0.0.1:7070");
  EXPECT_TRUE(Beat(real->lease_id()).ok());
  // The same identity may register again (a restarted worker) ...
  auto restarted = registry_.Register(Info("a"), "cn=worker-a");
  ASSERT_TRUE(restarted.ok());
  // ... and once the lease has run out the name is free.
  now_ += absl::Seconds(11);
  registry_.ExpireLeases();
  EXPECT_TRUE(registry_.Register(impostor, "cn=someone-else").ok());
}

// The issue: the registry never forgot (303 entries after 300
// registrations). Workers silent for forget_after (1 h) are dropped; one
// still heartbeating stays. All 301 stayed before this fix.
TEST_F(WorkerRegistryTest, SilentRegisteredWorkersAreForgotten) {
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(registry_.Register(Info("w" + std::to_string(i))).ok());
  }
  auto alive = registry_.Register(Info("alive"));
  ASSERT_TRUE(alive.ok());
  EXPECT_EQ(registry_.All().size(), 301u);
  // An hour and a minute, the live one beating every 5 s.
  for (int beat = 0; beat < 61 * 12; ++beat) {
    now_ += absl::Seconds(5);
    ASSERT_TRUE(Beat(alive->lease_id()).ok());
    registry_.ExpireLeases();
  }
  now_ += absl::Seconds(1);
  registry_.ExpireLeases();
  ASSERT_EQ(registry_.All().size(), 1u);
  EXPECT_EQ(registry_.All()[0].info.name(), "alive");
}

TEST_F(WorkerRegistryTest, DrainingWorkerTakesNoRunsUntilItStops) {
  auto lease = registry_.Register(Info("a"));
  ASSERT_TRUE(lease.ok());
  EXPECT_TRUE(Beat(lease->lease_id(), /*draining=*/true).ok());
  EXPECT_EQ(State("a"), v1::WORKER_DRAINING);
  EXPECT_TRUE(Beat(lease->lease_id()).ok());
  EXPECT_EQ(State("a"), v1::WORKER_AVAILABLE);
}

TEST_F(WorkerRegistryTest, BadRegistrationsNameTheField) {
  v1::WorkerInfo w = Info("");
  EXPECT_THAT(registry_.Register(w).status().message(),
              HasSubstr("worker.name"));
  w = Info("a");
  w.set_address("0.0.0.0:7070");
  EXPECT_THAT(registry_.Register(w).status().message(), HasSubstr("wildcard"));
  w.set_address("no-port");
  EXPECT_THAT(registry_.Register(w).status().message(), HasSubstr("HOST:PORT"));
  w = Info("a");
  w.set_max_concurrent_runs(0);
  EXPECT_THAT(registry_.Register(w).status().message(),
              HasSubstr("max_concurrent_runs"));
  EXPECT_TRUE(registry_.All().empty());
}

TEST_F(WorkerRegistryTest, StaticWorkersFollowTheirProbesAndKeepTheirName) {
  v1::WorkerInfo s = Info("10.0.0.2:7070");
  s.set_address("10.0.0.2:7070");
  registry_.UpdateStatic(s, /*available=*/true);
  EXPECT_EQ(State("10.0.0.2:7070"), v1::WORKER_AVAILABLE);
  registry_.MarkUnreachable("10.0.0.2:7070");
  EXPECT_EQ(State("10.0.0.2:7070"), v1::WORKER_UNAVAILABLE);
  registry_.UpdateStatic(s, /*available=*/true);
  EXPECT_EQ(State("10.0.0.2:7070"), v1::WORKER_AVAILABLE);
  // A probe that fails keeps what the last good one described.
  v1::WorkerInfo bare;
  bare.set_name("10.0.0.2:7070");
  bare.set_address("10.0.0.2:7070");
  registry_.UpdateStatic(bare, /*available=*/false);
  EXPECT_EQ(registry_.Get("10.0.0.2:7070")->info.default_profile(), "fp32");
  // A registration cannot take a static worker's name.
  EXPECT_EQ(registry_.Register(Info("10.0.0.2:7070")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(WorkerRegistryTest, DerivedLabelsUnderTheWorkersOwn) {
  v1::WorkerInfo w = Info("a");
  (*w.mutable_labels())["host"] = "rack-7";
  (*w.mutable_labels())["pool"] = "blue";
  ASSERT_TRUE(registry_.Register(w).ok());
  const std::optional<WorkerView> a = registry_.Get("a");
  ASSERT_TRUE(a.has_value());
  const auto& labels = a->info.labels();
  EXPECT_EQ(labels.at("host"), "rack-7");  // the worker's own wins
  EXPECT_EQ(labels.at("cpu"), "Zen 4");
  EXPECT_EQ(labels.at("gpu"), "none");
  EXPECT_EQ(labels.at("default_profile"), "fp32");
  google::protobuf::Map<std::string, std::string> wanted;
  wanted["pool"] = "blue";
  EXPECT_TRUE(LabelsMatch(labels, wanted));
  wanted["gpu"] = "a100";
  EXPECT_FALSE(LabelsMatch(labels, wanted));
}

}  // namespace
}  // namespace driftscope::coordinator
