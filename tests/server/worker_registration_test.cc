// Worker self-registration: a real driftscope-worker process registers with
// a fake driftscope.v1.Coordinator served by this test process (loopback,
// port 0), heartbeats, registers again when its lease is lost, keeps
// serving while the coordinator is down, and reports draining on SIGTERM.
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/lib/worker_client.h"
#include "driftscope/v1/coordinator.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/worker/registration.h"
#include "tests/server/eventually.h"
#include "tests/server/test_certs.h"
#include "tests/server/worker_process.h"
#include "tests/server/worker_test_specs.h"

namespace driftscope {
namespace {

using ::driftscope::testing::Eventually;

using ::driftscope::testing::MakeSelfSignedCert;
using ::driftscope::testing::WorkerProcess;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Pair;

// Records every RegisterWorker and Heartbeat; leases can be forgotten, as
// after a coordinator restart or an expiry.
class FakeCoordinator final : public v1::Coordinator::Service {
 public:
  FakeCoordinator(int lease_seconds, std::string token)
      : lease_seconds_(lease_seconds), token_(std::move(token)) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override {
    absl::MutexLock lock(&mu_);
    if (!Authorized(*context)) return Unauthenticated();
    registrations_.push_back(request->worker());
    requests_.push_back(*request);
    const std::string lease = absl::StrCat("lease-", registrations_.size());
    leases_.insert(lease);
    response->set_lease_id(lease);
    response->set_lease_seconds(lease_seconds_);
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override {
    absl::MutexLock lock(&mu_);
    if (!Authorized(*context)) return Unauthenticated();
    heartbeats_.push_back(*request);
    if (leases_.count(request->lease_id()) == 0) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "lease expired");
    }
    response->set_lease_seconds(lease_seconds_);
    return grpc::Status::OK;
  }

  void ForgetLeases() {
    absl::MutexLock lock(&mu_);
    leases_.clear();
  }
  std::vector<v1::WorkerInfo> registrations() {
    absl::MutexLock lock(&mu_);
    return registrations_;
  }
  std::vector<v1::RegisterWorkerRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  std::vector<v1::HeartbeatRequest> heartbeats() {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  int unauthenticated_calls() {
    absl::MutexLock lock(&mu_);
    return unauthenticated_;
  }

 private:
  bool Authorized(const grpc::ServerContext& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (token_.empty()) return true;
    auto it = context.client_metadata().find("authorization");
    return it != context.client_metadata().end() &&
           std::string(it->second.data(), it->second.size()) ==
               "Bearer " + token_;
  }
  grpc::Status Unauthenticated() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++unauthenticated_;
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token");
  }

  const int lease_seconds_;
  const std::string token_;
  std::vector<v1::RegisterWorkerRequest> requests_ ABSL_GUARDED_BY(mu_);
  absl::Mutex mu_;
  std::vector<v1::WorkerInfo> registrations_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::HeartbeatRequest> heartbeats_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> leases_ ABSL_GUARDED_BY(mu_);
  int unauthenticated_ ABSL_GUARDED_BY(mu_) = 0;
};

struct FakeCoordinatorOptions {
  int port = 0;
  int lease_seconds = 1;  // heartbeats every ~333 ms
  std::string token;
  std::string tls_cert_file, tls_key_file;  // empty: plaintext
};

// The fake coordinator served on 127.0.0.1.
class FakeCoordinatorServer {
 public:
  explicit FakeCoordinatorServer(const FakeCoordinatorOptions& o)
      : service_(o.lease_seconds, o.token) {
    std::shared_ptr<grpc::ServerCredentials> creds =
        grpc::InsecureServerCredentials();
    if (!o.tls_cert_file.empty()) {
      grpc::SslServerCredentialsOptions ssl;
      ssl.pem_key_cert_pairs.push_back(
          {ReadFile(o.tls_key_file), ReadFile(o.tls_cert_file)});
      creds = grpc::SslServerCredentials(ssl);
    }
    grpc::ServerBuilder builder;
    // The port may be held by a PortPlaceholder (SO_REUSEPORT too).
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 1);
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", o.port), creds, &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~FakeCoordinatorServer() {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  bool ok() const { return server_ != nullptr && port_ > 0; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  FakeCoordinator& service() { return service_; }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  FakeCoordinator service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// A loopback port bound but not listening: connections to it are refused
// (a coordinator that is down) until a server takes the port over.
class PortPlaceholder {
 public:
  PortPlaceholder() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), len) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port_ = ntohs(a.sin_port);
    }
  }
  ~PortPlaceholder() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

