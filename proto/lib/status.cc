#include "proto/lib/status.h"

#include <errno.h>

#include <iostream>
#include <string>
#include <utility>

#include "absl/strings/cord.h"

namespace driftscope {

// absl::StatusCode and grpc::StatusCode share their numeric values (both are
// the canonical google.rpc.Code), so the conversion is a cast.
grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::string message = RedactServerPaths(status.message());
  if (message != status.message()) {
    std::cerr << program_invocation_short_name << ": " << status << "\n";
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::move(message));
}

std::string RedactServerPaths(absl::string_view message) {
  auto starts_path = [&](size_t i) {
    if (message[i] != '/') return false;
    constexpr absl::string_view kBefore = " \t\n(['\"=,";
    return i == 0 || kBefore.find(message[i - 1]) != absl::string_view::npos;
  };
  auto ends_path = [](char c) {
    constexpr absl::string_view kAfter = " \t\n:,;)]'\"";
    return kAfter.find(c) != absl::string_view::npos;
  };
  std::string out;
  out.reserve(message.size());
  size_t i = 0;
  while (i < message.size()) {
    if (!starts_path(i)) {
      out.push_back(message[i++]);
      continue;
    }
    size_t end = i;
    while (end < message.size() && !ends_path(message[end])) ++end;
    const absl::string_view token = message.substr(i, end - i);
    i = end;
    absl::string_view path = token;
    while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    const size_t last = path.find_last_of('/');
    // One component ("/s", "/"): not taken for a path.
    const absl::string_view kept = last == 0 ? token : path.substr(last + 1);
    out.append(kept.data(), kept.size());
  }
  return out;
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
