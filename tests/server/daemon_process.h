// DaemonProcess: a real driftscope daemon (worker or coordinator) started
// for a test on 127.0.0.1 port 0, its address read from the first stdout
// line ("listening on HOST:PORT"), its stderr kept in a file for failure
// messages. Killed (SIGKILL) when destroyed unless the test already waited
// for it. One thread at a time.
#ifndef DRIFTSCOPE_TESTS_SERVER_DAEMON_PROCESS_H_
#define DRIFTSCOPE_TESTS_SERVER_DAEMON_PROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace driftscope::testing {

inline int ExitCodeOf(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class DaemonProcess {
 public:
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  virtual ~DaemonProcess() {
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

  // Waits for exit; returns the exit code, or 128 + signal.
  int Wait() {
    int status = 0;
    if (pid_ <= 0) return -1;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return ExitCodeOf(status);
  }

  // Waits up to `timeout` for exit; -1 while still running.
  int WaitFor(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0 && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return ExitCodeOf(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

  void Kill9() {
    if (pid_ > 0) kill(pid_, SIGKILL);
    Wait();
  }

 protected:
  DaemonProcess() = default;

  // Starts `binary` with --listen=127.0.0.1:0 and `flags`; waits up to
  // `timeout` for its "listening on HOST:PORT" line. `what` names the
  // daemon in errors.
  absl::Status Launch(const std::string& binary, const std::string& what,
                      const std::vector<std::string>& flags,
                      std::chrono::seconds timeout) {
    static int serial = 0;
    // Where gtest's TempDir() points too (no gtest here: benchmarks use it).
    const char* tmp = std::getenv("TEST_TMPDIR");
    stderr_path_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", what, "-",
                                getpid(), "-", serial++, ".stderr");
    int out[2];
    if (pipe(out) != 0) return absl::InternalError("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO,
                                     stderr_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> args = {binary, "--listen=127.0.0.1:0"};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0].c_str(), &actions, nullptr,
                               argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    stdout_fd_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("cannot start ", args[0]));
    }
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (line.find('\n') == std::string::npos) {
      pollfd p{stdout_fd_, POLLIN, 0};
      const int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(
              deadline - std::chrono::steady_clock::now())
              .count());
      if (left <= 0 || poll(&p, 1, left) <= 0) {
        return absl::DeadlineExceededError(
            absl::StrCat(what, " did not print its port: ", Stderr()));
      }
      char buf[256];
      const ssize_t n = read(stdout_fd_, buf, sizeof(buf));
      if (n <= 0) {
        const int status = Wait();
        return absl::UnavailableError(
            absl::StrCat(what, " exited before listening (exit status ", status,
                         "): ", Stderr()));
      }
      line.append(buf, static_cast<size_t>(n));
    }
    line = line.substr(0, line.find('\n'));
    if (!absl::StartsWith(line, "listening on ")) {
      return absl::InternalError(absl::StrCat("unexpected first line: ", line));
    }
    address_ = line.substr(13);
    return absl::OkStatus();
  }

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
  std::string stderr_path_;
};

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_SERVER_DAEMON_PROCESS_H_
