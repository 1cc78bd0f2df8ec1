// WorkerProcess: a real driftscope-worker started for a test on 127.0.0.1
// port 0, its port read from the first stdout line. Killed (SIGKILL) when
// destroyed unless the test already waited for it. One thread at a time.
#ifndef DRIFTSCOPE_TESTS_SERVER_WORKER_PROCESS_H_
#define DRIFTSCOPE_TESTS_SERVER_WORKER_PROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace driftscope::testing {

inline std::string WorkerBinary() {
  return std::string(DRIFTSCOPE_BINARY_DIR) + "/server/driftscope-worker";
}

class WorkerProcess {
 public:
  // Starts the worker with `flags` (plus --listen=127.0.0.1:0) and waits up
  // to 20 s for "listening on HOST:PORT".
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Start(
      std::vector<std::string> flags) {
    auto w = std::unique_ptr<WorkerProcess>(new WorkerProcess());
    int out[2];
    if (pipe(out) != 0) return absl::InternalError("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null",
                                     O_WRONLY, 0);
    std::vector<std::string> args = {WorkerBinary(), "--listen=127.0.0.1:0"};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&w->pid_, args[0].c_str(), &actions, nullptr,
                               argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    w->stdout_fd_ = out[0];
    if (rc != 0) {
      w->pid_ = -1;
      return absl::InternalError(absl::StrCat("cannot start ", args[0]));
    }
    std::string line;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (line.find('\n') == std::string::npos) {
      pollfd p{w->stdout_fd_, POLLIN, 0};
      const int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(
              deadline - std::chrono::steady_clock::now())
              .count());
      if (left <= 0 || poll(&p, 1, left) <= 0) {
        return absl::DeadlineExceededError("worker did not print its port");
      }
      char buf[256];
      const ssize_t n = read(w->stdout_fd_, buf, sizeof(buf));
      if (n <= 0) {
        return absl::UnavailableError(absl::StrCat(
            "worker exited before listening (exit status ", w->Wait(), ")"));
      }
      line.append(buf, static_cast<size_t>(n));
    }
    line = line.substr(0, line.find('\n'));
    if (!absl::StartsWith(line, "listening on ")) {
      return absl::InternalError(absl::StrCat("unexpected first line: ", line));
    }
    w->address_ = line.substr(13);
    return w;
  }

  ~WorkerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait();
    }
    if (stdout_fd_ >= 0) close(stdout_fd_);
  }

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }

  // Waits for exit; returns the exit code, or 128 + signal.
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
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

 private:
  WorkerProcess() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
};

// Runs the worker with `flags` (plus --listen=127.0.0.1:0) expecting it to
// refuse to start: its exit code (or 128 + signal; -1 when it was still
// running after 20 s and was killed) and what it wrote to stderr.
struct WorkerExit {
  int code = -1;
  std::string err;
};

inline WorkerExit RunWorkerToExit(std::vector<std::string> flags) {
  WorkerExit result;
  int err[2];
  if (pipe(err) != 0) return result;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, err[0]);
  std::vector<std::string> args = {WorkerBinary(), "--listen=127.0.0.1:0"};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0].c_str(), &actions, nullptr,
                             argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(err[1]);
  if (rc != 0) {
    close(err[0]);
    return result;
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    const int left =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                             deadline - std::chrono::steady_clock::now())
                             .count());
    pollfd p{err[0], POLLIN, 0};
    if (left <= 0 || poll(&p, 1, left) <= 0) break;
    char buf[512];
    const ssize_t n = read(err[0], buf, sizeof(buf));
    if (n <= 0) break;  // the worker exited (or closed stderr)
    result.err.append(buf, static_cast<size_t>(n));
  }
  close(err[0]);
  int status = 0;
  // stderr closes an instant before the process can be reaped.
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  result.code =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_SERVER_WORKER_PROCESS_H_