std::unique_ptr<WorkerProcess> StartWorker(std::vector<std::string> flags) {
  flags.push_back("--insecure");
  auto w = WorkerProcess::Start(std::move(flags));
  EXPECT_TRUE(w.ok()) << w.status();
  return w.ok() ? *std::move(w) : nullptr;
}

std::unique_ptr<WorkerClient> Client(const std::string& address,
                                     const std::string& token = "") {
  WorkerClientOptions o;
  o.address = address;
  o.insecure = true;
  o.token = token;
  o.max_attempts = 1;
  return *WorkerClient::Create(o);
}

using ::driftscope::testing::SmallSpec;

using ::driftscope::testing::LongWorkerSpec;

// A run of LongWorkerSpec on `address` until Cancel().
class BackgroundRun {
 public:
  explicit BackgroundRun(const std::string& address) {
    thread_ = std::thread([this, address] {
      RunOptions o;
      o.cancel = &cancel_;
      status_ = Client(address)->Run(LongWorkerSpec(), "fp32", o).status();
    });
  }
  ~BackgroundRun() { Cancel().IgnoreError(); }
  absl::Status Cancel() {
    cancel_ = true;
    if (thread_.joinable()) thread_.join();
    return status_;
  }

 private:
  std::atomic<bool> cancel_{false};
  absl::Status status_;
  std::thread thread_;
};

bool HasHeartbeat(FakeCoordinator& c, const std::string& lease,
                  int running_runs, bool draining) {
  for (const v1::HeartbeatRequest& h : c.heartbeats()) {
    if (h.lease_id() == lease && h.running_runs() == running_runs &&
        h.draining() == draining) {
      return true;
    }
  }
  return false;
}

TEST(WorkerRegistrationTest, RegistersItselfAndHeartbeatsItsLoad) {
  FakeCoordinatorServer coordinator({});
  ASSERT_TRUE(coordinator.ok());
  auto worker = StartWorker(
      {"--coordinator=" + coordinator.address(), "--coordinator_insecure",
       "--name=cpu-1", "--default_profile=fp32-sse2", "--max_concurrent_runs=2",
       "--labels=rack=r1,isa=sse2"});
  ASSERT_NE(worker, nullptr);
  FakeCoordinator& c = coordinator.service();
  ASSERT_TRUE(Eventually([&] { return !c.registrations().empty(); }));

  const v1::WorkerInfo info = c.registrations()[0];
  EXPECT_EQ(info.name(), "cpu-1");
  // Listening on 127.0.0.1: that is the address the coordinator dials.
  EXPECT_EQ(info.address(), worker->address());
  auto described = Client(worker->address())->Describe();
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(info.default_profile(), described->default_profile);
  EXPECT_EQ(info.max_concurrent_runs(), 2);
  EXPECT_THAT(info.presets(), Contains("ref64"));
  EXPECT_EQ(info.environment().cpu_model(), described->environment.cpu_model);
  EXPECT_FALSE(info.environment().engine_version().empty());
  EXPECT_THAT(info.labels(), Contains(Pair("rack", "r1")));
  EXPECT_THAT(info.labels(), Contains(Pair("isa", "sse2")));

  // Idle heartbeats on the lease, then one that counts a running run.
  EXPECT_TRUE(Eventually([&] { return HasHeartbeat(c, "lease-1", 0, false); }));
  BackgroundRun run(worker->address());
  EXPECT_TRUE(Eventually([&] { return HasHeartbeat(c, "lease-1", 1, false); }));
  EXPECT_TRUE(absl::IsCancelled(run.Cancel()));
  EXPECT_EQ(c.registrations().size(), 1u);
}

