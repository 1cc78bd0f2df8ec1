// Helpers of the coordinator tests: a real driftscope-coordinator process
// on 127.0.0.1 port 0 (its port read from the first stdout line, stderr
// kept in a file for failure messages), a Coordinator stub, small job
// specs and polling helpers. One thread at a time.
#ifndef DRIFTSCOPE_TESTS_SERVER_COORDINATOR_COORDINATOR_TEST_UTIL_H_
#define DRIFTSCOPE_TESTS_SERVER_COORDINATOR_COORDINATOR_TEST_UTIL_H_

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/lib/job_convert.h"
#include "driftscope/v1/coordinator.grpc.pb.h"
#include "engine/job/job_spec.h"

extern char** environ;

namespace driftscope::testing {

inline std::string CoordinatorBinary() {
  return std::string(DRIFTSCOPE_BINARY_DIR) + "/server/driftscope-coordinator";
}

class CoordinatorProcess {
 public:
  // Starts the coordinator with `flags` plus --listen=127.0.0.1:0 and waits
  // up to 30 s for "listening on HOST:PORT".
  static absl::StatusOr<std::unique_ptr<CoordinatorProcess>> Start(
      std::vector<std::string> flags) {
    auto c = std::unique_ptr<CoordinatorProcess>(new CoordinatorProcess());
    static int serial = 0;
    c->stderr_path_ = absl::StrCat(::testing::TempDir(), "/coordinator-",
                                   getpid(), "-", serial++, ".stderr");
    int out[2];
    if (pipe(out) != 0) return absl::InternalError("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO,
                                     c->stderr_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> args = {CoordinatorBinary(),
                                     "--listen=127.0.0.1:0"};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&c->pid_, args[0].c_str(), &actions, nullptr,
                               argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    c->stdout_fd_ = out[0];
    if (rc != 0) {
      c->pid_ = -1;
      return absl::InternalError(absl::StrCat("cannot start ", args[0]));
    }
    std::string line;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (line.find('\n') == std::string::npos) {
      pollfd p{c->stdout_fd_, POLLIN, 0};
      const int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(
              deadline - std::chrono::steady_clock::now())
              .count());
      if (left <= 0 || poll(&p, 1, left) <= 0) {
        return absl::DeadlineExceededError(
            "coordinator did not print its port: " + c->Stderr());
      }
      char buf[256];
      const ssize_t n = read(c->stdout_fd_, buf, sizeof(buf));
      if (n <= 0) {
        const int status = c->Wait();
        return absl::UnavailableError(
            absl::StrCat("coordinator exited before listening (exit status ",
                         status, "): ", c->Stderr()));
      }
      line.append(buf, static_cast<size_t>(n));
    }
    line = line.substr(0, line.find('\n'));
    if (!absl::StartsWith(line, "listening on ")) {
      return absl::InternalError(absl::StrCat("unexpected first line: ", line));
    }
    c->address_ = line.substr(13);
    return c;
  }

  ~CoordinatorProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait();
    }
    if (stdout_fd_ >= 0) close(stdout_fd_);
  }

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }

  // What the process wrote on stderr so far.
  std::string Stderr() const {
    std::ifstream in(stderr_path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  int Wait() {
    int status = 0;
    if (pid_ <= 0) return -1;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // Waits up to `timeout` for exit; -1 while still running.
  int WaitFor(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0 && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

  void Kill9() {
    if (pid_ > 0) kill(pid_, SIGKILL);
    Wait();
  }

 private:
  CoordinatorProcess() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
  std::string stderr_path_;
};

inline std::unique_ptr<v1::Coordinator::Stub> CoordinatorStub(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> creds = nullptr) {
  if (creds == nullptr) creds = grpc::InsecureChannelCredentials();
  return v1::Coordinator::NewStub(grpc::CreateChannel(address, creds));
}

// A context with a deadline (and a token when given).
inline std::unique_ptr<grpc::ClientContext> Ctx(
    std::chrono::seconds deadline = std::chrono::seconds(30),
    const std::string& token = "") {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + deadline);
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  return ctx;
}

// A job of a few hundred milliseconds: LSTM(8, seq) -> LSTM(4, seq),
// 64 samples, 2 epochs, epoch snapshots.
inline JobSpec TinySpec() {
  JobSpec s = DefaultJobSpec();
  s.model.layers[0].units = 8;
  s.model.layers[1].units = 4;
  s.data.samples = 64;
  s.data.eval_samples = 16;
  s.training.epochs = 2;
  s.training.capture_epoch_outputs = true;
  return s;
}

// A job that trains for minutes unless cancelled or killed.
inline JobSpec LongSpec() {
  JobSpec s = TinySpec();
  s.training.epochs = 100000;
  s.training.capture_epoch_outputs = false;
  return s;
}

// A job of about `seconds` seconds on an idle machine (LSTM(128) ->
// LSTM(64), T=20, 1024 samples: about 0.1 s per epoch), for kills while it
// runs; a few hundred steps, so few fingerprints.
inline JobSpec SecondsSpec(int seconds) {
  JobSpec s = TinySpec();
  s.model.timesteps = 20;
  s.model.layers[0].units = 128;
  s.model.layers[1].units = 64;
  s.data.samples = 1024;
  s.training.epochs = 10 * seconds;
  s.training.capture_epoch_outputs = false;
  return s;
}

// The grpc.health.v1.Health/Check answer of the server at `address` for
// `service` ("" = the server as a whole): 1 SERVING, 2 NOT_SERVING, 0
// UNKNOWN, -1 when the call failed. Hand-encoded: the health protos are not
// installed with gRPC.
inline int HealthStatus(const std::string& address,
                        const std::string& service = "") {
  grpc::GenericStub stub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  std::string request_bytes;
  if (!service.empty()) {
    request_bytes.push_back('\x0a');  // field 1, length-delimited
    request_bytes.push_back(static_cast<char>(service.size()));
    request_bytes += service;
  }
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  if (!done.get_future().get().ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (bytes.empty()) return 0;
  if (bytes.size() == 2 && bytes[0] == '\x08') return bytes[1];
  return -1;
}

// Polls `done` every 20 ms until it holds or `timeout` passes.
template <typename F>
bool Eventually(F done,
                std::chrono::seconds timeout = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

inline bool Terminal(v1::JobState s) {
  return s == v1::JOB_SUCCEEDED || s == v1::JOB_FAILED ||
         s == v1::JOB_CANCELLED;
}

// GetJob until the job is terminal (or `timeout`); the last answer.
inline v1::Job WaitForJob(
    v1::Coordinator::Stub& stub, const std::string& id,
    std::chrono::seconds timeout = std::chrono::seconds(120)) {
  v1::Job job;
  Eventually(
      [&] {
        v1::GetJobRequest req;
        req.set_job_id(id);
        auto ctx = Ctx();
        return stub.GetJob(ctx.get(), req, &job).ok() && Terminal(job.state());
      },
      timeout);
  return job;
}

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_SERVER_COORDINATOR_COORDINATOR_TEST_UTIL_H_
