#include "server/common/security.h"

#include <grpcpp/security/server_credentials.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace driftscope {

absl::StatusOr<std::string> ReadTextFile(const std::string& path,
                                         absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(what, ": cannot read \"", path, "\""));
  }
  std::ostringstream s;
  s << in.rdbuf();
  if (s.str().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": \"", path, "\" is empty"));
  }
  return s.str();
}

std::string RandomHex(int hex_digits) {
  static absl::Mutex mu(absl::kConstInit);
  static std::random_device* device ABSL_GUARDED_BY(mu) =
      new std::random_device();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(static_cast<size_t>(std::max(hex_digits, 0)));
  absl::MutexLock lock(&mu);
  unsigned bits = 0;
  for (int i = 0; i < hex_digits; ++i) {
    if (i % 8 == 0) bits = (*device)();
    hex.push_back(kHex[bits & 15]);
    bits >>= 4;
  }
  return hex;
}

bool IsLoopbackAddress(absl::string_view address) {
  absl::string_view host = address;
  if (absl::StartsWith(host, "[")) {
    const size_t close = host.find(']');
    host = host.substr(1, close == absl::string_view::npos ? 0 : close - 1);
  } else if (const size_t colon = host.rfind(':');
             colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

namespace {

// InvalidArgument naming the flag and file unless `text` holds a PEM block
// whose label ends with `label` ("CERTIFICATE"; "PRIVATE KEY" also matches
// "RSA PRIVATE KEY" and "EC PRIVATE KEY") with an END line.
absl::Status CheckPem(absl::string_view text, absl::string_view label,
                      absl::string_view flag, absl::string_view file) {
  const size_t begin = text.find("-----BEGIN ");
  const size_t label_at =
      begin == absl::string_view::npos ? begin : text.find(label, begin);
  const bool ok = label_at != absl::string_view::npos &&
                  text.substr(label_at + label.size(), 5) == "-----" &&
                  text.find("-----END ", label_at) != absl::string_view::npos;
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " ", file, " holds no PEM ", label,
                   " (a \"-----BEGIN ... ", label, "-----\" block)"));
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsOptions& options, absl::string_view listen_address,
    std::string* warning) {
  if (options.cert_file.empty()) {
    if (!options.key_file.empty() || !options.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_key and --tls_client_ca need --tls_cert");
    }
    if (!options.insecure) {
      return absl::InvalidArgumentError(
          "no --tls_cert given: pass --tls_cert and --tls_key, or --insecure "
          "to serve plaintext (only do that on a trusted network)");
    }
    *warning = IsLoopbackAddress(listen_address)
                   ? "warning: serving plaintext (--insecure) on loopback"
                   : absl::StrCat("warning: serving plaintext (--insecure) on ",
                                  listen_address,
                                  ", which is not loopback: anyone who can "
                                  "reach it can read results and submit jobs");
    return grpc::InsecureServerCredentials();
  }
  if (options.insecure) {
    return absl::InvalidArgumentError(
        "--insecure contradicts --tls_cert: give one of them");
  }
  if (options.key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert needs --tls_key");
  }
  absl::StatusOr<std::string> cert =
      ReadTextFile(options.cert_file, "--tls_cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadTextFile(options.key_file, "--tls_key");
  if (!key.ok()) return key.status();
  // gRPC only says it cannot listen when it cannot parse them: say which
  // file is wrong here.
  if (absl::Status s =
          CheckPem(*cert, "CERTIFICATE", "--tls_cert", options.cert_file);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckPem(*key, "PRIVATE KEY", "--tls_key", options.key_file);
      !s.ok()) {
    return s;
  }
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!options.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca =
        ReadTextFile(options.client_ca_file, "--tls_client_ca");
    if (!ca.ok()) return ca.status();
    if (absl::Status s = CheckPem(*ca, "CERTIFICATE", "--tls_client_ca",
                                  options.client_ca_file);
        !s.ok()) {
      return s;
    }
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

absl::Status CheckBearerToken(const grpc::ServerContextBase& context,
                              absl::string_view token) {
  if (token.empty()) return absl::OkStatus();
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return absl::UnauthenticatedError(
        "missing \"authorization: Bearer <token>\" metadata");
  }
  const std::string expected = absl::StrCat("Bearer ", token);
  const absl::string_view got(it->second.data(), it->second.size());
  // Length differences are not secret (tokens have a fixed length in
  // practice); the content comparison runs over every byte.
  unsigned diff = got.size() == expected.size() ? 0u : 1u;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(expected[i]) ^
            static_cast<unsigned char>(i < got.size() ? got[i] : 0);
  }
  if (diff != 0) return absl::UnauthenticatedError("wrong bearer token");
  return absl::OkStatus();
}

}  // namespace driftscope