// The worker proves its name with a secret of its own and gives the
// coordinator a token of its own, which it accepts besides --auth_token:
// the coordinator needs no token that would open other workers too. Both
// stay the same when it registers again, and differ between workers.
TEST(WorkerRegistrationTest, GivesItsOwnSecretAndATokenItAccepts) {
  FakeCoordinatorServer coordinator({});
  ASSERT_TRUE(coordinator.ok());
  auto worker = StartWorker({"--coordinator=" + coordinator.address(),
                             "--coordinator_insecure", "--auth_token=w-tok"});
  auto other = StartWorker({"--coordinator=" + coordinator.address(),
                            "--coordinator_insecure", "--auth_token=w-tok"});
  ASSERT_TRUE(worker != nullptr && other != nullptr);
  FakeCoordinator& c = coordinator.service();
  ASSERT_TRUE(Eventually([&] { return c.requests().size() == 2; }));
  const std::vector<v1::RegisterWorkerRequest> r = c.requests();
  const int mine = r[0].worker().address() == worker->address() ? 0 : 1;
  const v1::RegisterWorkerRequest& first = r[mine];
  EXPECT_GE(first.worker_secret().size(), 32u);
  EXPECT_GE(first.worker_token().size(), 32u);
  EXPECT_NE(first.worker_token(), "w-tok");
  EXPECT_NE(first.worker_secret(), r[1 - mine].worker_secret());
  EXPECT_NE(first.worker_token(), r[1 - mine].worker_token());

  EXPECT_TRUE(Client(worker->address(), first.worker_token())->Describe().ok());
  EXPECT_TRUE(Client(worker->address(), "w-tok")->Describe().ok());
  EXPECT_EQ(Client(worker->address(), r[1 - mine].worker_token())
                ->Describe()
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Client(worker->address())->Describe().status().code(),
            absl::StatusCode::kUnauthenticated);

  c.ForgetLeases();  // both register again, with what they sent before
  ASSERT_TRUE(Eventually([&] { return c.requests().size() == 4; }));
  const std::vector<v1::RegisterWorkerRequest> all = c.requests();
  for (size_t i = 2; i < 4; ++i) {
    const v1::RegisterWorkerRequest& again = all[i];
    const v1::RegisterWorkerRequest& before =
        again.worker().address() == first.worker().address() ? first
                                                             : r[1 - mine];
    EXPECT_EQ(again.worker_secret(), before.worker_secret());
    EXPECT_EQ(again.worker_token(), before.worker_token());
  }
}

TEST(WorkerRegistrationTest, RegistersAgainWhenTheLeaseIsLost) {
  FakeCoordinatorServer coordinator({});
  ASSERT_TRUE(coordinator.ok());
  auto worker = StartWorker(
      {"--coordinator=" + coordinator.address(), "--coordinator_insecure"});
  ASSERT_NE(worker, nullptr);
  FakeCoordinator& c = coordinator.service();
  ASSERT_TRUE(Eventually([&] { return HasHeartbeat(c, "lease-1", 0, false); }));

  c.ForgetLeases();  // the next heartbeat gets NOT_FOUND
  ASSERT_TRUE(Eventually([&] { return c.registrations().size() == 2; }));
  EXPECT_TRUE(Eventually([&] { return HasHeartbeat(c, "lease-2", 0, false); }));
  // The same worker, under the default name HOSTNAME:PORT.
  const std::vector<v1::WorkerInfo> r = c.registrations();
  EXPECT_EQ(r[0].SerializeAsString(), r[1].SerializeAsString());
  EXPECT_EQ(
      r[0].name(),
      absl::StrCat(LocalHostName(), ":",
                   worker->address().substr(worker->address().rfind(':') + 1)));
}

TEST(WorkerRegistrationTest, ServesWhileTheCoordinatorIsDownThenRegisters) {
  PortPlaceholder port;
  ASSERT_GT(port.port(), 0);
  auto worker =
      StartWorker({absl::StrCat("--coordinator=127.0.0.1:", port.port()),
                   "--coordinator_insecure"});
  ASSERT_NE(worker, nullptr);
  // Several registration attempts fail meanwhile; the worker serves.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_TRUE(Client(worker->address())->Describe().ok());
  auto run = Client(worker->address())->Run(SmallSpec(), "fp32");
  EXPECT_TRUE(run.ok()) << run.status();

  FakeCoordinatorOptions o;
  o.port = port.port();
  FakeCoordinatorServer coordinator(o);
  ASSERT_TRUE(coordinator.ok());
  FakeCoordinator& c = coordinator.service();
  EXPECT_TRUE(Eventually([&] { return HasHeartbeat(c, "lease-1", 0, false); },
                         std::chrono::seconds(30)));
  EXPECT_EQ(c.registrations().size(), 1u);
}

