#include "server/worker/worker_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "driftscope/v1/worker.grpc.pb.h"
#include "proto/lib/status.h"
#include "proto/lib/token_file.h"
#include "server/worker/run_reactor.h"

namespace driftscope {

namespace {

constexpr char kServiceName[] = "driftscope.v1.Worker";

// Describe is a plain sync method; Run is served by a RunReactor on the
// callback API, raw (see run_reactor.h for why).
class WorkerGrpcService final
    : public v1::Worker::WithRawCallbackMethod_Run<v1::Worker::Service> {
 public:
  WorkerGrpcService(WorkerService* service, JobThreads* threads,
                    std::string token, std::string coordinator_token,
                    absl::Duration reader_timeout)
      : service_(service),
        threads_(threads),
        token_(std::move(token)),
        coordinator_token_(std::move(coordinator_token)),
        reader_timeout_(reader_timeout) {}

  grpc::Status Describe(grpc::ServerContext* context,
                        const v1::DescribeRequest*,
                        v1::DescribeResponse* response) override {
    if (absl::Status s = CheckToken(*context); !s.ok()) {
      return ToGrpcStatus(s);
    }
    *response = service_->Describe();
    return grpc::Status::OK;
  }

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Run(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override {
    return new RunReactor(context, service_, threads_, *request,
                          ToGrpcStatus(CheckToken(*context)), reader_timeout_);
  }

 private:
  // --auth_token, or the token this worker gave the coordinator it
  // registered with (only that coordinator knows it).
  absl::Status CheckToken(const grpc::ServerContextBase& context) const {
    absl::Status s = CheckBearerToken(context, token_);
    if (!s.ok() && !coordinator_token_.empty() &&
        CheckBearerToken(context, coordinator_token_).ok()) {
      return absl::OkStatus();
    }
    return s;
  }

  WorkerService* const service_;
  JobThreads* const threads_;
  const std::string token_;
  const std::string coordinator_token_;
  const absl::Duration reader_timeout_;
};

std::string HostPart(const std::string& address) {
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::BuildAndStart(
    const WorkerServerOptions& options) {
  if (options.listen.empty()) {
    return absl::InvalidArgumentError(
        "--listen is required, e.g. 127.0.0.1:7070 (port 0: any free port)");
  }
  std::string token = options.auth_token;
  if (!options.auth_token_file.empty()) {
    if (!token.empty()) {
      return absl::InvalidArgumentError(
          "--auth_token and --auth_token_file: give one of them (the file "
          "keeps the token out of ps)");
    }
    absl::StatusOr<std::string> t =
        ReadTokenFile(options.auth_token_file, "--auth_token_file");
    if (!t.ok()) return t.status();
    token = *std::move(t);
  }
  std::unique_ptr<WorkerServer> server(new WorkerServer());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      MakeServerCredentials(options.tls, options.listen, &server->warning_);
  if (!creds.ok()) return creds.status();
  absl::StatusOr<std::unique_ptr<WorkerService>> service =
      WorkerService::Create(options.service);
  if (!service.ok()) return service.status();
  server->service_ = *std::move(service);
  server->job_threads_ = std::make_unique<JobThreads>();
  // A registered worker gives the coordinator a token of its own, so the
  // coordinator never needs a token that opens other workers too.
  WorkerRegistrationOptions registration = options.registration;
  if (!registration.coordinator.empty() && registration.worker_token.empty()) {
    registration.worker_token = RandomHex(32);
  }
  server->grpc_service_ = std::make_unique<WorkerGrpcService>(
      server->service_.get(), server->job_threads_.get(), std::move(token),
      registration.coordinator.empty() ? "" : registration.worker_token,
      options.reader_timeout);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, *creds, &server->port_);
  builder.RegisterService(server->grpc_service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen,
                     options.tls.cert_file.empty()
                         ? " (address in use or not local?)"
                         : " (address in use or not local, or gRPC refused "
                           "the certificate: does --tls_key belong to "
                           "--tls_cert?)"));
  }
  server->address_ = absl::StrCat(HostPart(options.listen), ":", server->port_);
  grpc::HealthCheckServiceInterface* health =
      server->server_->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus(kServiceName, true);
    health->SetServingStatus(true);
  }
  if (!options.registration.coordinator.empty()) {
    WorkerService* service = server->service_.get();
    absl::StatusOr<std::unique_ptr<WorkerRegistration>> started =
        WorkerRegistration::Start(registration, server->address_,
                                  service->Describe(),
                                  [service] { return service->active_runs(); });
    if (!started.ok()) return started.status();
    server->registration_ = *std::move(started);
  }
  return server;
}

void WorkerServer::Drain(absl::Duration grace) {
  absl::MutexLock lock(&drain_mu_);
  if (drained_ || server_ == nullptr) return;
  drained_ = true;
  if (registration_ != nullptr) registration_->BeginDraining();
  const absl::Time deadline = absl::Now() + grace;
  if (grpc::HealthCheckServiceInterface* health =
          server_->GetHealthCheckService()) {
    health->SetServingStatus(false);
  }
  // The server stays up while runs finish, so load balancers and probes
  // see NOT_SERVING and clients a clear UNAVAILABLE instead of a refused
  // connection.
  service_->StopAccepting();
  service_->WaitUntilIdle(deadline);
  // Past the deadline Shutdown cancels what is still running; with no run
  // left, other calls (Describe, health) get a moment to complete.
  server_->Shutdown(
      absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Seconds(1))));
  server_->Wait();
  if (registration_ != nullptr) registration_->Stop();
}

WorkerServer::~WorkerServer() { Drain(absl::ZeroDuration()); }

}  // namespace driftscope
