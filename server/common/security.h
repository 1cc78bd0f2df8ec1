// Transport security of the daemons (DESIGN §10): TLS or mTLS credentials
// from PEM files, the explicit plaintext opt-in, and bearer-token checks.
// Pure functions, safe for concurrent use.
#ifndef DRIFTSCOPE_SERVER_COMMON_SECURITY_H_
#define DRIFTSCOPE_SERVER_COMMON_SECURITY_H_

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace driftscope {

struct ServerTlsOptions {
  std::string cert_file;       // PEM certificate chain; empty: no TLS
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // PEM CA bundle: when set, clients must
                               // present a certificate it signed (mTLS)
  // Plaintext is refused unless this is true (DESIGN §10: "plaintext only
  // when asked for explicitly").
  bool insecure = false;
};

// TLS credentials from the files, or plaintext credentials when no
// certificate is given and `insecure` is set. InvalidArgument naming the
// flag otherwise (missing key, unreadable file, plaintext not asked for).
// `warning` receives a line to log when plaintext is used.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsOptions& options, absl::string_view listen_address,
    std::string* warning);

// Whether the host part of "HOST:PORT" is a loopback address
// (127.0.0.0/8, [::1], localhost).
bool IsLoopbackAddress(absl::string_view address);

// OkStatus when `token` is empty (auth off) or the call carries
// "authorization: Bearer <token>"; Unauthenticated otherwise. The comparison
// takes the same time wherever the first difference is.
absl::Status CheckBearerToken(const grpc::ServerContextBase& context,
                              absl::string_view token);

// `hex_digits` random lowercase hex digits from the system's random device
// (ids, a worker's registration secret and the token it gives the
// coordinator).
std::string RandomHex(int hex_digits);

// The whole contents of a file; NotFound / InvalidArgument naming `what`.
absl::StatusOr<std::string> ReadTextFile(const std::string& path,
                                         absl::string_view what);

}  // namespace driftscope

#endif  // DRIFTSCOPE_SERVER_COMMON_SECURITY_H_
