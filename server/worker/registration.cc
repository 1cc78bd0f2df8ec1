#include "server/worker/registration.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "driftscope/v1/coordinator.grpc.pb.h"
#include "engine/numerics/profile.h"
#include "proto/lib/status.h"
#include "server/common/security.h"

namespace driftscope {

namespace {

// Used when a coordinator answers with no lease length.
constexpr int kFallbackLeaseSeconds = 30;
// Bound on the heartbeat sent while stopping, so SIGTERM is not held up.
constexpr absl::Duration kFinalHeartbeatDeadline = absl::Seconds(2);

bool IsWildcardHost(absl::string_view host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]" ||
         host == "*";
}

absl::Duration HeartbeatInterval(int lease_seconds) {
  if (lease_seconds <= 0) lease_seconds = kFallbackLeaseSeconds;
  return absl::Seconds(lease_seconds) / 3;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const WorkerRegistrationOptions& o) {
  const bool any_tls = !o.tls_ca_file.empty() || !o.tls_cert_file.empty() ||
                       !o.tls_key_file.empty();
  if (o.insecure) {
    if (any_tls) {
      return absl::InvalidArgumentError(
          "--coordinator_insecure contradicts --coordinator_tls_*: choose "
          "plaintext or TLS for the coordinator channel");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--coordinator_tls_cert and --coordinator_tls_key go together "
        "(the worker's client certificate for mTLS)");
  }
  grpc::SslCredentialsOptions ssl;
  if (!o.tls_ca_file.empty()) {
    absl::StatusOr<std::string> ca =
        ReadTextFile(o.tls_ca_file, "--coordinator_tls_ca");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!o.tls_cert_file.empty()) {
    absl::StatusOr<std::string> cert =
        ReadTextFile(o.tls_cert_file, "--coordinator_tls_cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key =
        ReadTextFile(o.tls_key_file, "--coordinator_tls_key");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

absl::StatusOr<std::string> Token(const WorkerRegistrationOptions& o) {
  if (o.token_file.empty()) return o.token;
  if (!o.token.empty()) {
    return absl::InvalidArgumentError(
        "give --coordinator_token or --coordinator_token_file, not both");
  }
  absl::StatusOr<std::string> text =
      ReadTextFile(o.token_file, "--coordinator_token_file");
  if (!text.ok()) return text.status();
  std::string token(absl::StripAsciiWhitespace(*text));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--coordinator_token_file ", o.token_file, " holds no token"));
  }
  return token;
}

}  // namespace

std::string LocalHostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') {
    return "localhost";
  }
  return buf;
}

std::vector<std::pair<std::string, std::string>> GpuLabels(
    const v1::Environment& env, int device) {
  const int index = std::max(device, 0);
  if (index >= env.cuda().devices_size()) return {};
  const v1::CudaDevice& d = env.cuda().devices(index);
  return {{"gpu", d.name()},
          {"gpu_index", absl::StrCat(index)},
          {"gpu_cc", absl::StrCat(d.compute_major(), ".", d.compute_minor())},
          {"gpu_memory_mib", absl::StrCat(d.memory_bytes() >> 20)}};
}

