// Calls to the standard services a daemon serves besides its own:
// grpc.health.v1.Health/Check and the server reflection's list_services.
// Their generated stubs are not installed with gRPC, so the requests are
// encoded and the responses decoded here from the published message
// definitions (health.proto, reflection.proto v1alpha) over a generic stub,
// exactly as any probe or grpcurl sends them. One thread at a time.
#ifndef DRIFTSCOPE_TESTS_SERVER_GRPC_PROBE_H_
#define DRIFTSCOPE_TESTS_SERVER_GRPC_PROBE_H_

#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace driftscope::testing {

// grpc.health.v1.HealthCheckResponse.ServingStatus.
enum HealthStatus { kUnknown = 0, kServing = 1, kNotServing = 2 };

inline std::shared_ptr<grpc::Channel> PlaintextChannel(
    const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

// One length-delimited protobuf field (a string or a sub-message).
inline std::string LengthDelimitedField(int number, const std::string& bytes) {
  std::string out(1, static_cast<char>((number << 3) | 2));
  for (size_t n = bytes.size(); true; n >>= 7) {
    out += static_cast<char>((n & 0x7F) | (n > 0x7F ? 0x80 : 0));
    if (n <= 0x7F) break;
  }
  return out + bytes;
}

namespace probe_internal {

inline grpc::ByteBuffer ToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

inline std::string FromBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

// Waits for `tag` on `cq`; false when the operation failed.
inline bool Await(grpc::CompletionQueue* cq, void* tag) {
  void* got = nullptr;
  bool ok = false;
  return cq->Next(&got, &ok) && got == tag && ok;
}

inline void Drain(grpc::CompletionQueue* cq) {
  cq->Shutdown();
  void* tag;
  bool ok;
  while (cq->Next(&tag, &ok)) {
  }
}

inline absl::Status ToAbsl(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

}  // namespace probe_internal

// A unary call with serialized request and response messages.
inline absl::StatusOr<std::string> UnaryCall(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
    const std::string& request) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  grpc::ByteBuffer response;
  grpc::Status status;
  {
    auto call = stub.PrepareUnaryCall(&ctx, method,
                                      probe_internal::ToBuffer(request), &cq);
    call->StartCall();
    call->Finish(&response, &status, &status);
    probe_internal::Await(&cq, &status);
  }
  probe_internal::Drain(&cq);
  if (!status.ok()) return probe_internal::ToAbsl(status);
  return probe_internal::FromBuffer(response);
}

// grpc.health.v1.Health/Check for `service` ("" = the whole server).
inline absl::StatusOr<HealthStatus> CheckHealth(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  absl::StatusOr<std::string> r =
      UnaryCall(channel, "/grpc.health.v1.Health/Check",
                service.empty() ? "" : LengthDelimitedField(1, service));
  if (!r.ok()) return r.status();
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(*r)) {
    return absl::DataLossError("undecodable HealthCheckResponse");
  }
  HealthStatus status = kUnknown;
  for (int i = 0; i < fields.field_count(); ++i) {
    const google::protobuf::UnknownField& f = fields.field(i);
    if (f.number() == 1 &&
        f.type() == google::protobuf::UnknownField::TYPE_VARINT) {
      status = static_cast<HealthStatus>(f.varint());
    }
  }
  return status;
}

// The services the server lists through reflection
// (ServerReflectionInfo with list_services).
inline absl::StatusOr<std::vector<std::string>> ReflectedServices(
    const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  grpc::ByteBuffer response;
  grpc::Status status;
  bool read = false;
  {
    auto call = stub.PrepareCall(
        &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        &cq);
    int start, write, writes_done, read_tag;
    call->StartCall(&start);
    if (probe_internal::Await(&cq, &start)) {
      // ServerReflectionRequest { list_services = 7 }
      call->Write(probe_internal::ToBuffer(LengthDelimitedField(7, "")),
                  &write);
      if (probe_internal::Await(&cq, &write)) {
        call->WritesDone(&writes_done);
        if (probe_internal::Await(&cq, &writes_done)) {
          call->Read(&response, &read_tag);
          read = probe_internal::Await(&cq, &read_tag);
        }
      }
    }
    call->Finish(&status, &status);
    probe_internal::Await(&cq, &status);
  }
  probe_internal::Drain(&cq);
  if (!status.ok()) return probe_internal::ToAbsl(status);
  if (!read) return absl::DataLossError("no ServerReflectionResponse");
  // ServerReflectionResponse { list_services_response = 6 {
  //   repeated ServiceResponse service = 1 { string name = 1 } } }
  using google::protobuf::UnknownField;
  using google::protobuf::UnknownFieldSet;
  UnknownFieldSet top;
  if (!top.ParseFromString(probe_internal::FromBuffer(response))) {
    return absl::DataLossError("undecodable ServerReflectionResponse");
  }
  std::vector<std::string> names;
  for (int i = 0; i < top.field_count(); ++i) {
    if (top.field(i).number() != 6 ||
        top.field(i).type() != UnknownField::TYPE_LENGTH_DELIMITED) {
      continue;
    }
    UnknownFieldSet list;
    if (!list.ParseFromString(top.field(i).length_delimited())) continue;
    for (int j = 0; j < list.field_count(); ++j) {
      UnknownFieldSet service;
      if (list.field(j).number() != 1 ||
          list.field(j).type() != UnknownField::TYPE_LENGTH_DELIMITED ||
          !service.ParseFromString(list.field(j).length_delimited())) {
        continue;
      }
      for (int k = 0; k < service.field_count(); ++k) {
        if (service.field(k).number() == 1 &&
            service.field(k).type() == UnknownField::TYPE_LENGTH_DELIMITED) {
          names.push_back(service.field(k).length_delimited());
        }
      }
    }
  }
  return names;
}

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_SERVER_GRPC_PROBE_H_
