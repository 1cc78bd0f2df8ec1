// Self-registration against the real coordinator: real driftscope-worker
// and driftscope-coordinator processes on 127.0.0.1. A worker started with
// --coordinator shows up in ListWorkers and runs the jobs placed on it; a
// coordinator restarted without its registrations gets the worker back by
// itself; SIGTERM turns the worker DRAINING. Against a rogue registrant (a
// fake worker in this process that records the tokens it is sent): it
// never receives the coordinator's fleet-wide worker token, its forged
// labels attract no runs and it cannot take a live worker's name, while
// the real worker runs its jobs with the token it gave.
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "driftscope/v1/worker.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/coordinator/coordinator_test_util.h"
#include "tests/server/test_certs.h"
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
using ::testing::Each;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// A worker that is not one: it describes itself as a CPU-only box, fails
// every run, and records the authorization header of every call.
class RogueWorker final : public v1::Worker::Service {
 public:
  RogueWorker() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~RogueWorker() override { server_->Shutdown(); }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  // One entry per call: "Describe: Bearer ..." ("" after the colon when the
  // call carried no token).
  std::vector<std::string> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

  grpc::Status Describe(grpc::ServerContext* context,
                        const v1::DescribeRequest*,
                        v1::DescribeResponse* response) override {
    Record("Describe", *context);
    response->mutable_environment()->set_hostname("rogue-box");
    response->mutable_environment()->set_arch("x86_64");
    response->set_default_profile("fp32");
    response->add_presets("fp32");
    response->set_max_concurrent_runs(1);
    return grpc::Status::OK;
  }
  grpc::Status Run(grpc::ServerContext* context, const v1::RunRequest*,
                   grpc::ServerWriter<v1::RunEvent>*) override {
    Record("Run", *context);
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "rogue");
  }

 private:
  void Record(const std::string& method, const grpc::ServerContext& context) {
    std::string token;
    auto it = context.client_metadata().find("authorization");
    if (it != context.client_metadata().end()) {
      token.assign(it->second.data(), it->second.size());
    }
    absl::MutexLock lock(&mu_);
    calls_.push_back(absl::StrCat(method, ": ", token));
  }

  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  absl::Mutex mu_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
};

v1::RegisterWorkerRequest Registration(const std::string& name,
                                       const std::string& address,
                                       const std::string& secret) {
  v1::RegisterWorkerRequest reg;
  reg.mutable_worker()->set_name(name);
  reg.mutable_worker()->set_address(address);
  reg.mutable_worker()->set_max_concurrent_runs(1);
  reg.set_worker_secret(secret);
  return reg;
}

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

// The issue: a client registered a worker with forged labels (gpu=a100,
// host=trusted-host) and received label-placed runs, re-registered under a
// live worker's name, and received the coordinator's worker token with
// every run sent to it, a token that opens every real worker. Before this
// fix each EXPECT on the rogue below failed (and the real worker, whose
// --auth_token is not the fleet token, refused the coordinator's runs).
TEST(WorkerRegistrationE2eTest, RogueRegistrantGetsNoFleetTokenNorRuns) {
  auto coordinator = CoordinatorProcess::Start(
      {"--insecure", "--worker_insecure", "--auth_token=client-tok",
       "--registration_token=register-tok", "--worker_auth_token=fleet-secret",
       "--store_dir=" + StoreDir("registration-rogue")});
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  const std::string address = (*coordinator)->address();
  auto worker = WorkerProcess::Start(
      {"--insecure", "--auth_token=only-this-worker",
       "--coordinator=" + address, "--coordinator_insecure",
       "--coordinator_token=register-tok", "--name=real"});
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto stub = CoordinatorStub(address);
  auto client = [] { return Ctx(std::chrono::seconds(30), "client-tok"); };
  auto registrant = [] {
    return Ctx(std::chrono::seconds(30), "register-tok");
  };
  ASSERT_TRUE(Eventually([&] {
    v1::ListWorkersResponse r;
    if (!stub->ListWorkers(client().get(), {}, &r).ok()) return false;
    for (const v1::WorkerStatus& w : r.workers()) {
      if (w.worker().name() == "real") return w.state() == v1::WORKER_AVAILABLE;
    }
    return false;
  }));

  RogueWorker rogue;
  v1::RegisterWorkerRequest reg =
      Registration("rogue", rogue.address(), "secret-of-the-rogue");
  (*reg.mutable_worker()->mutable_labels())["gpu"] = "a100";
  (*reg.mutable_worker()->mutable_labels())["host"] = "trusted-host";
  (*reg.mutable_worker()->mutable_labels())["pool"] = "blue";
  v1::RegisterWorkerResponse lease;
  grpc::Status s = stub->RegisterWorker(registrant().get(), reg, &lease);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(lease.replaced_labels(), UnorderedElementsAre("gpu", "host"));

  // Its forged labels attract nothing; its free-form one still places.
  for (const auto& [key, value] :
       {std::pair{"gpu", "a100"}, std::pair{"host", "trusted-host"}}) {
    v1::SubmitJobRequest by_label;
    *by_label.mutable_spec() = JobSpecToProto(testing::TinySpec());
    (*by_label.mutable_placement()->mutable_labels())[key] = value;
    v1::Job refused;
    s = stub->SubmitJob(client().get(), by_label, &refused);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << key;
    EXPECT_THAT(s.error_message(), HasSubstr("no available worker matches"));
  }

  // It cannot take the live worker's name.
  v1::RegisterWorkerRequest capture =
      Registration("real", rogue.address(), "secret-of-the-rogue");
  s = stub->RegisterWorker(registrant().get(), capture, &lease);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);

  // A job on both: the real worker runs with the token it gave at
  // registration; the rogue is called without any token.
  v1::SubmitJobRequest both;
  *both.mutable_spec() = JobSpecToProto(testing::TinySpec());
  both.mutable_placement()->add_workers("real");
  both.mutable_placement()->add_workers("rogue");
  v1::Job job;
  s = stub->SubmitJob(client().get(), both, &job);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Eventually(
      [&] {
        v1::GetJobRequest get;
        get.set_job_id(job.job_id());
        return stub->GetJob(client().get(), get, &job).ok() &&
               (job.state() == v1::JOB_SUCCEEDED ||
                job.state() == v1::JOB_FAILED);
      },
      std::chrono::seconds(120)));
  ASSERT_EQ(job.runs_size(), 2);
  for (const v1::RunInfo& run : job.runs()) {
    EXPECT_EQ(run.state(),
              run.worker() == "real" ? v1::RUN_SUCCEEDED : v1::RUN_FAILED)
        << run.DebugString();
  }
  const std::vector<std::string> calls = rogue.calls();
  EXPECT_THAT(calls, Contains("Describe: "));
  EXPECT_THAT(calls, Contains("Run: "));
  EXPECT_THAT(calls, Each(Not(HasSubstr("fleet-secret"))));
  EXPECT_THAT(calls, Each(Not(HasSubstr("only-this-worker"))));

  // A registrant that gives its own token gets that one back, nothing else.
  v1::RegisterWorkerRequest with_token =
      Registration("rogue-2", rogue.address(), "secret-of-rogue-2");
  with_token.set_worker_token("rogue-2-token");
  s = stub->RegisterWorker(registrant().get(), with_token, &lease);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(rogue.calls().back(), "Describe: Bearer rogue-2-token");
}

