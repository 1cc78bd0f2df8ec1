// What the main() of driftscope-worker and driftscope-coordinator share: the
// flags both take (the listen address, TLS, the bearer token, the job size
// limits, the drain grace period), defined once in daemon_main.cc, and
// serving until SIGTERM or SIGINT. For the two daemons' main.cc only: it
// defines command-line flags, which no library should.
#ifndef DRIFTSCOPE_SERVER_DAEMON_DAEMON_MAIN_H_
#define DRIFTSCOPE_SERVER_DAEMON_DAEMON_MAIN_H_

#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "engine/job/job_limits.h"
#include "server/common/security.h"
#include "server/common/signals.h"

namespace driftscope {

// Sets the usage message and makes --help list this daemon's flags (by
// default absl lists only flags of a file named after the program, which no
// daemon has). Call first in main().
void InitDaemonUsage(const char* usage);

struct DaemonFlags {
  std::string listen;
  ServerTlsOptions tls;
  std::string auth_token, auth_token_file;
  JobLimits limits;
  absl::Duration grace_period;
};

// The values of the shared flags (after absl::ParseCommandLine).
DaemonFlags ReadDaemonFlags();

// Prints "listening on ADDRESS" as the first line of stdout (tests and
// scripts read it) and the server's warning, if any, to stderr; then waits
// for SIGTERM or SIGINT (BlockTerminationSignals must have run before any
// thread started) and drains the server within `grace`. Returns main's exit
// code: 0. `Server` has address(), warning() and Drain(absl::Duration).
template <typename Server>
int ServeUntilSignal(const char* program, Server& server,
                     absl::Duration grace) {
  std::cout << "listening on " << server.address() << std::endl;
  if (!server.warning().empty()) std::cerr << server.warning() << "\n";
  const int sig = WaitForTerminationSignal();
  std::cerr << program << ": signal " << sig << ", draining (grace " << grace
            << "; a second signal stops at once)\n";
  // An operator who signals again does not want to wait out the grace
  // period: exit now. Runs in flight end as after kill -9 (the coordinator
  // retries them; its own store survives a crash).
  std::thread([program] {
    const int again = WaitForTerminationSignal();
    std::cerr << program << ": signal " << again << " again, stopping now\n";
    std::_Exit(128 + again);
  }).detach();
  server.Drain(grace);
  return 0;
}

}  // namespace driftscope

#endif  // DRIFTSCOPE_SERVER_DAEMON_DAEMON_MAIN_H_