TEST(WorkerRegistrationTest, SigtermReportsDrainingWhileRunsFinish) {
  FakeCoordinatorServer coordinator({});
  ASSERT_TRUE(coordinator.ok());
  auto worker = StartWorker({"--coordinator=" + coordinator.address(),
                             "--coordinator_insecure", "--grace_period=1s"});
  ASSERT_NE(worker, nullptr);
  FakeCoordinator& c = coordinator.service();
  BackgroundRun run(worker->address());
  ASSERT_TRUE(Eventually([&] { return HasHeartbeat(c, "lease-1", 1, false); }));

  ASSERT_EQ(kill(worker->pid(), SIGTERM), 0);
  // The coordinator hears of the drain while the run still holds its slot.
  EXPECT_TRUE(Eventually([&] { return HasHeartbeat(c, "lease-1", 1, true); }));
  EXPECT_EQ(worker->WaitFor(std::chrono::seconds(20)), 0);
  EXPECT_FALSE(run.Cancel().ok());  // cancelled by the end of the grace
  EXPECT_EQ(c.registrations().size(), 1u);
}

TEST(WorkerRegistrationTest, IdleWorkerReportsDrainingBeforeExiting) {
  FakeCoordinatorServer coordinator({});
  ASSERT_TRUE(coordinator.ok());
  auto worker = StartWorker(
      {"--coordinator=" + coordinator.address(), "--coordinator_insecure"});
  ASSERT_NE(worker, nullptr);
  FakeCoordinator& c = coordinator.service();
  ASSERT_TRUE(Eventually([&] { return HasHeartbeat(c, "lease-1", 0, false); }));
  ASSERT_EQ(kill(worker->pid(), SIGTERM), 0);
  EXPECT_EQ(worker->WaitFor(std::chrono::seconds(20)), 0);
  EXPECT_TRUE(HasHeartbeat(c, "lease-1", 0, true));
}

TEST(WorkerRegistrationTest, TlsAndTokenToTheCoordinator) {
  const std::string dir = ::testing::TempDir() + "/registration_tls";
  ASSERT_TRUE(MakeSelfSignedCert(dir));
  {
    std::ofstream token(dir + "/token");
    token << "s3cret\n";
  }
  FakeCoordinatorOptions o;
  o.token = "s3cret";
  o.tls_cert_file = dir + "/cert.pem";
  o.tls_key_file = dir + "/key.pem";
  FakeCoordinatorServer coordinator(o);
  ASSERT_TRUE(coordinator.ok());
  FakeCoordinator& c = coordinator.service();

  // Without the token: refused again and again, and the worker still serves.
  auto anonymous = StartWorker({"--coordinator=" + coordinator.address(),
                                "--coordinator_tls_ca=" + dir + "/cert.pem"});
  ASSERT_NE(anonymous, nullptr);
  EXPECT_TRUE(Eventually([&] { return c.unauthenticated_calls() >= 2; }));
  EXPECT_TRUE(c.registrations().empty());
  EXPECT_TRUE(Client(anonymous->address())->Describe().ok());

  auto worker = StartWorker({"--coordinator=" + coordinator.address(),
                             "--coordinator_tls_ca=" + dir + "/cert.pem",
                             "--coordinator_token_file=" + dir + "/token"});
  ASSERT_NE(worker, nullptr);
  EXPECT_TRUE(Eventually([&] { return HasHeartbeat(c, "lease-1", 0, false); }));
  ASSERT_EQ(c.registrations().size(), 1u);
  EXPECT_EQ(c.registrations()[0].address(), worker->address());
}

TEST(WorkerRegistrationTest, BadRegistrationFlagsStopTheWorkerAtStart) {
  for (const char* flag :
       {"--labels=gpu", "--labels=a=1,a=2", "--advertise_address=0.0.0.0:7070",
        "--coordinator_token_file=/nonexistent/token",
        "--coordinator_tls_ca=/nonexistent/ca.pem"}) {
    SCOPED_TRACE(flag);
    auto w = WorkerProcess::Start({"--insecure", "--coordinator=127.0.0.1:1",
                                   "--coordinator_insecure", flag});
    EXPECT_FALSE(w.ok());
  }
}

