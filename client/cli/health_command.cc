// `driftscope health ADDR`: asks a driftscope daemon (worker or coordinator)
// for its health through the standard gRPC health protocol
// (grpc.health.v1.Health/Check), over TLS or plaintext and with the bearer
// token of the other commands, and exits 0 only when it answers SERVING.
// Made for container and Kubernetes exec probes, so that images need no
// separate probe program.
//
// gRPC does not install the health service's generated stubs, so the two
// tiny messages are encoded and decoded here: HealthCheckRequest has the
// service name as field 1 (a string), HealthCheckResponse the status as
// field 1 (an enum: 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN).
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"
#include "client/cli/remote_flags.h"
#include "client/lib/grpc_channel.h"

namespace driftscope::cli {

namespace {

constexpr char kHealthUsage[] =
    R"(Usage: driftscope health HOST:PORT [--service NAME] [--timeout D]
                        [--insecure | --tls-ca FILE [--tls-server-name N]]
                        [--tls-client-cert FILE --tls-client-key FILE]
                        [--token-file FILE | --token T]

Asks a driftscope-worker or driftscope-coordinator for its health with the
standard gRPC health protocol (grpc.health.v1.Health/Check) and prints the
answer: SERVING, NOT_SERVING (a daemon draining after SIGTERM),
SERVICE_UNKNOWN or UNKNOWN. For exec probes in containers and Kubernetes.

  --service NAME    ask about one service ("driftscope.v1.Worker",
                    "driftscope.v1.Coordinator"); default: the whole server
  --timeout D       give up after D (default 5s)
  --insecure        plaintext (a daemon started with --insecure)
  --tls-ca FILE     verify the daemon's certificate against this CA
  --tls-server-name N  the name to verify instead of HOST
  --tls-client-cert FILE, --tls-client-key FILE
                    a client certificate and its key, for a daemon that
                    requires one (--tls_client_ca): e.g. its own, when it
                    allows clientAuth
  --token-file FILE the bearer token (or --token, or $DRIFTSCOPE_TOKEN)

Exit code: 0 SERVING; 1 any other answer or no answer (unreachable, TLS or
token refused); 2 bad input.

)";

std::string HealthRequest(const std::string& service) {
  if (service.empty()) return "";
  std::string out(1, static_cast<char>((1 << 3) | 2));  // field 1, bytes
  for (size_t n = service.size();; n >>= 7) {
    out += static_cast<char>((n & 0x7F) | (n > 0x7F ? 0x80 : 0));
    if (n <= 0x7F) break;
  }
  return out + service;
}

// The status (field 1, varint) of a HealthCheckResponse; other fields are
// skipped as protobuf says.
absl::StatusOr<int> HealthStatusOf(const std::string& bytes) {
  int status = 0;
  size_t i = 0;
  auto varint = [&](uint64_t* v) {
    *v = 0;
    for (int shift = 0; i < bytes.size() && shift < 64; shift += 7) {
      const auto b = static_cast<uint8_t>(bytes[i++]);
      *v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  };
  const absl::Status bad =
      absl::DataLossError("the daemon's HealthCheckResponse is not decodable");
  while (i < bytes.size()) {
    uint64_t key = 0, value = 0;
    if (!varint(&key)) return bad;
    switch (key & 7) {
      case 0:
        if (!varint(&value)) return bad;
        if ((key >> 3) == 1) status = static_cast<int>(value);
        break;
      case 1:
        i += 8;
        break;
      case 2:
        if (!varint(&value) || value > bytes.size() - i) return bad;
        i += value;
        break;
      case 5:
        i += 4;
        break;
      default:
        return bad;
    }
    if (i > bytes.size()) return bad;
  }
  return status;
}

const char* HealthStatusName(int status) {
  switch (status) {
    case 1:
      return "SERVING";
    case 2:
      return "NOT_SERVING";
    case 3:
      return "SERVICE_UNKNOWN";
    default:
      return "UNKNOWN";
  }
}

absl::StatusOr<std::string> CheckOnce(const ChannelOptions& options,
                                      const std::string& service,
                                      absl::Duration timeout) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options);
  if (!channel.ok()) return channel.status();
  grpc::GenericStub stub(*channel);
  grpc::ClientContext ctx;
  PrepareCall(options, timeout, &ctx);
  const std::string request = HealthRequest(service);
  grpc::Slice slice(request);
  grpc::ByteBuffer in(&slice, 1), out;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &in,
                 &out, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) {
    return absl::Status(
        static_cast<absl::StatusCode>(status.error_code()),
        absl::StrCat(options.address, ": ", status.error_message()));
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!out.Dump(&slices).ok()) {
    return absl::DataLossError("unreadable HealthCheckResponse");
  }
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return bytes;
}

}  // namespace

const char* HealthUsage() { return kHealthUsage; }

int HealthCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err) {
  if (PrintUsageIfAsked(args, "health", out)) return kExitOk;
  std::set<std::string> value_flags = RemoteValueFlags();
  value_flags.insert(
      {"service", "timeout", "tls-client-cert", "tls-client-key"});
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(args, value_flags, RemoteSwitchFlags());
  if (!parsed.ok()) return ReportError(err, parsed.status());
  if (parsed->positional.size() != 1) {
    return ReportError(err, absl::InvalidArgumentError(
                                "health takes one address, HOST:PORT of a "
                                "worker or coordinator"));
  }
  absl::Duration timeout = absl::Seconds(5);
  if (auto t = parsed->Get("timeout")) {
    if (!absl::ParseDuration(*t, &timeout) || timeout <= absl::ZeroDuration()) {
      return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                  "--timeout must be a positive duration "
                                  "such as 5s, got '",
                                  *t, "'")));
    }
  }
  const std::string address = parsed->positional[0];
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                "health: the address must be HOST:PORT, got '",
                                address, "'")));
  }
  absl::StatusOr<WorkerClientOptions> options =
      WorkerOptionsFromFlags(*parsed, address);
  if (!options.ok()) return ReportError(err, options.status());
  ChannelOptions channel = *options;
  const std::optional<std::string> cert = parsed->Get("tls-client-cert");
  const std::optional<std::string> key = parsed->Get("tls-client-key");
  if (cert.has_value() != key.has_value()) {
    return ReportError(err, absl::InvalidArgumentError(
                                "--tls-client-cert and --tls-client-key go "
                                "together; give both or neither"));
  }
  if (cert.has_value()) {
    for (const auto& [flag, path, pem] :
         {std::tuple{"--tls-client-cert", *cert, &channel.tls_client_cert_pem},
          std::tuple{"--tls-client-key", *key, &channel.tls_client_key_pem}}) {
      std::ifstream in(path);
      if (!in) {
        return ReportError(
            err, absl::InvalidArgumentError(
                     absl::StrCat(flag, " ", path, ": cannot read the file")));
      }
      std::ostringstream text;
      text << in.rdbuf();
      *pem = text.str();
    }
  }
  absl::StatusOr<std::string> answer =
      CheckOnce(channel, parsed->Get("service").value_or(""), timeout);
  if (!answer.ok()) {
    ReportError(err, answer.status());
    return kExitFailure;  // no answer: unhealthy, whatever the reason
  }
  absl::StatusOr<int> status = HealthStatusOf(*answer);
  if (!status.ok()) {
    ReportError(err, status.status());
    return kExitFailure;
  }
  std::fprintf(out, "%s\n", HealthStatusName(*status));
  std::fflush(out);
  return *status == 1 ? kExitOk : kExitFailure;
}

}  // namespace driftscope::cli
