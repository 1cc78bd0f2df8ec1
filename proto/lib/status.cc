#include "proto/lib/status.h"

#include <string>

#include "absl/strings/cord.h"

namespace driftscope {

// absl::StatusCode and grpc::StatusCode share their numeric values (both are
// the canonical google.rpc.Code), so the conversion is a cast.
grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

namespace {
constexpr char kReasonPayload[] = "driftscope/error-reason";
}  // namespace

absl::Status WithErrorReason(absl::Status status, absl::string_view reason) {
  if (!status.ok()) status.SetPayload(kReasonPayload, absl::Cord(reason));
  return status;
}

std::string ErrorReason(const absl::Status& status) {
  const auto reason = status.GetPayload(kReasonPayload);
  return reason.has_value() ? std::string(*reason) : std::string();
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace driftscope
