#include "client/cli/remote_flags.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/lib/token_file.h"

namespace driftscope::cli {

const std::set<std::string>& RemoteValueFlags() {
  static const std::set<std::string> flags = {"tls-ca",   "tls-server-name",
                                              "tls-cert", "tls-key",
                                              "token",    "token-file"};
  return flags;
}

const std::set<std::string>& RemoteSwitchFlags() {
  static const std::set<std::string> flags = {"insecure"};
  return flags;
}

namespace {

absl::StatusOr<ChannelOptions> ChannelFromFlags(const ParsedArgs& args,
                                                const std::string& address,
                                                const std::string& flag) {
  ChannelOptions o;
  o.address = address;
  const size_t colon = address.rfind(':');
  if (address.empty() || colon == std::string::npos || colon == 0 ||
      colon + 1 == address.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " must be HOST:PORT, got '", address, "'"));
  }
  o.insecure = args.Has("insecure");
  if (auto ca = args.Get("tls-ca")) {
    if (o.insecure) {
      return absl::InvalidArgumentError(
          "--tls-ca and --insecure contradict each other; choose one");
    }
    std::ifstream in(*ca);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-ca ", *ca, ": cannot read the file"));
    }
    std::ostringstream pem;
    pem << in.rdbuf();
    o.tls_root_cert_pem = pem.str();
  }
  if (auto name = args.Get("tls-server-name")) o.tls_server_name = *name;
  // mTLS: this client's certificate and key, for daemons started with
  // --tls_client_ca.
  const std::optional<std::string> cert = args.Get("tls-cert");
  const std::optional<std::string> key = args.Get("tls-key");
  if (cert.has_value() != key.has_value()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key come together (the client certificate and "
        "its private key)");
  }
  if (cert.has_value()) {
    if (o.insecure) {
      return absl::InvalidArgumentError(
          "--tls-cert and --insecure contradict each other; choose one");
    }
    for (const auto& [flag, path, out] :
         {std::tuple<const char*, const std::string*, std::string*>{
              "--tls-cert", &*cert, &o.tls_client_cert_pem},
          {"--tls-key", &*key, &o.tls_client_key_pem}}) {
      std::ifstream in(*path);
      if (!in) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, " ", *path, ": cannot read the file"));
      }
      std::ostringstream pem;
      pem << in.rdbuf();
      *out = pem.str();
      if (out->find("-----BEGIN ") == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, " ", *path, ": not a PEM file"));
      }
    }
  }
  const std::optional<std::string> token = args.Get("token");
  const std::optional<std::string> token_file = args.Get("token-file");
  if (token.has_value() && token_file.has_value()) {
    return absl::InvalidArgumentError(
        "--token and --token-file: give one of them (the file keeps the "
        "token out of ps)");
  }
  if (token.has_value()) {
    o.token = *token;
  } else if (token_file.has_value()) {
    absl::StatusOr<std::string> t = ReadTokenFile(*token_file, "--token-file");
    if (!t.ok()) return t.status();
    o.token = *std::move(t);
  } else if (const char* env = std::getenv("DRIFTSCOPE_TOKEN")) {
    o.token = env;
  }
  return o;
}

}  // namespace

absl::StatusOr<WorkerClientOptions> WorkerOptionsFromFlags(
    const ParsedArgs& args, const std::string& address) {
  absl::StatusOr<ChannelOptions> c =
      ChannelFromFlags(args, address, "--worker");
  if (!c.ok()) return c.status();
  WorkerClientOptions o;
  o.address = c->address;
  o.insecure = c->insecure;
  o.tls_root_cert_pem = c->tls_root_cert_pem;
  o.tls_server_name = c->tls_server_name;
  o.tls_client_cert_pem = c->tls_client_cert_pem;
  o.tls_client_key_pem = c->tls_client_key_pem;
  o.token = c->token;
  return o;
}

std::set<std::string> CoordinatorValueFlags() {
  std::set<std::string> flags = RemoteValueFlags();
  flags.insert("coordinator");
  return flags;
}

absl::StatusOr<CoordinatorClientOptions> CoordinatorOptionsFromFlags(
    const ParsedArgs& args) {
  std::string address = args.Get("coordinator").value_or("");
  if (address.empty()) {
    const char* env = std::getenv("DRIFTSCOPE_COORDINATOR");
    if (env == nullptr || *env == '\0') {
      return absl::InvalidArgumentError(
          "no coordinator: give --coordinator HOST:PORT or set "
          "$DRIFTSCOPE_COORDINATOR");
    }
    address = env;
  }
  absl::StatusOr<ChannelOptions> c =
      ChannelFromFlags(args, address, "--coordinator");
  if (!c.ok()) return c.status();
  CoordinatorClientOptions o;
  o.channel = *std::move(c);
  return o;
}

absl::StatusOr<std::unique_ptr<CoordinatorClient>> CoordinatorFromFlags(
    const ParsedArgs& args) {
  absl::StatusOr<CoordinatorClientOptions> o =
      CoordinatorOptionsFromFlags(args);
  if (!o.ok()) return o.status();
  return CoordinatorClient::Create(*o);
}

int ReportRemoteError(std::FILE* err, const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
      ReportError(err, absl::Status(status.code(),
                                    absl::StrCat(status.message(),
                                                 " (is a coordinator running "
                                                 "there? check --coordinator "
                                                 "and --insecure/--tls-ca)")));
      return kExitUsage;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      ReportError(err, status);
      return kExitUsage;
    default:
      return ReportError(err, status);
  }
}

}  // namespace driftscope::cli
