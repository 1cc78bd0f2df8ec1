// Conversion between absl::Status (used everywhere inside driftscope) and
// grpc::Status, done once at the edge of each service. Stateless.
#ifndef DRIFTSCOPE_SERVER_COMMON_STATUS_H_
#define DRIFTSCOPE_SERVER_COMMON_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace driftscope {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace driftscope

#endif  // DRIFTSCOPE_SERVER_COMMON_STATUS_H_