v1::DescribeResponse Description() {
  v1::DescribeResponse d;
  d.set_default_profile("fp32");
  d.add_presets("fp32");
  d.set_max_concurrent_runs(3);
  return d;
}

TEST(BuildWorkerInfoTest, WildcardListenAddressAdvertisesTheHostName) {
  WorkerRegistrationOptions o;
  for (const char* bound : {"0.0.0.0:7070", "[::]:7070", ":7070"}) {
    SCOPED_TRACE(bound);
    auto info = BuildWorkerInfo(o, bound, "node-3", Description());
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->address(), "node-3:7070");
    EXPECT_EQ(info->name(), "node-3:7070");
    EXPECT_EQ(info->max_concurrent_runs(), 3);
  }
  auto info = BuildWorkerInfo(o, "10.0.0.5:7070", "node-3", Description());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->address(), "10.0.0.5:7070");
  o.advertise_address = "worker-0.workers:7070";
  o.name = "gpu-a100-1";
  info = BuildWorkerInfo(o, "0.0.0.0:7070", "node-3", Description());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->address(), "worker-0.workers:7070");
  EXPECT_EQ(info->name(), "gpu-a100-1");
}

TEST(BuildWorkerInfoTest, MalformedLabelsNameTheFlag) {
  WorkerRegistrationOptions o;
  o.labels = {"gpu=a100", "", "=x"};
  auto info = BuildWorkerInfo(o, "127.0.0.1:1", "h", Description());
  EXPECT_TRUE(absl::IsInvalidArgument(info.status()));
  EXPECT_THAT(info.status().message(), HasSubstr("--labels"));
  o.labels = {"gpu=a100", "", "zone=eu=1"};  // the value may hold '='
  info = BuildWorkerInfo(o, "127.0.0.1:1", "h", Description());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->labels(), Contains(Pair("zone", "eu=1")));
}

v1::DescribeResponse GpuDescription() {
  v1::DescribeResponse d = Description();
  d.add_presets("cuda");
  d.add_presets("cuda-cudnn");
  for (const auto& [name, major, minor, mib] :
       {std::tuple<const char*, int, int, int64_t>{"NVIDIA A100-SXM4-80GB", 8,
                                                   0, 81920},
        {"NVIDIA L4", 8, 9, 23034}}) {
    v1::CudaDevice* g = d.mutable_environment()->mutable_cuda()->add_devices();
    g->set_name(name);
    g->set_compute_major(major);
    g->set_compute_minor(minor);
    g->set_memory_bytes(mib << 20);
  }
  return d;
}

TEST(BuildWorkerInfoTest, AGpuWorkerIsLabelledWithItsDevice) {
  WorkerRegistrationOptions o;
  o.cuda_device = 1;
  auto info = BuildWorkerInfo(o, "127.0.0.1:1", "h", GpuDescription());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->labels(), Contains(Pair("gpu", "NVIDIA L4")));
  EXPECT_THAT(info->labels(), Contains(Pair("gpu_index", "1")));
  EXPECT_THAT(info->labels(), Contains(Pair("gpu_cc", "8.9")));
  EXPECT_THAT(info->labels(), Contains(Pair("gpu_memory_mib", "23034")));
  // No --device: GPU 0. --labels wins over a derived label.
  o.cuda_device = -1;
  o.labels = {"gpu=a100-pool"};
  info = BuildWorkerInfo(o, "127.0.0.1:1", "h", GpuDescription());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->labels(), Contains(Pair("gpu", "a100-pool")));
  EXPECT_THAT(info->labels(), Contains(Pair("gpu_cc", "8.0")));
  EXPECT_THAT(info->labels(), Contains(Pair("gpu_memory_mib", "81920")));
}

TEST(BuildWorkerInfoTest, AWorkerWithoutCudaPresetsHasNoGpuLabels) {
  // A GPU the CUDA backend could not open offers no cuda preset: no labels
  // that would draw cuda profiles to it.
  v1::DescribeResponse d = GpuDescription();
  d.clear_presets();
  d.add_presets("fp32");
  auto info =
      BuildWorkerInfo(WorkerRegistrationOptions(), "127.0.0.1:1", "h", d);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->labels().empty());
  EXPECT_TRUE(GpuLabels(d.environment(), 2).empty());  // no such GPU
}

}  // namespace
}  // namespace driftscope
