// driftscope-worker: serves driftscope.v1.Worker for this machine's
// environment. Only parses flags; WorkerServer does the work.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "server/common/signals.h"
#include "server/worker/worker_server.h"

ABSL_FLAG(std::string, listen, "",
          "HOST:PORT to listen on (required; port 0 picks a free port, "
          "printed as \"listening on HOST:PORT\" on the first stdout line)");
ABSL_FLAG(std::string, default_profile, "fp32",
          "profile of runs that name none (preset or knob string)");
ABSL_FLAG(int, max_concurrent_runs, 1,
          "runs executed at once; more get RESOURCE_EXHAUSTED");
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
          "require \"authorization: Bearer TOKEN\" on every Worker call "
          "(visible in ps: prefer --auth_token_file)");
ABSL_FLAG(std::string, auth_token_file, "",
          "as --auth_token, the token read from this file (trailing newline "
          "stripped)");
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
          "bearer token sent to the coordinator");
ABSL_FLAG(std::string, coordinator_token_file, "",
          "file holding the bearer token sent to the coordinator");
ABSL_FLAG(absl::Duration, grace_period, absl::Seconds(30),
          "on SIGTERM, how long running jobs may finish before they are "
          "cancelled");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "driftscope-worker --listen=HOST:PORT (--tls_cert=F --tls_key=F | "
      "--insecure) [flags]\n"
      "Runs driftscope jobs in this machine's environment for the "
      "coordinator or any gRPC client. SIGTERM drains and exits 0.");
  absl::ParseCommandLine(argc, argv);
  driftscope::BlockTerminationSignals();

  driftscope::WorkerServerOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  o.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  o.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  o.tls.insecure = absl::GetFlag(FLAGS_insecure);
  o.auth_token = absl::GetFlag(FLAGS_auth_token);
  o.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
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
  o.service.default_profile = absl::GetFlag(FLAGS_default_profile);
  o.service.max_concurrent_runs = absl::GetFlag(FLAGS_max_concurrent_runs);
  o.service.limits.max_units = absl::GetFlag(FLAGS_max_units);
  o.service.limits.max_timesteps = absl::GetFlag(FLAGS_max_timesteps);
  o.service.limits.max_samples = absl::GetFlag(FLAGS_max_samples);
  o.service.limits.max_epochs = absl::GetFlag(FLAGS_max_epochs);
  o.service.limits.max_flops = absl::GetFlag(FLAGS_max_flops);

  auto server = driftscope::WorkerServer::BuildAndStart(o);
  if (!server.ok()) {
    std::cerr << "driftscope-worker: " << server.status() << "\n";
    return 1;
  }
  std::cout << "listening on " << (*server)->address() << std::endl;
  if (!(*server)->warning().empty()) std::cerr << (*server)->warning() << "\n";
  const int sig = driftscope::WaitForTerminationSignal();
  std::cerr << "driftscope-worker: signal " << sig << ", draining (grace "
            << absl::GetFlag(FLAGS_grace_period) << ")\n";
  (*server)->Drain(absl::GetFlag(FLAGS_grace_period));
  return 0;
}
