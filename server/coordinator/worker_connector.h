// WorkerConnector: how the coordinator talks to workers. The scheduler only
// sees this interface, so tests can put a worker that fails on purpose in
// its place; GrpcWorkerConnector is the real one (client/lib WorkerClient:
// tensors reassembled with every chunk's crc32c and every tensor's sha256
// checked). Implementations are safe for concurrent use.
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

namespace driftscope::coordinator {

class WorkerConnector {
 public:
  virtual ~WorkerConnector() = default;
  virtual absl::StatusOr<WorkerDescription> Describe(
      const std::string& address) = 0;
  // One attempt, no retry: the scheduler decides where a retry goes.
  virtual absl::StatusOr<RunResult> Run(const std::string& address,
                                        const JobSpec& spec,
                                        const std::string& profile,
                                        const RunOptions& options,
                                        const RemoteRunOptions& remote) = 0;
};

// How the coordinator dials workers (DESIGN §10: TLS, optional mTLS, a
// bearer token; plaintext only when asked for).
struct WorkerDialOptions {
  bool insecure = false;
  std::string tls_root_cert_pem;  // empty: the system roots
  std::string tls_client_cert_pem, tls_client_key_pem;  // mTLS, both or none
  std::string token;
  absl::Duration describe_deadline = absl::Seconds(5);
  absl::Duration run_deadline = absl::Hours(24);
};

class GrpcWorkerConnector final : public WorkerConnector {
 public:
  explicit GrpcWorkerConnector(WorkerDialOptions options)
      : options_(std::move(options)) {}

  absl::StatusOr<WorkerDescription> Describe(
      const std::string& address) override;
  absl::StatusOr<RunResult> Run(const std::string& address, const JobSpec& spec,
                                const std::string& profile,
                                const RunOptions& options,
                                const RemoteRunOptions& remote) override;

 private:
  // One client (one channel) per address, created on first use.
  absl::StatusOr<WorkerClient*> Client(const std::string& address);

  const WorkerDialOptions options_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<WorkerClient>> clients_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_WORKER_CONNECTOR_H_
