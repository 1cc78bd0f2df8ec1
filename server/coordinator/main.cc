// driftscope-coordinator: serves driftscope.v1.Coordinator. Only parses
// flags (those it shares with the worker are in
// server/daemon/daemon_main.cc); CoordinatorServer does the work.
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/time.h"
#include "server/common/signals.h"
#include "server/coordinator/coordinator_server.h"
#include "server/daemon/daemon_main.h"

ABSL_FLAG(std::string, store_dir, "",
          "directory of the durable job store (SQLite database and "
          "content-addressed tensor blobs); created when missing (required)");
ABSL_FLAG(std::vector<std::string>, workers, {},
          "static workers HOST:PORT,...: described at start and every "
          "--probe_interval (workers may also register themselves)");
ABSL_FLAG(int, lease_seconds, 10,
          "lease of a registered worker: one that sends no heartbeat for "
          "this long is UNAVAILABLE and its runs move elsewhere");
ABSL_FLAG(int, max_attempts, 3,
          "failed attempts of one run (worker lost, transient error) before "
          "it ends FAILED");
ABSL_FLAG(absl::Duration, run_deadline, absl::Hours(24),
          "longest one run may take on a worker; it then ends FAILED");
ABSL_FLAG(absl::Duration, placement_timeout, absl::Seconds(60),
          "how long a run waits when no available worker can run it before "
          "it ends FAILED");
ABSL_FLAG(absl::Duration, probe_interval, absl::Seconds(5),
          "how often static --workers are described again");
ABSL_FLAG(int, max_repeats, 100, "largest placement.repeats accepted");
ABSL_FLAG(int, max_runs_per_job, 1000,
          "most runs (workers x profiles x repeats) of one job");
ABSL_FLAG(bool, worker_insecure, false,
          "dial workers in plaintext (otherwise TLS, verified against "
          "--worker_tls_ca or the system roots)");
ABSL_FLAG(std::string, worker_tls_ca, "", "PEM roots to verify workers");
ABSL_FLAG(std::string, worker_tls_cert, "",
          "PEM client certificate presented to workers (mTLS)");
ABSL_FLAG(std::string, worker_tls_key, "", "PEM key of --worker_tls_cert");
ABSL_FLAG(std::string, registration_token, "",
          "bearer token workers register and heartbeat with (their "
          "--coordinator_token); opens nothing else. Required for "
          "self-registration when --auth_token is set");
ABSL_FLAG(std::string, registration_token_file, "",
          "file holding --registration_token (surrounding whitespace "
          "stripped)");
ABSL_FLAG(std::string, worker_auth_token, "",
          "fleet-wide bearer token sent to the static --workers and to "
          "workers that registered with a client certificate (mTLS); other "
          "registered workers are called with the token they gave");
ABSL_FLAG(std::string, worker_auth_token_file, "",
          "file holding --worker_auth_token (surrounding whitespace "
          "stripped)");

int main(int argc, char** argv) {
  driftscope::InitDaemonUsage(
      "driftscope-coordinator --listen=HOST:PORT --store_dir=DIR "
      "(--tls_cert=F --tls_key=F | --insecure) [--workers=HOST:PORT,...] "
      "[flags]\n"
      "Accepts drift jobs, runs them on driftscope workers and reports the "
      "drift between their results. SIGTERM drains and exits 0.");
  absl::ParseCommandLine(argc, argv);
  driftscope::BlockTerminationSignals();

  const driftscope::DaemonFlags d = driftscope::ReadDaemonFlags();
  driftscope::coordinator::CoordinatorServerOptions o;
  o.listen = d.listen;
  o.tls = d.tls;
  o.auth_token = d.auth_token;
  o.auth_token_file = d.auth_token_file;
  o.registration_token = absl::GetFlag(FLAGS_registration_token);
  o.registration_token_file = absl::GetFlag(FLAGS_registration_token_file);
  o.limits.job = d.limits;
  o.store_dir = absl::GetFlag(FLAGS_store_dir);
  for (const std::string& w : absl::GetFlag(FLAGS_workers)) {
    if (!w.empty()) o.workers.push_back(w);
  }
  o.worker_tls.insecure = absl::GetFlag(FLAGS_worker_insecure);
  o.worker_tls.ca_file = absl::GetFlag(FLAGS_worker_tls_ca);
  o.worker_tls.cert_file = absl::GetFlag(FLAGS_worker_tls_cert);
  o.worker_tls.key_file = absl::GetFlag(FLAGS_worker_tls_key);
  o.worker_tls.token = absl::GetFlag(FLAGS_worker_auth_token);
  o.worker_tls.token_file = absl::GetFlag(FLAGS_worker_auth_token_file);
  o.lease = absl::Seconds(absl::GetFlag(FLAGS_lease_seconds));
  o.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  o.run_deadline = absl::GetFlag(FLAGS_run_deadline);
  o.placement_timeout = absl::GetFlag(FLAGS_placement_timeout);
  o.probe_interval = absl::GetFlag(FLAGS_probe_interval);
  o.limits.max_repeats = absl::GetFlag(FLAGS_max_repeats);
  o.limits.max_runs_per_job = absl::GetFlag(FLAGS_max_runs_per_job);

  auto server = driftscope::coordinator::CoordinatorServer::BuildAndStart(o);
  if (!server.ok()) {
    std::cerr << "driftscope-coordinator: " << server.status() << "\n";
    return 1;
  }
  // Runs in flight at the end of the grace period are queued again on the
  // next start.
  return driftscope::ServeUntilSignal("driftscope-coordinator", **server,
                                      d.grace_period);
}
