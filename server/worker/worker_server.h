// WorkerServer: the driftscope.v1.Worker gRPC daemon around a WorkerService.
//
// The gRPC layer only authenticates, translates and converts statuses; each
// Run is a RunReactor (run_reactor.h) whose job runs on a JobThreads thread,
// so no gRPC thread ever waits on training. The standard health service
// (grpc.health.v1.Health, "" and "driftscope.v1.Worker") and server
// reflection are on. Drain() is the SIGTERM path: NOT_SERVING, no new runs,
// running runs finish or are cancelled when the grace period ends.
// Thread-safe.
#ifndef DRIFTSCOPE_SERVER_WORKER_WORKER_SERVER_H_
#define DRIFTSCOPE_SERVER_WORKER_WORKER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/security.h"
#include "server/worker/job_threads.h"
#include "server/worker/registration.h"
#include "server/worker/worker_service.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace driftscope {

struct WorkerServerOptions {
  // "HOST:PORT" to listen on; port 0 picks a free port. Required: no
  // default, so a daemon never listens on all interfaces by accident.
  std::string listen;
  ServerTlsOptions tls;
  // When set, every Worker call needs "authorization: Bearer <token>".
  // Health and reflection stay open (probes carry no token).
  std::string auth_token;
  // The token read from this file instead (ReadTokenFile: trailing newline
  // stripped), so it does not show in ps. At most one of the two.
  std::string auth_token_file;
  // Self-registration with a coordinator (registration.coordinator set):
  // registers once serving, heartbeats, reports draining on Drain().
  WorkerRegistrationOptions registration;
  WorkerServiceOptions service;
  // --reader_timeout: a run whose client has read nothing for this long
  // while the run waits to send more is cancelled and its slot freed.
  absl::Duration reader_timeout = absl::Seconds(60);
};

class WorkerServer {
 public:
  // Starts serving. InvalidArgument for bad options (no --listen, TLS files,
  // plaintext not asked for, an unreadable or empty token file, both a
  // token and a token file), Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<WorkerServer>> BuildAndStart(
      const WorkerServerOptions& options);

  ~WorkerServer();  // Drain(zero grace) unless already drained
  WorkerServer(const WorkerServer&) = delete;
  WorkerServer& operator=(const WorkerServer&) = delete;

  // "HOST:PORT" with the port actually bound.
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  // A line to log at start-up (plaintext warning), or "".
  const std::string& warning() const { return warning_; }
  WorkerService& service() { return *service_; }

  // Reports NOT_SERVING and refuses new runs (UNAVAILABLE) while health,
  // reflection and Describe keep answering; waits up to `grace` for the
  // runs in progress, cancels the rest (they stop within one training
  // step), stops the server and returns when every call has ended.
  // Idempotent.
  void Drain(absl::Duration grace);

 private:
  WorkerServer() = default;

  std::unique_ptr<WorkerService> service_;
  std::unique_ptr<JobThreads> job_threads_;  // after the server has stopped
  std::unique_ptr<grpc::Service> grpc_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<WorkerRegistration> registration_;  // null: none asked
  std::string address_;
  std::string warning_;
  int port_ = 0;
  absl::Mutex drain_mu_;
  bool drained_ ABSL_GUARDED_BY(drain_mu_) = false;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_SERVER_WORKER_WORKER_SERVER_H_
