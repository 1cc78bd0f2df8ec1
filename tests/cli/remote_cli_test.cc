// The CLI against real worker daemons on loopback: `env --worker`,
// `train --worker` (bit-identical to a local run of the same profile) and
// `compare --workers`.
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_util.h"
#include "tests/server/test_certs.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

// A driftscope-worker on 127.0.0.1:0; its address is read from the first
// line it prints. Killed on destruction.
class Worker {
 public:
  explicit Worker(const std::vector<std::string>& extra) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    std::vector<std::string> argv_s = {DRIFTSCOPE_BINARY_DIR
                                       "/server/driftscope-worker",
                                       "--listen=127.0.0.1:0"};
    bool tls = false;
    for (const std::string& e : extra) tls |= e.rfind("--tls_cert", 0) == 0;
    if (!tls) argv_s.push_back("--insecure");
    argv_s.insert(argv_s.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    FILE* f = ::fdopen(fds[0], "r");
    char line[256] = {};
    if (f != nullptr && std::fgets(line, sizeof(line), f) != nullptr) {
      const std::string s = line;
      const size_t at = s.find("127.0.0.1:");
      if (at != std::string::npos) {
        address_ = s.substr(at, s.find_first_of(" \n", at) - at);
      }
    }
    if (f != nullptr) std::fclose(f);
  }
  ~Worker() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  const std::string& address() const { return address_; }

 private:
  pid_t pid_ = -1;
  std::string address_;
};

constexpr char kSpec[] = R"({"seed": 3,
 "model": {"input": {"timesteps": 5, "features": 1},
           "layers": [{"gru": {"units": 6, "return_sequences": true}}]},
 "optimizer": {"rmsprop": {"learning_rate": 0.01}},
 "data": {"synthetic": {"generator": "RANDOM_WALK", "samples": 48, "eval_samples": 8}},
 "training": {"epochs": 2, "batch_size": 16}})";

TEST(RemoteCliTest, TrainOnAWorkerEqualsTrainingHere) {
  Worker w({});
  ASSERT_FALSE(w.address().empty()) << "worker did not start";
  const std::string dir = FreshDir();
  WriteFile(dir + "/spec.json", kSpec);
  CliResult env = RunCli({"env", "--worker", w.address(), "--insecure"});
  ASSERT_EQ(env.exit_code, 0) << env.err;
  EXPECT_THAT(env.out, HasSubstr("profiles"));
  for (const char* profile : {"fp32", "ref64", "fp32-sse2"}) {
    CliResult remote =
        RunCli({"train", dir + "/spec.json", "--profile", profile, "--worker",
                w.address(), "--insecure", "--out", dir + "/remote"});
    ASSERT_EQ(remote.exit_code, 0) << remote.err;
    CliResult local = RunCli({"train", dir + "/spec.json", "--profile", profile,
                              "--out", dir + "/local"});
    ASSERT_EQ(local.exit_code, 0) << local.err;
    for (const char* f : {"outputs.npy", "losses.npy", "fingerprints.json",
                          "weights/layer0_kernel.npy"}) {
      EXPECT_EQ(ReadFile(dir + "/remote/" + f), ReadFile(dir + "/local/" + f))
          << profile << " " << f;
    }
  }
}

TEST(RemoteCliTest, CompareWorkersReportsTheirDrift) {
  Worker a({}), b({"--default_profile=fp32-sse2"});
  ASSERT_FALSE(a.address().empty());
  ASSERT_FALSE(b.address().empty());
  const std::string dir = FreshDir();
  WriteFile(dir + "/spec.json", kSpec);
  CliResult r = RunCli({"compare", dir + "/spec.json", "--workers",
                        a.address() + "," + b.address(), "--insecure",
                        "--format", "json"});
  ASSERT_NE(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"environment\":\"" + b.address() + "\""));
  EXPECT_THAT(r.out, HasSubstr("\"profile\":\"fp32,isa=x86-64,threads=1\""));
  // Unreachable worker: a clear error naming it, exit 1 (not bad input).
  CliResult down = RunCli(
      {"compare", "--workers", a.address() + ",127.0.0.1:1", "--insecure"});
  EXPECT_NE(down.exit_code, 0);
  EXPECT_THAT(down.err, HasSubstr("127.0.0.1:1"));
  CliResult bad = RunCli(
      {"train", "--worker", "nohostport", "--insecure", "--out", dir + "/x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--worker"));
}

TEST(RemoteCliTest, TokenFromAFile) {
  const std::string dir = FreshDir();
  WriteFile(dir + "/worker.token", "s3cret\n");
  WriteFile(dir + "/right.token", "s3cret\n");
  WriteFile(dir + "/wrong.token", "s3creT\n");
  Worker w({"--auth_token_file=" + dir + "/worker.token"});
  ASSERT_FALSE(w.address().empty()) << "worker did not start";
  auto env = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"env", "--worker", w.address(),
                                     "--insecure"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(args);
  };
  CliResult right = env({"--token-file", dir + "/right.token"});
  EXPECT_EQ(right.exit_code, 0) << right.err;
  EXPECT_THAT(right.out, HasSubstr("profiles"));
  CliResult wrong = env({"--token-file", dir + "/wrong.token"});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_THAT(wrong.err, HasSubstr("bearer token"));
  CliResult missing = env({"--token-file", dir + "/missing.token"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("--token-file"));
  EXPECT_THAT(missing.err, HasSubstr("missing.token"));
  CliResult both =
      env({"--token", "s3cret", "--token-file", dir + "/right.token"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_THAT(both.err, HasSubstr("give one of them"));
  CliResult local = RunCli(
      {"train", "--token-file", dir + "/right.token", "--out", dir + "/out"});
  EXPECT_EQ(local.exit_code, 2);
  EXPECT_THAT(local.err, HasSubstr("need --worker"));
}

// The issue: the CLI had no client-certificate flags, so it could not reach
// a worker that requires mTLS. (--tls-cert was an unknown flag before.)
TEST(RemoteCliTest, ClientCertificateReachesAnMtlsWorker) {
  const std::string dir = FreshDir();
  ASSERT_TRUE(testing::MakeSelfSignedCert(dir));
  Worker w({"--tls_cert=" + dir + "/cert.pem", "--tls_key=" + dir + "/key.pem",
            "--tls_client_ca=" + dir + "/cert.pem"});
  ASSERT_FALSE(w.address().empty()) << "worker did not start";
  const std::vector<std::string> base = {"env", "--worker", w.address(),
                                         "--tls-ca", dir + "/cert.pem"};
  std::vector<std::string> with_cert = base;
  for (const char* a : {"--tls-cert", "cert.pem", "--tls-key", "key.pem"}) {
    with_cert.push_back(a[0] == '-' ? a : dir + "/" + a);
  }
  CliResult ok = RunCli(with_cert);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("profiles"));
  CliResult without = RunCli(base);
  EXPECT_NE(without.exit_code, 0);
  std::vector<std::string> half = base;
  half.push_back("--tls-cert");
  half.push_back(dir + "/cert.pem");
  CliResult half_pair = RunCli(half);
  EXPECT_EQ(half_pair.exit_code, 2);
  EXPECT_THAT(half_pair.err, HasSubstr("--tls-cert and --tls-key"));
}

}  // namespace
}  // namespace driftscope