absl::StatusOr<v1::WorkerInfo> BuildWorkerInfo(
    const WorkerRegistrationOptions& options, absl::string_view bound_address,
    absl::string_view hostname, const v1::DescribeResponse& description) {
  const size_t colon = bound_address.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(bound_address.substr(colon + 1), &port) || port <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address ", bound_address, " has no port"));
  }
  const absl::string_view host = bound_address.substr(0, colon);
  v1::WorkerInfo info;
  info.set_name(options.name.empty() ? absl::StrCat(hostname, ":", port)
                                     : options.name);
  if (!options.advertise_address.empty()) {
    const absl::string_view a = options.advertise_address;
    const size_t c = a.rfind(':');
    if (c == absl::string_view::npos || c + 1 == a.size() ||
        IsWildcardHost(a.substr(0, c))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--advertise_address must be HOST:PORT the coordinator can dial, "
          "got \"",
          a, "\""));
    }
    info.set_address(options.advertise_address);
  } else if (IsWildcardHost(host)) {
    info.set_address(absl::StrCat(hostname, ":", port));
  } else {
    info.set_address(std::string(bound_address));
  }
  *info.mutable_environment() = description.environment();
  info.set_default_profile(description.default_profile());
  *info.mutable_presets() = description.presets();
  info.set_max_concurrent_runs(description.max_concurrent_runs());
  info.set_max_memory_bytes(description.max_memory_bytes());
  for (const std::string& label : options.labels) {
    if (label.empty()) continue;  // "a=b," from a trailing comma
    const size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--labels entries are KEY=VALUE, got \"", label, "\""));
    }
    const std::string key = label.substr(0, eq);
    if (!info.mutable_labels()->insert({key, label.substr(eq + 1)}).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--labels names \"", key, "\" twice"));
    }
  }
  const std::vector<std::string> gpu_presets = Profile::GpuPresetNames();
  const bool offers_gpu = std::any_of(
      info.presets().begin(), info.presets().end(), [&](const std::string& p) {
        return std::find(gpu_presets.begin(), gpu_presets.end(), p) !=
               gpu_presets.end();
      });
  if (offers_gpu) {
    for (auto& [key, value] :
         GpuLabels(description.environment(), options.cuda_device)) {
      info.mutable_labels()->insert({key, value});  // --labels wins
    }
  }
  return info;
}

absl::StatusOr<std::unique_ptr<WorkerRegistration>> WorkerRegistration::Start(
    const WorkerRegistrationOptions& options, absl::string_view bound_address,
    const v1::DescribeResponse& description,
    std::function<int()> running_runs) {
  if (options.coordinator.empty()) {
    return absl::InvalidArgumentError("--coordinator is empty");
  }
  absl::StatusOr<v1::WorkerInfo> info =
      BuildWorkerInfo(options, bound_address, LocalHostName(), description);
  if (!info.ok()) return info.status();
  absl::StatusOr<std::string> token = Token(options);
  if (!token.ok()) return token.status();
  WorkerRegistrationOptions with_secret = options;
  if (with_secret.worker_secret.empty()) {
    with_secret.worker_secret = RandomHex(32);  // 128 bits
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      ChannelCredentials(options);
  if (!creds.ok()) return creds.status();
  grpc::ChannelArguments args;
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  // gRPC's own reconnect backoff grows to 2 minutes by default; a
  // coordinator that comes back should see this worker within max_backoff.
  const int initial_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options.initial_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, initial_ms);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, initial_ms);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options.max_backoff)));
  std::unique_ptr<WorkerRegistration> r(new WorkerRegistration(
      with_secret, *std::move(info), *std::move(token),
      grpc::CreateCustomChannel(options.coordinator, *creds, args),
      std::move(running_runs)));
  r->thread_ = std::thread([p = r.get()] { p->Loop(); });
  return r;
}

WorkerRegistration::WorkerRegistration(const WorkerRegistrationOptions& options,
                                       v1::WorkerInfo info, std::string token,
                                       std::shared_ptr<grpc::Channel> channel,
                                       std::function<int()> running_runs)
    : options_(options),
      info_(std::move(info)),
      token_(std::move(token)),
      channel_(std::move(channel)),
      running_runs_(std::move(running_runs)) {}

WorkerRegistration::~WorkerRegistration() { Stop(); }

void WorkerRegistration::BeginDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  wake_.SignalAll();
}

void WorkerRegistration::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    wake_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

void WorkerRegistration::Log(absl::string_view line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    std::cerr << "driftscope-worker: " << line << std::endl;
  }
}

