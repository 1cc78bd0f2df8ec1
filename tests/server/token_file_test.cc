// Bearer tokens from files: what ReadTokenFile accepts and refuses, and
// driftscope-worker --auth_token_file end to end (the token works, a bad
// file stops the daemon at start-up with the reason).
#include "proto/lib/token_file.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
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

// A secret stored 0600 by another user, as the daemons' uid 10001 meets a
// host file mounted into a container: PERMISSION_DENIED naming the path,
// the uid and the mode. Run as another user in a child when this is root.
TEST(TokenFileTest, UnreadableForThisUserNamesUidOwnerAndMode) {
  const std::string path = TokenFile("private", "s3cret\n");
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const bool root = ::geteuid() == 0;
  if (!root) {
    ASSERT_EQ(::chmod(path.c_str(), 0), 0);  // not even the owner
  }
  const pid_t pid = root ? ::fork() : 0;
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string answer = "setuid failed";
    if (!root || (::setgid(10001) == 0 && ::setuid(10001) == 0)) {
      auto t = ReadTokenFile(path, "--auth_token_file");
      answer = absl::StrCat(static_cast<int>(t.status().code()), " ",
                            t.status().message());
    }
    ssize_t ignored = ::write(pipe_fds[1], answer.data(), answer.size());
    (void)ignored;
    ::close(pipe_fds[1]);
    if (root) ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string answer;
  char buf[512];
  for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0;) {
    answer.append(buf, static_cast<size_t>(n));
  }
  ::close(pipe_fds[0]);
  if (root) ::waitpid(pid, nullptr, 0);
  EXPECT_THAT(answer,
              ::testing::StartsWith(absl::StrCat(
                  static_cast<int>(absl::StatusCode::kPermissionDenied), " ")));
  EXPECT_THAT(answer, HasSubstr("--auth_token_file"));
  EXPECT_THAT(answer, HasSubstr(path));
  EXPECT_THAT(answer,
              HasSubstr(root ? "runs as uid 10001 gid 10001"
                             : absl::StrCat("runs as uid ", ::geteuid())));
  EXPECT_THAT(answer, HasSubstr(root ? "mode 0600" : "mode 0000"));
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
