// WorkerProcess: a real driftscope-worker started for a test (see
// DaemonProcess), and RunWorkerToExit for flags it must refuse. One thread
// at a time.
#ifndef DRIFTSCOPE_TESTS_SERVER_WORKER_PROCESS_H_
#define DRIFTSCOPE_TESTS_SERVER_WORKER_PROCESS_H_

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
#include "tests/server/daemon_process.h"

namespace driftscope::testing {

inline std::string WorkerBinary() {
  return std::string(DRIFTSCOPE_BINARY_DIR) + "/server/driftscope-worker";
}

class WorkerProcess : public DaemonProcess {
 public:
  // Starts the worker with `flags` (plus --listen=127.0.0.1:0) and waits up
  // to 20 s for "listening on HOST:PORT".
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Start(
      std::vector<std::string> flags) {
    auto w = std::unique_ptr<WorkerProcess>(new WorkerProcess());
    const absl::Status s =
        w->Launch(WorkerBinary(), "worker", flags, std::chrono::seconds(20));
    if (!s.ok()) return s;
    return w;
  }

 private:
  WorkerProcess() = default;
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
