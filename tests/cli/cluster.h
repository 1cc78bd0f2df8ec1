// A driftscope cluster for CLI tests: driftscope-worker daemons (one
// profile each, tests/server/worker_process.h) and a driftscope-coordinator
// (tests/server/coordinator/coordinator_test_util.h) that knows them as
// static workers, all plaintext on 127.0.0.1 port 0, with the store in a
// fresh directory. Everything is killed (SIGKILL) when the Cluster is
// destroyed. One thread at a time.
#ifndef DRIFTSCOPE_TESTS_CLI_CLUSTER_H_
#define DRIFTSCOPE_TESTS_CLI_CLUSTER_H_

#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/cli/cli_test_util.h"
#include "tests/server/coordinator/coordinator_test_util.h"
#include "tests/server/worker_process.h"

namespace driftscope::testing {

class Cluster {
 public:
  // One worker per entry of `profiles` (its --default_profile; more flags
  // for worker i in worker_flags[i]), then the coordinator; waits until it
  // lists every worker as available.
  absl::Status Start(
      const std::vector<std::string>& profiles, const std::string& store_dir,
      const std::vector<std::vector<std::string>>& worker_flags = {}) {
    std::vector<std::string> addresses;
    for (size_t i = 0; i < profiles.size(); ++i) {
      std::vector<std::string> flags = {"--insecure",
                                        "--default_profile=" + profiles[i],
                                        "--grace_period=1s"};
      if (i < worker_flags.size()) {
        flags.insert(flags.end(), worker_flags[i].begin(),
                     worker_flags[i].end());
      }
      auto w = WorkerProcess::Start(flags);
      if (!w.ok()) return w.status();
      addresses.push_back((*w)->address());
      workers_.push_back(*std::move(w));
    }
    coordinator_flags_ = {
        "--insecure", "--worker_insecure", "--store_dir=" + store_dir,
        "--workers=" + absl::StrJoin(addresses, ","), "--grace_period=1s"};
    auto c = CoordinatorProcess::Start(coordinator_flags_);
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

  // kill -9 of the coordinator, then a new one on the same address and
  // store (a crash and a restart, as clients see it).
  absl::Status RestartCoordinator() {
    const std::string address = coordinator_->address();
    coordinator_->Kill9();
    coordinator_.reset();
    std::vector<std::string> flags = coordinator_flags_;
    flags.push_back("--listen=" + address);  // the last --listen wins
    auto c = CoordinatorProcess::Start(flags);
    if (!c.ok()) return c.status();
    coordinator_ = *std::move(c);
    return absl::OkStatus();
  }

  // kill -9 of worker `i` (a host that dies).
  void KillWorker(size_t i) { kill(workers_[i]->pid(), SIGKILL); }

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
  std::vector<std::string> coordinator_flags_;
};

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_CLI_CLUSTER_H_
