// driftscope-coordinator: serves driftscope.v1.Coordinator. Only parses
// flags; CoordinatorServer does the work.
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "server/common/signals.h"
#include "server/coordinator/coordinator_server.h"

ABSL_FLAG(std::string, listen, "",
          "HOST:PORT to listen on (required; port 0 picks a free port, "
          "printed as \"listening on HOST:PORT\" on the first stdout line)");
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
ABSL_FLAG(int, max_units, 4096, "largest layer width accepted");
ABSL_FLAG(int, max_timesteps, 100000, "longest sequence accepted");
ABSL_FLAG(int64_t, max_samples, 10000000,
          "most training (and, separately, eval) samples accepted");
ABSL_FLAG(int, max_epochs, 100000, "most epochs accepted");
ABSL_FLAG(double, max_flops, 1e15,
          "largest estimated FLOP count of a job (0: no limit)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: require client certificates it signed (mTLS)");
ABSL_FLAG(bool, insecure, false,
          "serve plaintext; required when no --tls_cert is given");
ABSL_FLAG(std::string, auth_token, "",
          "require \"authorization: Bearer TOKEN\" on every Coordinator call");
ABSL_FLAG(std::string, auth_token_file, "",
          "file holding --auth_token (e.g. a mounted secret; surrounding "
          "whitespace stripped); keeps the token out of the process list");
ABSL_FLAG(bool, worker_insecure, false,
          "dial workers in plaintext (otherwise TLS, verified against "
          "--worker_tls_ca or the system roots)");
ABSL_FLAG(std::string, worker_tls_ca, "", "PEM roots to verify workers");
ABSL_FLAG(std::string, worker_tls_cert, "",
          "PEM client certificate presented to workers (mTLS)");
ABSL_FLAG(std::string, worker_tls_key, "", "PEM key of --worker_tls_cert");
ABSL_FLAG(std::string, worker_auth_token, "",
          "bearer token sent to workers (their --auth_token)");
ABSL_FLAG(std::string, worker_auth_token_file, "",
          "file holding --worker_auth_token (surrounding whitespace "
          "stripped)");
ABSL_FLAG(absl::Duration, grace_period, absl::Seconds(30),
          "on SIGTERM, how long runs in flight may finish before they are "
          "cancelled (they are queued again on the next start)");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "driftscope-coordinator --listen=HOST:PORT --store_dir=DIR "
      "(--tls_cert=F --tls_key=F | --insecure) [--workers=HOST:PORT,...] "
      "[flags]\n"
      "Accepts drift jobs, runs them on driftscope workers and reports the "
      "drift between their results. SIGTERM drains and exits 0.");
  absl::ParseCommandLine(argc, argv);
  driftscope::BlockTerminationSignals();

  driftscope::coordinator::CoordinatorServerOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.store_dir = absl::GetFlag(FLAGS_store_dir);
  for (const std::string& w : absl::GetFlag(FLAGS_workers)) {
    if (!w.empty()) o.workers.push_back(w);
  }
  o.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  o.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  o.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  o.tls.insecure = absl::GetFlag(FLAGS_insecure);
  o.auth_token = absl::GetFlag(FLAGS_auth_token);
  o.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
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
  o.limits.job.max_units = absl::GetFlag(FLAGS_max_units);
  o.limits.job.max_timesteps = absl::GetFlag(FLAGS_max_timesteps);
  o.limits.job.max_samples = absl::GetFlag(FLAGS_max_samples);
  o.limits.job.max_epochs = absl::GetFlag(FLAGS_max_epochs);
  o.limits.job.max_flops = absl::GetFlag(FLAGS_max_flops);

  auto server = driftscope::coordinator::CoordinatorServer::BuildAndStart(o);
  if (!server.ok()) {
    std::cerr << "driftscope-coordinator: " << server.status() << "\n";
    return 1;
  }
  std::cout << "listening on " << (*server)->address() << std::endl;
  if (!(*server)->warning().empty()) std::cerr << (*server)->warning() << "\n";
  const int sig = driftscope::WaitForTerminationSignal();
  std::cerr << "driftscope-coordinator: signal " << sig << ", draining (grace "
            << absl::GetFlag(FLAGS_grace_period) << ")\n";
  (*server)->Drain(absl::GetFlag(FLAGS_grace_period));
  return 0;
}
