// CoordinatorServer: the driftscope-coordinator daemon (DESIGN §2, §8, §9):
// the store, the worker registry, the scheduler and the
// driftscope.v1.Coordinator gRPC service, started together.
//
// The gRPC layer only authenticates, translates and converts statuses;
// streaming calls (WatchJob, FetchResult) run on their own sync-server
// threads. The standard health service ("" and "driftscope.v1.Coordinator")
// and server reflection are on. Drain() is the SIGTERM path: NOT_SERVING,
// no new calls, runs in flight get the grace period to finish and are then
// cancelled (they are queued again on the next start). Thread-safe.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_COORDINATOR_SERVER_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_COORDINATOR_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/security.h"
#include "server/coordinator/coordinator_service.h"
#include "server/coordinator/job_events.h"
#include "server/coordinator/job_plan.h"
#include "server/coordinator/scheduler.h"
#include "server/coordinator/store.h"
#include "server/coordinator/worker_connector.h"
#include "server/coordinator/worker_registry.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace driftscope::coordinator {

// How the coordinator dials workers, as files (read at start-up).
struct WorkerTlsFiles {
  bool insecure = false;  // plaintext to workers, asked for explicitly
  std::string ca_file;    // PEM roots; empty: the system roots
  std::string cert_file, key_file;  // mTLS client certificate, both or none
  // The fleet-wide token ("authorization: Bearer <token>"), sent only to
  // the static workers and to workers whose registration carried a client
  // certificate; a registered worker that gave its own token gets that.
  std::string token;
  // A file holding `token` (surrounding whitespace stripped); read at
  // start-up. Not together with `token`.
  std::string token_file;
};

struct CoordinatorServerOptions {
  // "HOST:PORT"; port 0 picks a free port. Required (no default address).
  std::string listen;
  ServerTlsOptions tls;
  // When set, every Coordinator call needs "authorization: Bearer <token>"
  // (health and reflection stay open).
  std::string auth_token;
  // A file holding auth_token (surrounding whitespace, e.g. the trailing
  // newline, stripped), read at start-up, e.g. a mounted secret. Not
  // together with auth_token; unreadable or empty: BuildAndStart fails
  // naming --auth_token_file.
  std::string auth_token_file;
  // The token workers register and heartbeat with ("authorization: Bearer
  // <token>"); it opens nothing else, and the client token does not open
  // registration. Empty while auth_token is set: self-registration is
  // refused (PERMISSION_DENIED naming the flag). Must differ from
  // auth_token. `registration_token_file`: the same read from a file.
  std::string registration_token;
  std::string registration_token_file;
  // Directory of the durable store (SQLite + blobs). Required unless
  // `store` is given.
  std::string store_dir;
  // A store to use instead of opening store_dir (tests).
  std::shared_ptr<Store> store;
  // Static workers ("host:port"), described at start and re-probed.
  std::vector<std::string> workers;
  WorkerTlsFiles worker_tls;
  absl::Duration lease = absl::Seconds(10);
  int max_attempts = 3;
  absl::Duration run_deadline = absl::Hours(24);
  absl::Duration placement_timeout = absl::Seconds(60);
  absl::Duration probe_interval = absl::Seconds(5);
  absl::Duration startup_grace = absl::Seconds(-1);  // negative: the lease
  SubmitLimits limits;
  // A connector to use instead of gRPC (tests that inject faults).
  std::shared_ptr<WorkerConnector> connector;
};

class CoordinatorServer {
 public:
  // InvalidArgument for bad options (naming the flag), the store's error
  // when it cannot be opened, Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> BuildAndStart(
      const CoordinatorServerOptions& options);

  ~CoordinatorServer();  // Drain(zero grace) unless already drained
  CoordinatorServer(const CoordinatorServer&) = delete;
  CoordinatorServer& operator=(const CoordinatorServer&) = delete;

  const std::string& address() const { return address_; }
  int port() const { return port_; }
  const std::string& warning() const { return warning_; }
  CoordinatorService& service() { return *service_; }

  // Reports NOT_SERVING, refuses new jobs and ends watches, gives runs in
  // flight up to `grace` (still answering other calls meanwhile), cancels
  // the rest, then stops the server (calls in progress get what is left of
  // `grace`, at least a second) and returns when every call and thread has
  // ended. Idempotent.
  void Drain(absl::Duration grace);

 private:
  CoordinatorServer() = default;

  std::shared_ptr<Store> store_;
  std::shared_ptr<WorkerConnector> connector_;
  std::unique_ptr<WorkerRegistry> registry_;
  std::unique_ptr<JobEventHub> events_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<CoordinatorService> service_;
  std::unique_ptr<grpc::Service> grpc_service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::string warning_;
  int port_ = 0;
  absl::Mutex drain_mu_;
  bool drained_ ABSL_GUARDED_BY(drain_mu_) = false;
};

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_COORDINATOR_SERVER_H_
