#include "server/coordinator/worker_connector.h"

#include <utility>

namespace driftscope::coordinator {

absl::StatusOr<WorkerClient*> GrpcWorkerConnector::Client(
    const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<WorkerClient>& client = clients_[address];
  if (client == nullptr) {
    WorkerClientOptions o;
    o.address = address;
    o.insecure = options_.insecure;
    o.tls_root_cert_pem = options_.tls_root_cert_pem;
    o.tls_client_cert_pem = options_.tls_client_cert_pem;
    o.tls_client_key_pem = options_.tls_client_key_pem;
    o.token = options_.token;
    o.describe_deadline = options_.describe_deadline;
    o.run_deadline = options_.run_deadline;
    o.max_attempts = 1;
    absl::StatusOr<std::unique_ptr<WorkerClient>> c = WorkerClient::Create(o);
    if (!c.ok()) {
      clients_.erase(address);
      return c.status();
    }
    client = *std::move(c);
  }
  return client.get();
}

absl::StatusOr<WorkerDescription> GrpcWorkerConnector::Describe(
    const std::string& address) {
  absl::StatusOr<WorkerClient*> client = Client(address);
  if (!client.ok()) return client.status();
  return (*client)->Describe();
}

absl::StatusOr<RunResult> GrpcWorkerConnector::Run(
    const std::string& address, const JobSpec& spec, const std::string& profile,
    const RunOptions& options, const RemoteRunOptions& remote) {
  absl::StatusOr<WorkerClient*> client = Client(address);
  if (!client.ok()) return client.status();
  return (*client)->Run(spec, profile, options, remote);
}

}  // namespace driftscope::coordinator
