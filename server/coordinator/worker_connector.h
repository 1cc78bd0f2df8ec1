// WorkerConnector: how the coordinator talks to workers. The scheduler only
// sees this interface, so tests can put a worker that fails on purpose in
// its place; GrpcWorkerConnector is the real one (client/lib WorkerClient:
// tensors reassembled with every chunk's crc32c and every tensor's sha256
// checked). Every call names its worker as a WorkerTarget: the address and
// the credential that worker earned (worker_target.h). Implementations are
// safe for concurrent use.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_WORKER_CONNECTOR_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_WORKER_CONNECTOR_H_

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/lib/worker_client.h"
#include "driftscope/v1/coordinator.pb.h"
#include "server/coordinator/worker_target.h"

namespace driftscope::coordinator {

class WorkerConnector {
 public:
  virtual ~WorkerConnector() = default;
  virtual absl::StatusOr<WorkerDescription> Describe(
      const WorkerTarget& target) = 0;
  // One attempt, no retry: the scheduler decides where a retry goes.
  virtual absl::StatusOr<RunResult> Run(const WorkerTarget& target,
                                        const JobSpec& spec,
                                        const std::string& profile,
                                        const RunOptions& options,
                                        const RemoteRunOptions& remote) = 0;
};

// What the worker `name` at `address` is, from its Describe answer:
// environment, default profile, presets, max_concurrent_runs (at least 1)
// and max_memory_bytes. No labels.
v1::WorkerInfo WorkerInfoFromDescription(const std::string& name,
                                         const std::string& address,
                                         const WorkerDescription& d);

// How the coordinator dials workers (DESIGN §10: TLS, optional mTLS, a
// bearer token; plaintext only when asked for).
struct WorkerDialOptions {
  bool insecure = false;
  std::string tls_root_cert_pem;  // empty: the system roots
  std::string tls_client_cert_pem, tls_client_key_pem;  // mTLS, both or none
  // The fleet-wide token (--worker_auth_token), sent only to targets whose
  // credential is WorkerCredential::Kind::kFleet.
  std::string token;
  absl::Duration describe_deadline = absl::Seconds(5);
  absl::Duration run_deadline = absl::Hours(24);
};

class GrpcWorkerConnector final : public WorkerConnector {
 public:
  explicit GrpcWorkerConnector(WorkerDialOptions options)
      : options_(std::move(options)) {}

  // A worker that refuses the token it gave at registration
  // (UNAUTHENTICATED for a kOwn credential) is no longer the process that
  // registered (it restarted, or something else took its address): that is
  // UNAVAILABLE, like a worker gone, so its runs move on and it is expected
  // to register again.
  absl::StatusOr<WorkerDescription> Describe(
      const WorkerTarget& target) override;
  absl::StatusOr<RunResult> Run(const WorkerTarget& target, const JobSpec& spec,
                                const std::string& profile,
                                const RunOptions& options,
                                const RemoteRunOptions& remote) override;

 private:
  // One client (one channel) per address and token, created on first use;
  // a new token for an address replaces the old client (calls still using
  // it keep it alive).
  absl::StatusOr<std::shared_ptr<WorkerClient>> Client(
      const WorkerTarget& target);

  const WorkerDialOptions options_;
  absl::Mutex mu_;
  std::map<std::string, std::pair<std::string, std::shared_ptr<WorkerClient>>>
      clients_ ABSL_GUARDED_BY(mu_);
};

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_WORKER_CONNECTOR_H_