// Under mTLS a registration proves who it is, and the coordinator's fleet
// token goes to it (a worker configured with that token keeps working).
TEST(WorkerRegistrationE2eTest, MtlsRegistrationIsSentTheFleetToken) {
  const std::string certs = StoreDir("registration-mtls-certs");
  ASSERT_TRUE(testing::MakeSelfSignedCert(certs));
  const std::string cert = certs + "/cert.pem", key = certs + "/key.pem";
  auto coordinator = CoordinatorProcess::Start(
      {"--tls_cert=" + cert, "--tls_key=" + key, "--tls_client_ca=" + cert,
       "--worker_insecure", "--worker_auth_token=fleet-secret",
       "--store_dir=" + StoreDir("registration-mtls")});
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = testing::ReadFile(cert);
  ssl.pem_cert_chain = testing::ReadFile(cert);
  ssl.pem_private_key = testing::ReadFile(key);
  auto stub =
      CoordinatorStub((*coordinator)->address(), grpc::SslCredentials(ssl));

  RogueWorker worker;
  // No secret needed: the certificate is the proof.
  v1::RegisterWorkerRequest reg = Registration("mtls", worker.address(), "");
  v1::RegisterWorkerResponse lease;
  const grpc::Status s = stub->RegisterWorker(Ctx().get(), reg, &lease);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(worker.calls(),
              UnorderedElementsAre("Describe: Bearer fleet-secret"));
  EXPECT_THAT(lease.replaced_labels(), IsEmpty());
}

// A worker restarted on the same address has a new secret and a new
// token: it gets its name back when the old lease ends, and a run sent
// meanwhile with the old token (refused) moves on instead of failing.
TEST(WorkerRegistrationE2eTest, RestartedWorkerGetsItsNameBackAndRuns) {
  auto coordinator = CoordinatorProcess::Start(
      {"--insecure", "--worker_insecure", "--lease_seconds=2",
       "--store_dir=" + StoreDir("registration-worker-restart")});
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  const std::vector<std::string> flags = {
      "--insecure", "--auth_token=worker-tok",
      "--coordinator=" + (*coordinator)->address(), "--coordinator_insecure",
      "--name=w"};
  auto first = WorkerProcess::Start(flags);
  ASSERT_TRUE(first.ok()) << first.status();
  auto stub = CoordinatorStub((*coordinator)->address());
  ASSERT_TRUE(
      Eventually([&] { return HasState(*stub, "w", v1::WORKER_AVAILABLE); }));
  const std::string address = (*first)->address();
  (*first)->Kill9();
  std::vector<std::string> again = flags;
  again.push_back("--listen=" + address);
  auto second = WorkerProcess::Start(again);
  ASSERT_TRUE(second.ok()) << second.status();

  // Submitted while the old lease may still hold the name.
  v1::SubmitJobRequest req;
  *req.mutable_spec() = JobSpecToProto(testing::TinySpec());
  req.mutable_placement()->add_workers("w");
  v1::Job job;
  ASSERT_TRUE(stub->SubmitJob(Ctx().get(), req, &job).ok());
  job = WaitForJob(*stub, job.job_id());
  ASSERT_EQ(job.state(), v1::JOB_SUCCEEDED) << job.DebugString();
  const v1::RunInfo& run = job.runs(0);
  for (int i = 0; i + 1 < run.attempts_size(); ++i) {
    EXPECT_THAT(run.attempts(i).message(),
                HasSubstr("refused the token it registered with"));
  }
  EXPECT_TRUE(HasState(*stub, "w", v1::WORKER_AVAILABLE));
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
