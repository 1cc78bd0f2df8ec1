// A gRPC channel to a driftscope daemon (worker or coordinator) with the
// transport security of DESIGN §10: TLS by default (system roots or a given
// CA), optional client certificate (mTLS), plaintext only when asked for,
// and a bearer token plus a deadline on every call. Pure functions; safe
// for concurrent use.
#ifndef DRIFTSCOPE_CLIENT_LIB_GRPC_CHANNEL_H_
#define DRIFTSCOPE_CLIENT_LIB_GRPC_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace driftscope {

struct ChannelOptions {
  std::string address;  // "HOST:PORT"
  // Plaintext must be asked for; otherwise TLS, verified against
  // `tls_root_cert_pem` (PEM text; empty: the system roots).
  bool insecure = false;
  std::string tls_root_cert_pem;
  // mTLS: this client's certificate chain and key (PEM text), both or none.
  std::string tls_client_cert_pem, tls_client_key_pem;
  // Name to verify in the server certificate instead of the address' host.
  std::string tls_server_name;
  // Sent as "authorization: Bearer <token>" when not empty.
  std::string token;
};

// InvalidArgument for an empty address or half an mTLS pair. Connects
// lazily: an unreachable daemon shows up on the first call.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const ChannelOptions& options);

// Sets the deadline (now + `timeout`) and the bearer token of one call.
void PrepareCall(const ChannelOptions& options, absl::Duration timeout,
                 grpc::ClientContext* context);

}  // namespace driftscope

#endif  // DRIFTSCOPE_CLIENT_LIB_GRPC_CHANNEL_H_
