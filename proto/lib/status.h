// Conversion between absl::Status (used everywhere inside driftscope) and
// grpc::Status, done once at the edge of each service, and the error reasons
// that let a caller act on an error without reading its message. Stateless.
#ifndef DRIFTSCOPE_PROTO_LIB_STATUS_H_
#define DRIFTSCOPE_PROTO_LIB_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace driftscope {

// Converts at a service's edge; the message goes out without server paths
// (RedactServerPaths). When that changes it, the full message is written to
// stderr, the daemon's log, first.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// `message` with every absolute file path ("/srv/store/blobs/ab/cd...", at
// least two components, starting the message or after a space, quote,
// bracket, '=' or ',') cut to its last component: what a daemon tells a
// client must not show the server's file system.
std::string RedactServerPaths(absl::string_view message);

// A machine-readable reason for an error whose code alone is ambiguous.
// Inside the process it rides on the absl::Status as a payload; on the wire
// it is the trailing metadata entry kErrorReasonKey (any gRPC client can
// read it).
inline constexpr char kErrorReasonKey[] = "driftscope-error-reason";
// RESOURCE_EXHAUSTED because every run slot of the worker is taken (not a
// job over its limits): the same run may succeed there a little later.
inline constexpr char kReasonWorkerBusy[] = "worker-busy";
// UNAVAILABLE because the worker is draining (SIGTERM) and takes no new
// runs: not a worker lost under a run.
inline constexpr char kReasonWorkerDraining[] = "worker-draining";

absl::Status WithErrorReason(absl::Status status, absl::string_view reason);
// The reason, or "" when the status has none.
std::string ErrorReason(const absl::Status& status);

}  // namespace driftscope

#endif  // DRIFTSCOPE_PROTO_LIB_STATUS_H_
