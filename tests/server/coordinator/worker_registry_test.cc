// WorkerRegistry with a hand-driven clock: leases, heartbeats, expiry,
// draining, static workers, who may hold a name, the credential each worker
// is called with, and derived labels.
#include "server/coordinator/worker_registry.h"

#include <string>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope::coordinator {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

// A registrant without a certificate, proving itself by `secret`.
Registrant BySecret(const std::string& secret = "secret-of-worker-a") {
  return Registrant{"", secret, {}};
}

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
  auto lease = registry_.Register(Info("a"), BySecret());
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

  auto again = registry_.Register(Info("a"), BySecret());
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->lease_id(), lease->lease_id());
  EXPECT_EQ(State("a"), v1::WORKER_AVAILABLE);
}

TEST_F(WorkerRegistryTest, LateHeartbeatEndsTheLeaseEvenBeforeTheSweep) {
  std::vector<std::string> lost;
  registry_.SetLossListener([&](const std::string& n) { lost.push_back(n); });
  auto lease = registry_.Register(Info("a"), BySecret());
  ASSERT_TRUE(lease.ok());
  now_ += absl::Seconds(30);
  EXPECT_EQ(Beat(lease->lease_id()).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(lost, ElementsAre("a"));
  EXPECT_EQ(State("a"), v1::WORKER_UNAVAILABLE);
}

TEST_F(WorkerRegistryTest, ReRegistrationRetiresTheOldLease) {
  auto first = registry_.Register(Info("a"), BySecret());
  auto second = registry_.Register(Info("a"), BySecret());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(Beat(first->lease_id()).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Beat(second->lease_id()).ok());
}

// The issue: a client re-registered under an existing worker's name and
// captured its runs. A name held by a live lease now stays with the
// identity (client certificate) that holds it; before this fix the second
// registration below took the name.
TEST_F(WorkerRegistryTest, LiveLeasesNameCannotBeTakenByAnotherIdentity) {
  const Registrant real_cert{"cn=worker-a", "", {}};
  const Registrant other_cert{"cn=someone-else", "", {}};
  auto real = registry_.Register(Info("a"), real_cert);
  ASSERT_TRUE(real.ok());
  v1::WorkerInfo impostor = Info("a");
  impostor.set_address("10.6.6.6:7070");
  auto taken = registry_.Register(impostor, other_cert);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(taken.status().message(), HasSubstr("live lease"));
  EXPECT_EQ(registry_.Get("a")->info.address(), "10.0.0.1:7070");
  EXPECT_TRUE(Beat(real->lease_id()).ok());
  // Nor by a registrant without a certificate, whatever secret it sends.
  EXPECT_EQ(registry_.Register(impostor, BySecret()).status().code(),
            absl::StatusCode::kAlreadyExists);
  // The same certificate may register again (a restarted worker) ...
  auto restarted =
      registry_.Register(Info("a"), {"cn=worker-a", "a-new-secret-123", {}});
  ASSERT_TRUE(restarted.ok());
  // ... and once the lease has run out the name is free.
  now_ += absl::Seconds(11);
  registry_.ExpireLeases();
  EXPECT_TRUE(registry_.Register(impostor, other_cert).ok());
}

// The issue, without mTLS: any holder of the registration token registered
// under a live worker's name and captured 4 of its 6 runs. The name now
// stays with the secret it was registered with; before this fix the
// impostor's registration below took it.
TEST_F(WorkerRegistryTest, LiveLeasesNameCannotBeTakenWithAnotherSecret) {
  auto real = registry_.Register(Info("a"), BySecret("secret-of-worker-a"));
  ASSERT_TRUE(real.ok());
  v1::WorkerInfo impostor = Info("a");
  impostor.set_address("10.6.6.6:7070");
  auto taken = registry_.Register(impostor, BySecret("the-impostors-own"));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(taken.status().message(), HasSubstr("worker_secret"));
  EXPECT_EQ(
      registry_.CheckRegistrant(impostor, BySecret("the-impostors-own")).code(),
      absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry_.Get("a")->info.address(), "10.0.0.1:7070");
  EXPECT_TRUE(Beat(real->lease_id()).ok());
  // A certificate does not open a name held by a secret either.
  EXPECT_EQ(registry_.Register(impostor, {"cn=x", "", {}}).status().code(),
            absl::StatusCode::kAlreadyExists);
  // The worker itself (same secret) registers again at will ...
  auto again = registry_.Register(Info("a"), BySecret("secret-of-worker-a"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Beat(real->lease_id()).code(), absl::StatusCode::kNotFound);
  // ... and the name is free once its lease has run out.
  now_ += absl::Seconds(11);
  EXPECT_EQ(registry_.Get("a")->info.address(), "10.0.0.1:7070");
  EXPECT_TRUE(registry_.Register(impostor, BySecret("the-impostors-own")).ok());
  EXPECT_EQ(registry_.Get("a")->info.address(), "10.6.6.6:7070");
}

TEST_F(WorkerRegistryTest, ARegistrationWithoutCertificateNeedsASecret) {
  for (const std::string secret : {"", "short"}) {
    const absl::Status s =
        registry_.Register(Info("a"), BySecret(secret)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << secret;
    EXPECT_THAT(s.message(), HasSubstr("worker_secret"));
  }
  EXPECT_TRUE(registry_.All().empty());
  EXPECT_TRUE(registry_.Register(Info("a"), {"cn=worker-a", "", {}}).ok());
}

// The issue: the coordinator sent its fleet-wide worker token to every
// registered worker, so a rogue registrant harvested a token that opens
// every real worker. Each worker is now called with what its registration
// earned.
TEST_F(WorkerRegistryTest, EachWorkerIsCalledWithTheCredentialItEarned) {
  using Kind = WorkerCredential::Kind;
  EXPECT_EQ(WorkerCredential::ForRegistration("", "").kind, Kind::kNone);
  EXPECT_EQ(WorkerCredential::ForRegistration("cn=w", "").kind, Kind::kFleet);
  const WorkerCredential own = WorkerCredential::ForRegistration("", "tok-a");
  EXPECT_EQ(own.kind, Kind::kOwn);
  EXPECT_EQ(own.token, "tok-a");
  EXPECT_EQ(WorkerCredential::ForRegistration("cn=w", "tok-a").kind,
            Kind::kOwn);

  ASSERT_TRUE(
      registry_
          .Register(Info("rogue"), {"", "secret-of-the-rogue",
                                    WorkerCredential::ForRegistration("", "")})
          .ok());
  ASSERT_TRUE(registry_
                  .Register(Info("own"),
                            {"", "secret-of-worker-own",
                             WorkerCredential::ForRegistration("", "tok-own")})
                  .ok());
  ASSERT_TRUE(registry_
                  .Register(Info("mtls"),
                            {"cn=mtls", "",
                             WorkerCredential::ForRegistration("cn=mtls", "")})
                  .ok());
  v1::WorkerInfo s = Info("10.0.0.2:7070");
  s.set_address("10.0.0.2:7070");
  registry_.UpdateStatic(s, /*available=*/true);

  EXPECT_EQ(registry_.Target("rogue", "10.0.0.1:7070").credential.kind,
            Kind::kNone);
  const WorkerTarget t = registry_.Target("own", "10.0.0.1:7070");
  EXPECT_EQ(t.address, "10.0.0.1:7070");
  EXPECT_EQ(t.credential.kind, Kind::kOwn);
  EXPECT_EQ(t.credential.token, "tok-own");
  EXPECT_EQ(registry_.Target("mtls", "10.0.0.1:7070").credential.kind,
            Kind::kFleet);
  EXPECT_EQ(registry_.Target("10.0.0.2:7070", "10.0.0.2:7070").credential.kind,
            Kind::kFleet);
  EXPECT_EQ(registry_.Target("unknown", "10.0.0.9:7070").credential.kind,
            Kind::kNone);
}

// The issue: the registry never forgot (303 entries after 300
// registrations). Workers silent for forget_after (1 h) are dropped; one
// still heartbeating stays. All 301 stayed before this fix.
TEST_F(WorkerRegistryTest, SilentRegisteredWorkersAreForgotten) {
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(
        registry_.Register(Info("w" + std::to_string(i)), BySecret()).ok());
  }
  auto alive = registry_.Register(Info("alive"), BySecret());
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
  auto lease = registry_.Register(Info("a"), BySecret());
  ASSERT_TRUE(lease.ok());
  EXPECT_TRUE(Beat(lease->lease_id(), /*draining=*/true).ok());
  EXPECT_EQ(State("a"), v1::WORKER_DRAINING);
  EXPECT_TRUE(Beat(lease->lease_id()).ok());
  EXPECT_EQ(State("a"), v1::WORKER_AVAILABLE);
}

TEST_F(WorkerRegistryTest, BadRegistrationsNameTheField) {
  v1::WorkerInfo w = Info("");
  EXPECT_THAT(registry_.Register(w, BySecret()).status().message(),
              HasSubstr("worker.name"));
  w = Info("a");
  w.set_address("0.0.0.0:7070");
  EXPECT_THAT(registry_.Register(w, BySecret()).status().message(),
              HasSubstr("wildcard"));
  w.set_address("no-port");
  EXPECT_THAT(registry_.Register(w, BySecret()).status().message(),
              HasSubstr("HOST:PORT"));
  w = Info("a");
  w.set_max_concurrent_runs(0);
  EXPECT_THAT(registry_.Register(w, BySecret()).status().message(),
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
  EXPECT_EQ(
      registry_.Register(Info("10.0.0.2:7070"), BySecret()).status().code(),
      absl::StatusCode::kInvalidArgument);
}

// The issue: a registration with forged labels (gpu=a100,
// host=trusted-host) received label-placed runs. Derived keys now take what
// the worker reports about itself (its Describe, here Info's environment:
// host "box", no GPU); before this fix the forged values stayed.
TEST_F(WorkerRegistryTest, ForgedDerivedLabelsAreReplacedFreeFormOnesKept) {
  v1::WorkerInfo w = Info("a");
  (*w.mutable_labels())["host"] = "trusted-host";
  (*w.mutable_labels())["gpu"] = "a100";
  (*w.mutable_labels())["gpu_cc"] = "8.0";
  (*w.mutable_labels())["cpu"] = "Zen 4";  // true: not "replaced"
  (*w.mutable_labels())["pool"] = "blue";
  auto lease = registry_.Register(w, BySecret());
  ASSERT_TRUE(lease.ok());
  EXPECT_THAT(lease->replaced_labels(),
              UnorderedElementsAre("host", "gpu", "gpu_cc"));
  const std::optional<WorkerView> a = registry_.Get("a");
  ASSERT_TRUE(a.has_value());
  const auto& labels = a->info.labels();
  EXPECT_EQ(labels.at("host"), "box");
  EXPECT_EQ(labels.at("cpu"), "Zen 4");
  EXPECT_EQ(labels.at("gpu"), "none");
  EXPECT_EQ(labels.count("gpu_cc"), 0u);
  EXPECT_EQ(labels.at("default_profile"), "fp32");
  google::protobuf::Map<std::string, std::string> wanted;
  wanted["pool"] = "blue";
  EXPECT_TRUE(LabelsMatch(labels, wanted));
  wanted["gpu"] = "a100";
  EXPECT_FALSE(LabelsMatch(labels, wanted));
  google::protobuf::Map<std::string, std::string> trusted;
  trusted["host"] = "trusted-host";
  EXPECT_FALSE(LabelsMatch(labels, trusted));
}

// GPU labels describe the GPU the worker says it uses (gpu_index, its
// --device) when it has that GPU, else GPU 0; "gpu" may be a word of its
// product name (gpu=a100 on an A100, as the Kubernetes overlays label).
TEST_F(WorkerRegistryTest, GpuLabelsDescribeTheDeviceTheWorkerUses) {
  v1::WorkerInfo w = Info("a");
  for (auto [name, major, minor, mib] :
       {std::tuple{"NVIDIA A100-SXM4-80GB", 8, 0, 81920},
        std::tuple{"NVIDIA L4", 8, 9, 23034}}) {
    v1::CudaDevice* d = w.mutable_environment()->mutable_cuda()->add_devices();
    d->set_name(name);
    d->set_compute_major(major);
    d->set_compute_minor(minor);
    d->set_memory_bytes(int64_t{mib} << 20);
  }
  (*w.mutable_labels())["gpu_index"] = "1";
  (*w.mutable_labels())["gpu"] = "A100";  // not GPU 1's name
  ASSERT_TRUE(registry_.Register(w, BySecret()).ok());
  const v1::WorkerInfo on_l4 = registry_.Get("a")->info;
  const auto& labels = on_l4.labels();
  EXPECT_EQ(labels.at("gpu"), "NVIDIA L4");
  EXPECT_EQ(labels.at("gpu_index"), "1");
  EXPECT_EQ(labels.at("gpu_cc"), "8.9");
  EXPECT_EQ(labels.at("gpu_memory_mib"), "23034");

  (*w.mutable_labels())["gpu_index"] = "7";  // no such GPU
  auto again = registry_.Register(w, BySecret());
  ASSERT_TRUE(again.ok());
  EXPECT_THAT(again->replaced_labels(), Contains("gpu_index"));
  EXPECT_THAT(again->replaced_labels(), Not(Contains("gpu")));
  const v1::WorkerInfo on_a100 = registry_.Get("a")->info;
  // A word of the product name is a true short name and stays.
  EXPECT_EQ(on_a100.labels().at("gpu"), "A100");
  EXPECT_EQ(on_a100.labels().at("gpu_index"), "0");
  EXPECT_EQ(on_a100.labels().at("gpu_cc"), "8.0");

  (*w.mutable_labels())["gpu"] = "a10";  // not a word of it
  ASSERT_TRUE(registry_.Register(w, BySecret()).ok());
  EXPECT_EQ(registry_.Get("a")->info.labels().at("gpu"),
            "NVIDIA A100-SXM4-80GB");
}

}  // namespace
}  // namespace driftscope::coordinator
