// `driftscope health`, the exec probe of the images: against a real worker
// and coordinator (plaintext with a token file, TLS with the CA), against an
// in-process server whose health says NOT_SERVING, and against nothing.
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <signal.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "driftscope/v1/worker.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_util.h"
#include "tests/server/coordinator/coordinator_test_util.h"
#include "tests/server/test_certs.h"
#include "tests/server/worker_process.h"

namespace driftscope::testing {
namespace {

using ::testing::HasSubstr;

TEST(HealthCliTest, WorkerOverPlaintextWithATokenFileIsServing) {
  auto worker = WorkerProcess::Start({"--insecure", "--auth_token=s3cret"});
  ASSERT_TRUE(worker.ok()) << worker.status();
  const std::string token = FreshDir() + "/token";
  WriteFile(token, "s3cret\n");
  CliResult r = RunCli(
      {"health", (*worker)->address(), "--insecure", "--token-file", token});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  // One service by name.
  r = RunCli({"health", (*worker)->address(), "--insecure", "--service",
              "driftscope.v1.Worker"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  // A service the daemon does not serve is not healthy.
  r = RunCli({"health", (*worker)->address(), "--insecure", "--service",
              "no.such.Service"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
}

TEST(HealthCliTest, CoordinatorOverTlsNeedsItsCa) {
  const std::string base = FreshDir();
  const std::string dir = base + "/tls";
  ASSERT_TRUE(MakeSelfSignedCert(dir));
  auto coordinator = CoordinatorProcess::Start(
      {"--store_dir=" + base + "/store", "--tls_cert=" + dir + "/cert.pem",
       "--tls_key=" + dir + "/key.pem"});
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  CliResult r =
      RunCli({"health", (*coordinator)->address(), "--tls-ca",
              dir + "/cert.pem", "--service", "driftscope.v1.Coordinator"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  // Without the CA the certificate is not trusted: unhealthy, and said why.
  r = RunCli({"health", (*coordinator)->address(), "--timeout", "3s"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr((*coordinator)->address()));
  // Plaintext to a TLS port gets no answer either.
  r = RunCli(
      {"health", (*coordinator)->address(), "--insecure", "--timeout", "3s"});
  EXPECT_EQ(r.exit_code, 1);
}

TEST(HealthCliTest, AWorkerRequiringClientCertificatesTakesOne) {
  // As in Kubernetes: the worker asks for client certificates (mTLS) and
  // the probe presents the worker's own, which its CA signed.
  const std::string dir = FreshDir() + "/tls";
  ASSERT_TRUE(MakeSelfSignedCert(dir));
  auto worker = WorkerProcess::Start({"--tls_cert=" + dir + "/cert.pem",
                                      "--tls_key=" + dir + "/key.pem",
                                      "--tls_client_ca=" + dir + "/cert.pem"});
  ASSERT_TRUE(worker.ok()) << worker.status();
  CliResult r =
      RunCli({"health", (*worker)->address(), "--tls-ca", dir + "/cert.pem",
              "--tls-client-cert", dir + "/cert.pem", "--tls-client-key",
              dir + "/key.pem", "--service", "driftscope.v1.Worker"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  r = RunCli({"health", (*worker)->address(), "--tls-ca", dir + "/cert.pem",
              "--timeout", "3s"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  r = RunCli({"health", (*worker)->address(), "--tls-ca", dir + "/cert.pem",
              "--tls-client-cert", dir + "/cert.pem"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--tls-client-key"));
}

TEST(HealthCliTest, NotServingIsUnhealthy) {
  // A server whose health says NOT_SERVING, as a daemon draining after
  // SIGTERM does.
  grpc::EnableDefaultHealthCheckService(true);
  v1::Worker::Service unimplemented;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&unimplemented);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  server->GetHealthCheckService()->SetServingStatus(false);
  const CliResult r =
      RunCli({"health", absl::StrCat("127.0.0.1:", port), "--insecure"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "NOT_SERVING\n");
  server->Shutdown();
}

TEST(HealthCliTest, NoDaemonIsUnhealthyAndNamesTheAddress) {
  auto worker = WorkerProcess::Start({"--insecure"});
  ASSERT_TRUE(worker.ok()) << worker.status();
  const std::string address = (*worker)->address();
  kill((*worker)->pid(), SIGKILL);
  (*worker)->WaitFor(std::chrono::seconds(10));
  const CliResult r =
      RunCli({"health", address, "--insecure", "--timeout", "2s"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(address));
}

TEST(HealthCliTest, BadInputIsExitTwoNamingWhatToFix) {
  CliResult r = RunCli({"health"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("HOST:PORT"));
  r = RunCli({"health", "nohostport", "--insecure"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("nohostport"));
  r = RunCli({"health", "127.0.0.1:1", "--insecure", "--timeout", "soon"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--timeout"));
  r = RunCli({"health", "127.0.0.1:1", "--token-file", "/nonexistent/t"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--token-file"));
}

}  // namespace
}  // namespace driftscope::testing
