// driftscope-worker: serves driftscope.v1.Worker for this machine's
// environment. Only parses flags (those it shares with the coordinator are in
// server/daemon/daemon_main.cc); WorkerServer does the work.
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/time.h"
#include "engine/job/job_memory.h"
#include "server/common/signals.h"
#include "server/daemon/daemon_main.h"
#include "server/worker/worker_server.h"

ABSL_FLAG(std::string, default_profile, "fp32",
          "profile of runs that name none (preset or knob string)");
ABSL_FLAG(int, max_concurrent_runs, 1,
          "runs executed at once; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int, device, -1,
          "GPU index (as `driftscope env` lists them) this worker runs the "
          "cuda profiles on, and describes in its gpu labels; one worker per "
          "GPU. Default: the index a profile names (cuda = GPU 0)");
ABSL_FLAG(int64_t, max_memory_mib, 0,
          "memory this worker's runs may use together, in MiB; a run whose "
          "estimated peak is above it is refused before any work. 0: 90% of "
          "the machine's memory or of the cgroup's limit");
ABSL_FLAG(absl::Duration, reader_timeout, absl::Seconds(60),
          "a run whose client has read nothing for this long while the run "
          "waits to send more (a client that stopped reading) is cancelled "
          "and its slot freed; inf: never");
ABSL_FLAG(std::string, coordinator, "",
          "coordinator HOST:PORT to register with; heartbeats every "
          "lease/3, re-registers when the lease is lost, retries an "
          "unreachable coordinator without ever stopping the worker");
ABSL_FLAG(std::string, name, "",
          "worker name in the coordinator (default: HOSTNAME:PORT)");
ABSL_FLAG(std::string, advertise_address, "",
          "HOST:PORT the coordinator dials (default: the --listen address, "
          "or HOSTNAME:PORT when it is a wildcard like 0.0.0.0)");
ABSL_FLAG(std::vector<std::string>, labels, {},
          "placement labels KEY=VALUE,... sent to the coordinator "
          "(e.g. gpu=a100,rack=r1)");
ABSL_FLAG(std::string, coordinator_tls_ca, "",
          "PEM CA bundle to verify the coordinator (default: system roots)");
ABSL_FLAG(std::string, coordinator_tls_cert, "",
          "PEM client certificate for a coordinator that requires mTLS");
ABSL_FLAG(std::string, coordinator_tls_key, "",
          "PEM private key of --coordinator_tls_cert");
ABSL_FLAG(std::string, coordinator_tls_server_name, "",
          "name to verify in the coordinator's certificate instead of its "
          "host");
ABSL_FLAG(bool, coordinator_insecure, false,
          "talk plaintext to the coordinator (default: TLS)");
ABSL_FLAG(std::string, coordinator_token, "",
          "bearer token sent to the coordinator (its --registration_token); "
          "the coordinator is given a random token of this worker's in "
          "return, accepted besides --auth_token");
ABSL_FLAG(std::string, coordinator_token_file, "",
          "file holding the bearer token sent to the coordinator");

int main(int argc, char** argv) {
  driftscope::InitDaemonUsage(
      "driftscope-worker --listen=HOST:PORT (--tls_cert=F --tls_key=F | "
      "--insecure) [flags]\n"
      "Runs driftscope jobs in this machine's environment for the "
      "coordinator or any gRPC client. SIGTERM drains and exits 0.");
  absl::ParseCommandLine(argc, argv);
  driftscope::BlockTerminationSignals();

  const driftscope::DaemonFlags d = driftscope::ReadDaemonFlags();
  driftscope::WorkerServerOptions o;
  o.listen = d.listen;
  o.tls = d.tls;
  o.auth_token = d.auth_token;
  o.auth_token_file = d.auth_token_file;
  o.service.limits = d.limits;
  o.service.default_profile = absl::GetFlag(FLAGS_default_profile);
  o.service.max_concurrent_runs = absl::GetFlag(FLAGS_max_concurrent_runs);
  o.service.cuda_device = absl::GetFlag(FLAGS_device);
  o.registration.cuda_device = absl::GetFlag(FLAGS_device);
  const int64_t max_memory_mib = absl::GetFlag(FLAGS_max_memory_mib);
  if (max_memory_mib < 0) {
    std::cerr << "driftscope-worker: --max_memory_mib must be >= 0, got "
              << max_memory_mib << "\n";
    return 2;
  }
  o.service.max_memory_bytes =
      max_memory_mib > 0 ? max_memory_mib * 1024 * 1024
                         : driftscope::AvailableMemoryBytes() / 10 * 9;
  o.reader_timeout = absl::GetFlag(FLAGS_reader_timeout);
  if (o.reader_timeout <= absl::ZeroDuration()) {
    std::cerr << "driftscope-worker: --reader_timeout must be positive, got "
              << absl::FormatDuration(o.reader_timeout) << "\n";
    return 2;
  }
  o.registration.coordinator = absl::GetFlag(FLAGS_coordinator);
  o.registration.name = absl::GetFlag(FLAGS_name);
  o.registration.advertise_address = absl::GetFlag(FLAGS_advertise_address);
  o.registration.labels = absl::GetFlag(FLAGS_labels);
  o.registration.tls_ca_file = absl::GetFlag(FLAGS_coordinator_tls_ca);
  o.registration.tls_cert_file = absl::GetFlag(FLAGS_coordinator_tls_cert);
  o.registration.tls_key_file = absl::GetFlag(FLAGS_coordinator_tls_key);
  o.registration.tls_server_name =
      absl::GetFlag(FLAGS_coordinator_tls_server_name);
  o.registration.insecure = absl::GetFlag(FLAGS_coordinator_insecure);
  o.registration.token = absl::GetFlag(FLAGS_coordinator_token);
  o.registration.token_file = absl::GetFlag(FLAGS_coordinator_token_file);

  auto server = driftscope::WorkerServer::BuildAndStart(o);
  if (!server.ok()) {
    std::cerr << "driftscope-worker: " << server.status() << "\n";
    return 1;
  }
  return driftscope::ServeUntilSignal("driftscope-worker", **server,
                                      d.grace_period);
}
