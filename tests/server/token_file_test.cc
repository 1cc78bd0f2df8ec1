// Bearer tokens from files: what ReadTokenFile accepts and refuses, and
// driftscope-worker --auth_token_file end to end (the token works, a bad
// file stops the daemon at start-up with the reason).
#include "proto/lib/token_file.h"

#include <sys/stat.h>

#include <fstream>
#include <string>

#include "client/lib/worker_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/worker/worker_server.h"
#include "tests/server/worker_process.h"

namespace driftscope {
namespace {

using ::driftscope::testing::RunWorkerToExit;
using ::driftscope::testing::WorkerProcess;
using ::testing::HasSubstr;

std::string TokenFile(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/token_" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  return path;
}

TEST(TokenFileTest, TrailingNewlineIsNotPartOfTheToken) {
  for (const char* text : {"s3cret", "s3cret\n", "s3cret\r\n", "s3cret \n\n"}) {
    auto t = ReadTokenFile(TokenFile("ok", text), "--auth_token_file");
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(*t, "s3cret");
  }
}

TEST(TokenFileTest, UnreadableEmptyOrMultiLineFileIsAClearError) {
  struct Case {
    std::string path, expect;
  } cases[] = {
      {::testing::TempDir() + "/no_such_token", "No such file"},
      {TokenFile("empty", ""), "holds no token"},
      {TokenFile("blank", " \n\n"), "holds no token"},
      {TokenFile("two_lines", "a\nb\n"), "alone on one line"},
      {::testing::TempDir(), "not a regular file"},
  };
  for (const Case& c : cases) {
    auto t = ReadTokenFile(c.path, "--token-file");
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << c.path;
    EXPECT_THAT(t.status().message(), HasSubstr("--token-file"));
    EXPECT_THAT(t.status().message(), HasSubstr(c.path));
    EXPECT_THAT(t.status().message(), HasSubstr(c.expect));
  }
}

TEST(TokenFileTest, WorkerServerRefusesBadTokenOptionsAtStart) {
  WorkerServerOptions o;
  o.listen = "127.0.0.1:0";
  o.tls.insecure = true;
  o.auth_token_file = TokenFile("empty", "");
  auto s = WorkerServer::BuildAndStart(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("--auth_token_file"));
  o.auth_token_file = TokenFile("ok", "s3cret\n");
  o.auth_token = "s3cret";
  s = WorkerServer::BuildAndStart(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("give one of them"));
}

TEST(TokenFileTest, WorkerTakesItsTokenFromTheFile) {
  auto worker = WorkerProcess::Start(
      {"--insecure", "--auth_token_file=" + TokenFile("worker", "s3cret\n")});
  ASSERT_TRUE(worker.ok()) << worker.status();
  WorkerClientOptions o;
  o.address = (*worker)->address();
  o.insecure = true;
  o.max_attempts = 1;
  EXPECT_EQ((*WorkerClient::Create(o))->Describe().status().code(),
            absl::StatusCode::kUnauthenticated);
  // The newline was the file's, not the token's (and no header carries one:
  // the client refuses it rather than letting gRPC abort).
  o.token = "s3cret\n";
  EXPECT_EQ(WorkerClient::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.token = "s3cret";
  auto d = (*WorkerClient::Create(o))->Describe();
  EXPECT_TRUE(d.ok()) << d.status();
}

TEST(TokenFileTest, WorkerWithAnUnreadableTokenFileDoesNotStart) {
  const std::string missing = ::testing::TempDir() + "/no_such_token";
  const testing::WorkerExit e =
      RunWorkerToExit({"--insecure", "--auth_token_file=" + missing});
  EXPECT_EQ(e.code, 1);
  EXPECT_THAT(e.err, HasSubstr("--auth_token_file"));
  EXPECT_THAT(e.err, HasSubstr(missing));
  const testing::WorkerExit empty = RunWorkerToExit(
      {"--insecure", "--auth_token_file=" + TokenFile("empty", "")});
  EXPECT_EQ(empty.code, 1);
  EXPECT_THAT(empty.err, HasSubstr("holds no token"));
}

}  // namespace
}  // namespace driftscope
