#include "server/coordinator/coordinator_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/auth_context.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "driftscope/v1/coordinator.grpc.pb.h"
#include "proto/lib/status.h"
#include "server/coordinator/sqlite_store.h"

namespace driftscope::coordinator {

namespace {

constexpr char kServiceName[] = "driftscope.v1.Coordinator";

// The identity a caller proved with its client certificate (mTLS), or ""
// without one.
std::string PeerIdentity(const grpc::ServerContext& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  std::string identity;
  for (const grpc::string_ref& part : auth->GetPeerIdentity()) {
    if (!identity.empty()) identity += ",";
    identity.append(part.data(), part.size());
  }
  return identity;
}

class CoordinatorGrpcService final : public v1::Coordinator::Service {
 public:
  CoordinatorGrpcService(CoordinatorService* service, std::string token,
                         std::string registration_token)
      : service_(service),
        token_(std::move(token)),
        registration_token_(std::move(registration_token)) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override {
    return Unary(
        context,
        [&] {
          return service_->RegisterWorker(*request, PeerIdentity(*context));
        },
        response, Role::kWorker);
  }
  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override {
    return Unary(
        context, [&] { return service_->Heartbeat(*request); }, response,
        Role::kWorker);
  }
  grpc::Status ListWorkers(grpc::ServerContext* context,
                           const v1::ListWorkersRequest*,
                           v1::ListWorkersResponse* response) override {
    return Unary(
        context,
        [&]() -> absl::StatusOr<v1::ListWorkersResponse> {
          return service_->ListWorkers();
        },
        response);
  }
  grpc::Status SubmitJob(grpc::ServerContext* context,
                         const v1::SubmitJobRequest* request,
                         v1::Job* response) override {
    return Unary(
        context, [&] { return service_->SubmitJob(*request); }, response);
  }
  grpc::Status GetJob(grpc::ServerContext* context,
                      const v1::GetJobRequest* request,
                      v1::Job* response) override {
    return Unary(
        context, [&] { return service_->GetJob(request->job_id()); }, response);
  }
  grpc::Status ListJobs(grpc::ServerContext* context,
                        const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override {
    return Unary(
        context, [&] { return service_->ListJobs(*request); }, response);
  }
  grpc::Status CancelJob(grpc::ServerContext* context,
                         const v1::CancelJobRequest* request,
                         v1::Job* response) override {
    return Unary(
        context, [&] { return service_->CancelJob(request->job_id()); },
        response);
  }
  grpc::Status GetReport(grpc::ServerContext* context,
                         const v1::GetReportRequest* request,
                         v1::DriftReport* response) override {
    return Unary(
        context, [&] { return service_->GetReport(*request); }, response);
  }

  grpc::Status WatchJob(grpc::ServerContext* context,
                        const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override {
    if (absl::Status s = CheckRole(*context, Role::kClient); !s.ok()) {
      return ToGrpcStatus(s);
    }
    return ToGrpcStatus(service_->WatchJob(
        request->job_id(), [context] { return context->IsCancelled(); },
        [writer](const v1::JobEvent& e) { return writer->Write(e); }));
  }

  grpc::Status FetchResult(
      grpc::ServerContext* context, const v1::FetchResultRequest* request,
      grpc::ServerWriter<v1::TensorChunk>* writer) override {
    if (absl::Status s = CheckRole(*context, Role::kClient); !s.ok()) {
      return ToGrpcStatus(s);
    }
    return ToGrpcStatus(service_->FetchResult(
        *request, [context] { return context->IsCancelled(); },
        [writer](v1::TensorChunk* c) { return writer->Write(*c); }));
  }

  grpc::Status FetchFingerprints(
      grpc::ServerContext* context, const v1::FetchFingerprintsRequest* request,
      grpc::ServerWriter<v1::FingerprintBatch>* writer) override {
    if (absl::Status s = CheckRole(*context, Role::kClient); !s.ok()) {
      return ToGrpcStatus(s);
    }
    return ToGrpcStatus(service_->FetchFingerprints(
        *request, [context] { return context->IsCancelled(); },
        [writer](const v1::FingerprintBatch& b) { return writer->Write(b); }));
  }

 private:
  // Who may call what: clients (submit, read, cancel) with the client
  // token; workers (register and heartbeat only) with the registration
  // token. Neither token opens the other role's methods.
  enum class Role { kClient, kWorker };

  absl::Status CheckRole(const grpc::ServerContextBase& context,
                         Role role) const {
    const bool registration_token =
        !registration_token_.empty() &&
        CheckBearerToken(context, registration_token_).ok();
    if (role == Role::kClient) {
      if (registration_token && registration_token_ != token_) {
        return absl::PermissionDeniedError(
            "the worker registration token may only register workers and "
            "send heartbeats; clients use the client token");
      }
      return CheckBearerToken(context, token_);
    }
    if (registration_token) return absl::OkStatus();
    if (!registration_token_.empty() || !token_.empty()) {
      if (!token_.empty() && CheckBearerToken(context, token_).ok()) {
        return absl::PermissionDeniedError(
            registration_token_.empty()
                ? "workers cannot register with the client token: the "
                  "coordinator needs --registration_token (or "
                  "--registration_token_file), given to workers as their "
                  "--coordinator_token"
                : "RegisterWorker and Heartbeat need the worker "
                  "registration token, not the client token");
      }
      if (!registration_token_.empty()) {
        return CheckBearerToken(context, registration_token_);
      }
      return CheckBearerToken(context, token_);
    }
    return absl::OkStatus();  // no tokens: auth is off
  }

  template <typename Fn, typename Response>
  grpc::Status Unary(grpc::ServerContext* context, Fn&& fn, Response* response,
                     Role role = Role::kClient) {
    if (absl::Status s = CheckRole(*context, role); !s.ok()) {
      return ToGrpcStatus(s);
    }
    auto result = fn();
    if (!result.ok()) return ToGrpcStatus(result.status());
    *response = *std::move(result);
    return grpc::Status::OK;
  }

  CoordinatorService* const service_;
  const std::string token_;
  const std::string registration_token_;
};

std::string HostPart(const std::string& address) {
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

// `token`, or the contents of `file` with surrounding whitespace (the
// trailing newline of a secret file) stripped.
absl::StatusOr<std::string> ResolveToken(const std::string& token,
                                         const std::string& file,
                                         absl::string_view flag) {
  if (file.empty()) return token;
  const std::string file_flag = absl::StrCat(flag, "_file");
  if (!token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("give ", flag, " or ", file_flag, ", not both"));
  }
  absl::StatusOr<std::string> text = ReadTextFile(file, file_flag);
  if (!text.ok()) return text.status();
  std::string stripped(absl::StripAsciiWhitespace(*text));
  if (stripped.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_flag, " ", file, " holds no token"));
  }
  return stripped;
}

absl::StatusOr<WorkerDialOptions> DialOptions(
    const CoordinatorServerOptions& o) {
  WorkerDialOptions d;
  const WorkerTlsFiles& t = o.worker_tls;
  d.insecure = t.insecure;
  absl::StatusOr<std::string> token =
      ResolveToken(t.token, t.token_file, "--worker_auth_token");
  if (!token.ok()) return token.status();
  d.token = *std::move(token);
  d.run_deadline = o.run_deadline;
  if (t.insecure && (!t.ca_file.empty() || !t.cert_file.empty())) {
    return absl::InvalidArgumentError(
        "--worker_insecure cannot be combined with --worker_tls_ca or "
        "--worker_tls_cert");
  }
  if (t.cert_file.empty() != t.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--worker_tls_cert and --worker_tls_key go together");
  }
  if (!t.ca_file.empty()) {
    absl::StatusOr<std::string> pem =
        ReadTextFile(t.ca_file, "--worker_tls_ca");
    if (!pem.ok()) return pem.status();
    d.tls_root_cert_pem = *pem;
  }
  if (!t.cert_file.empty()) {
    absl::StatusOr<std::string> cert =
        ReadTextFile(t.cert_file, "--worker_tls_cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key =
        ReadTextFile(t.key_file, "--worker_tls_key");
    if (!key.ok()) return key.status();
    d.tls_client_cert_pem = *cert;
    d.tls_client_key_pem = *key;
  }
  return d;
}

absl::Status CheckOptions(const CoordinatorServerOptions& o) {
  if (o.listen.empty()) {
    return absl::InvalidArgumentError(
        "--listen is required, e.g. 127.0.0.1:7000 (port 0: any free port)");
  }
  if (o.store_dir.empty() && o.store == nullptr) {
    return absl::InvalidArgumentError(
        "--store_dir is required: the directory of the job store (created "
        "when missing)");
  }
  if (o.lease < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--lease_seconds must be at least 1, got ",
                     absl::FormatDuration(o.lease)));
  }
  if (o.max_attempts < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_attempts must be at least 1, got ", o.max_attempts));
  }
  if (o.run_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--run_deadline must be positive");
  }
  for (const std::string& w : o.workers) {
    if (w.empty() || w.rfind(':') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--workers: \"", w, "\" is not HOST:PORT"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorServer>>
CoordinatorServer::BuildAndStart(const CoordinatorServerOptions& options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  std::unique_ptr<CoordinatorServer> server(new CoordinatorServer());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      MakeServerCredentials(options.tls, options.listen, &server->warning_);
  if (!creds.ok()) return creds.status();
  absl::StatusOr<WorkerDialOptions> dial = DialOptions(options);
  if (!dial.ok()) return dial.status();
  absl::StatusOr<std::string> auth_token =
      ResolveToken(options.auth_token, options.auth_token_file, "--auth_token");
  if (!auth_token.ok()) return auth_token.status();
  absl::StatusOr<std::string> registration_token =
      ResolveToken(options.registration_token, options.registration_token_file,
                   "--registration_token");
  if (!registration_token.ok()) return registration_token.status();
  if (!registration_token->empty() && *registration_token == *auth_token) {
    return absl::InvalidArgumentError(
        "--registration_token must differ from --auth_token: one credential "
        "per role");
  }

  server->store_ = options.store;
  if (server->store_ == nullptr) {
    SqliteStoreOptions so;
    so.directory = options.store_dir;
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(so);
    if (!store.ok()) {
      return absl::Status(store.status().code(),
                          absl::StrCat("--store_dir ", options.store_dir, ": ",
                                       store.status().message()));
    }
    server->store_ = *std::move(store);
  }
  server->connector_ = options.connector;
  if (server->connector_ == nullptr) {
    server->connector_ = std::make_shared<GrpcWorkerConnector>(*dial);
  }
  WorkerRegistryOptions ro;
  ro.lease = options.lease;
  server->registry_ = std::make_unique<WorkerRegistry>(ro);
  server->events_ = std::make_unique<JobEventHub>();
  SchedulerOptions so;
  so.max_attempts = options.max_attempts;
  so.placement_timeout = options.placement_timeout;
  so.probe_interval = options.probe_interval;
  so.startup_grace = options.startup_grace;
  so.static_workers = options.workers;
  server->scheduler_ = std::make_unique<Scheduler>(
      server->store_.get(), server->registry_.get(), server->connector_.get(),
      server->events_.get(), so);
  if (absl::Status s = server->scheduler_->Start(); !s.ok()) return s;
  CoordinatorServiceOptions co;
  co.limits = options.limits;
  server->service_ = std::make_unique<CoordinatorService>(
      server->store_.get(), server->registry_.get(), server->scheduler_.get(),
      server->events_.get(), server->connector_.get(), co);
  server->grpc_service_ = std::make_unique<CoordinatorGrpcService>(
      server->service_.get(), *auth_token, *registration_token);

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
  if (grpc::HealthCheckServiceInterface* health =
          server->server_->GetHealthCheckService()) {
    health->SetServingStatus(kServiceName, true);
    health->SetServingStatus(true);
  }
  return server;
}

void CoordinatorServer::Drain(absl::Duration grace) {
  absl::MutexLock lock(&drain_mu_);
  if (drained_) return;
  drained_ = true;
  const absl::Time deadline = absl::Now() + grace;
  // NOT_SERVING first, while the server still answers, so load balancers
  // and probes see the drain; reads, cancels and results keep working while
  // the runs in flight get their grace.
  if (server_ != nullptr) {
    if (grpc::HealthCheckServiceInterface* health =
            server_->GetHealthCheckService()) {
      health->SetServingStatus(false);
    }
  }
  if (service_ != nullptr) service_->BeginDraining();
  if (scheduler_ != nullptr) scheduler_->Shutdown(grace);
  if (server_ != nullptr) {
    server_->Shutdown(
        absl::ToChronoTime(std::max(deadline, absl::Now() + absl::Seconds(1))));
    server_->Wait();
  }
}

CoordinatorServer::~CoordinatorServer() { Drain(absl::ZeroDuration()); }

}  // namespace driftscope::coordinator
