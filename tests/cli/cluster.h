// A driftscope cluster for CLI tests: driftscope-worker daemons (one
// profile each, tests/server/worker_process.h) and a driftscope-coordinator
// that knows them as static workers, all plaintext on 127.0.0.1 port 0,
// with the store in a fresh directory. Everything is killed (SIGKILL) when
// the Cluster is destroyed. One thread at a time.
#ifndef DRIFTSCOPE_TESTS_CLI_CLUSTER_H_
#define DRIFTSCOPE_TESTS_CLI_CLUSTER_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/cli/cli_test_util.h"
#include "tests/server/worker_process.h"

namespace driftscope::testing {

// The coordinator daemon; its address from "listening on HOST:PORT".
class CoordinatorProcess {
 public:
  static absl::StatusOr<std::unique_ptr<CoordinatorProcess>> Start(
      std::vector<std::string> flags) {
    auto c = std::unique_ptr<CoordinatorProcess>(new CoordinatorProcess());
    int out[2];
    if (pipe(out) != 0) return absl::InternalError("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null",
                                     O_WRONLY, 0);
    std::vector<std::string> args = {
        std::string(DRIFTSCOPE_BINARY_DIR) + "/server/driftscope-coordinator",
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
        std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (line.find('\n') == std::string::npos) {
      pollfd p{c->stdout_fd_, POLLIN, 0};
      const int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(
              deadline - std::chrono::steady_clock::now())
              .count());
      if (left <= 0 || poll(&p, 1, left) <= 0) {
        return absl::DeadlineExceededError(
            "coordinator did not print its port");
      }
      char buf[256];
      const ssize_t n = read(c->stdout_fd_, buf, sizeof(buf));
      if (n <= 0) return absl::UnavailableError("coordinator exited");
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
      waitpid(pid_, nullptr, 0);
    }
    if (stdout_fd_ >= 0) close(stdout_fd_);
  }

  const std::string& address() const { return address_; }

 private:
  CoordinatorProcess() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
};

class Cluster {
 public:
  // One worker per entry of `profiles` (its --default_profile), then the
  // coordinator; waits until it lists every worker as available.
  absl::Status Start(const std::vector<std::string>& profiles,
                     const std::string& store_dir) {
    std::vector<std::string> addresses;
    for (const std::string& p : profiles) {
      auto w = WorkerProcess::Start(
          {"--insecure", "--default_profile=" + p, "--grace_period=1s"});
      if (!w.ok()) return w.status();
      addresses.push_back((*w)->address());
      workers_.push_back(*std::move(w));
    }
    auto c = CoordinatorProcess::Start(
        {"--insecure", "--worker_insecure", "--store_dir=" + store_dir,
         "--workers=" + absl::StrJoin(addresses, ","), "--grace_period=1s"});
    if (!c.ok()) return c.status();
    coordinator_ = *std::move(c);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      CliResult r =
          RunCli({"workers", "--coordinator", address(), "--insecure"});
      size_t available = 0;
      for (size_t at = r.out.find(" available "); at != std::string::npos;
           at = r.out.find(" available ", at + 1)) {
        ++available;
      }
      if (available == profiles.size()) return absl::OkStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return absl::DeadlineExceededError("the workers never became available");
  }

  const std::string& address() const { return coordinator_->address(); }
  const std::string& worker(size_t i) const { return workers_[i]->address(); }

  // The driftscope command against this coordinator.
  CliResult Cli(std::vector<std::string> args) const {
    args.insert(args.end(), {"--coordinator", address(), "--insecure"});
    return RunCli(args);
  }

 private:
  std::vector<std::unique_ptr<WorkerProcess>> workers_;
  std::unique_ptr<CoordinatorProcess> coordinator_;
};

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_CLI_CLUSTER_H_
