#include "server/coordinator/worker_connector.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/lib/environment_convert.h"

namespace driftscope::coordinator {

namespace {

// UNAUTHENTICATED from a worker called with its own registered token: the
// process that registered is gone (see GrpcWorkerConnector).
absl::Status RefusedOwnToken(const WorkerTarget& target,
                             const absl::Status& s) {
  if (target.credential.kind != WorkerCredential::Kind::kOwn ||
      s.code() != absl::StatusCode::kUnauthenticated) {
    return s;
  }
  return absl::UnavailableError(absl::StrCat(
      "the worker at ", target.address,
      " refused the token it registered with (it restarted, or another "
      "process took its address; it must register again): ",
      s.message()));
}

}  // namespace

v1::WorkerInfo WorkerInfoFromDescription(const std::string& name,
                                         const std::string& address,
                                         const WorkerDescription& d) {
  v1::WorkerInfo info;
  info.set_name(name);
  info.set_address(address);
  *info.mutable_environment() = EnvironmentToProto(d.environment);
  info.set_default_profile(d.default_profile);
  for (const std::string& p : d.presets) info.add_presets(p);
  info.set_max_concurrent_runs(std::max(1, d.max_concurrent_runs));
  info.set_max_memory_bytes(d.max_memory_bytes);
  return info;
}

absl::StatusOr<std::shared_ptr<WorkerClient>> GrpcWorkerConnector::Client(
    const WorkerTarget& target) {
  std::string token;
  switch (target.credential.kind) {
    case WorkerCredential::Kind::kNone:
      break;
    case WorkerCredential::Kind::kFleet:
      token = options_.token;
      break;
    case WorkerCredential::Kind::kOwn:
      token = target.credential.token;
      break;
  }
  absl::MutexLock lock(&mu_);
  auto& [client_token, client] = clients_[target.address];
  if (client == nullptr || client_token != token) {
    WorkerClientOptions o;
    o.address = target.address;
    o.insecure = options_.insecure;
    o.tls_root_cert_pem = options_.tls_root_cert_pem;
    o.tls_client_cert_pem = options_.tls_client_cert_pem;
    o.tls_client_key_pem = options_.tls_client_key_pem;
    o.token = token;
    o.describe_deadline = options_.describe_deadline;
    o.run_deadline = options_.run_deadline;
    o.max_attempts = 1;
    absl::StatusOr<std::unique_ptr<WorkerClient>> c = WorkerClient::Create(o);
    if (!c.ok()) {
      clients_.erase(target.address);
      return c.status();
    }
    client = *std::move(c);
    client_token = token;
  }
  return client;
}

absl::StatusOr<WorkerDescription> GrpcWorkerConnector::Describe(
    const WorkerTarget& target) {
  absl::StatusOr<std::shared_ptr<WorkerClient>> client = Client(target);
  if (!client.ok()) return client.status();
  absl::StatusOr<WorkerDescription> d = (*client)->Describe();
  if (!d.ok()) return RefusedOwnToken(target, d.status());
  return d;
}

absl::StatusOr<RunResult> GrpcWorkerConnector::Run(
    const WorkerTarget& target, const JobSpec& spec, const std::string& profile,
    const RunOptions& options, const RemoteRunOptions& remote) {
  absl::StatusOr<std::shared_ptr<WorkerClient>> client = Client(target);
  if (!client.ok()) return client.status();
  absl::StatusOr<RunResult> result =
      (*client)->Run(spec, profile, options, remote);
  if (!result.ok()) return RefusedOwnToken(target, result.status());
  return result;
}

}  // namespace driftscope::coordinator