void WorkerRegistration::Loop() {
  std::string lease_id;
  int lease_seconds = 0;
  absl::Duration backoff = options_.initial_backoff;
  absl::Time next = absl::Now();
  bool draining_sent = false;   // a heartbeat with draining=true was tried
  bool draining_acked = false;  // ... and the coordinator took it
  bool failing = false;         // the last call failed (log streaks once)
  auto failed = [&](absl::string_view what, const absl::Status& s) {
    if (!failing) {
      Log(absl::StrCat(what, " with coordinator ", options_.coordinator,
                       " failed: ", s.ToString(), "; retrying every <= ",
                       absl::FormatDuration(options_.max_backoff)));
    }
    failing = true;
    next = absl::Now() + backoff;
    backoff = std::min(backoff * 2, options_.max_backoff);
  };
  bool draining = false;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto due = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || (draining_ && !draining_sent && !lease_id.empty());
      };
      while (!due() && absl::Now() < next) wake_.WaitWithDeadline(&mu_, next);
      draining = draining_;
      if (stop_) break;
    }
    if (lease_id.empty()) {
      if (draining) {  // a draining worker takes no new runs: stay away
        next = absl::InfiniteFuture();
        continue;
      }
      const absl::Status s = Register(&lease_id, &lease_seconds);
      if (!s.ok()) {
        failed("registration", s);
        continue;
      }
      Log(absl::StrCat("registered with coordinator ", options_.coordinator,
                       " as ", info_.name(), " (", info_.address(), "), lease ",
                       lease_seconds, " s"));
      if (!replaced_labels_.empty()) {
        Log(absl::StrCat("the coordinator set the labels ",
                         absl::StrJoin(replaced_labels_, ", "),
                         " from what this worker reports (Describe) instead "
                         "of --labels"));
      }
    } else {
      const absl::Duration deadline = std::clamp(
          HeartbeatInterval(lease_seconds), absl::Seconds(1), absl::Seconds(5));
      const absl::Status s =
          Heartbeat(lease_id, draining, deadline, &lease_seconds);
      draining_sent = draining_sent || draining;
      if (absl::IsNotFound(s)) {
        Log(absl::StrCat("coordinator ", options_.coordinator,
                         " no longer knows lease ", lease_id,
                         "; registering again"));
        lease_id.clear();
        next = absl::Now();
        continue;
      }
      if (!s.ok()) {
        failed("heartbeat", s);
        continue;
      }
      if (draining && !draining_acked) {
        draining_acked = true;
        Log("coordinator told that this worker is draining");
      }
      if (failing) Log("coordinator reachable again");
    }
    failing = false;
    backoff = options_.initial_backoff;
    next = absl::Now() + HeartbeatInterval(lease_seconds);
  }
  if (!lease_id.empty() && draining && !draining_acked) {
    if (Heartbeat(lease_id, true, kFinalHeartbeatDeadline, &lease_seconds)
            .ok()) {
      Log("coordinator told that this worker is draining");
    }
  }
}

absl::Status WorkerRegistration::Register(std::string* lease_id,
                                          int* lease_seconds) {
  grpc::ClientContext ctx;
  ctx.set_deadline(
      absl::ToChronoTime(absl::Now() + options_.register_deadline));
  if (!token_.empty()) {
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  }
  v1::RegisterWorkerRequest request;
  *request.mutable_worker() = info_;
  request.set_worker_secret(options_.worker_secret);
  request.set_worker_token(options_.worker_token);
  v1::RegisterWorkerResponse response;
  const grpc::Status s = v1::Coordinator::NewStub(channel_)->RegisterWorker(
      &ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  if (response.lease_id().empty()) {
    return absl::InternalError("RegisterWorker returned no lease_id");
  }
  *lease_id = response.lease_id();
  *lease_seconds = response.lease_seconds();
  replaced_labels_.assign(response.replaced_labels().begin(),
                          response.replaced_labels().end());
  return absl::OkStatus();
}

absl::Status WorkerRegistration::Heartbeat(const std::string& lease_id,
                                           bool draining,
                                           absl::Duration deadline,
                                           int* lease_seconds) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  if (!token_.empty()) {
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  }
  v1::HeartbeatRequest request;
  request.set_lease_id(lease_id);
  request.set_running_runs(running_runs_ ? running_runs_() : 0);
  request.set_draining(draining);
  v1::HeartbeatResponse response;
  const grpc::Status s =
      v1::Coordinator::NewStub(channel_)->Heartbeat(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  if (response.lease_seconds() > 0) *lease_seconds = response.lease_seconds();
  return absl::OkStatus();
}

}  // namespace driftscope
