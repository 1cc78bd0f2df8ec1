// RunEvents as gRPC byte buffers, with a tensor chunk's data by reference.
//
// A result stream is almost all TensorChunk.data. Through the generated
// protobuf types every such byte is copied twice on each end besides the
// kernel's copy: into the message's string and then into gRPC's buffer on
// the sender, out of gRPC's buffer into the string and then into the tensor
// on the receiver. Here the sender's buffer refers to the tensor's own memory
// (the kernel's copy into the socket is the only one) and the receiver copies
// the data once, from the received slices straight into the tensor.
//
// The bytes on the wire are an ordinary RunEvent: the chunk's fields are
// written first and `data` last, an order protobuf parsers accept (fields
// may come in any order), so any gRPC client, the Python one included, reads
// them with its generated types; and ParseRunEvent reads what any protobuf
// encoder writes.
#ifndef DRIFTSCOPE_PROTO_LIB_EVENT_WIRE_H_
#define DRIFTSCOPE_PROTO_LIB_EVENT_WIRE_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>
#include <grpcpp/support/sync_stream.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "driftscope/v1/worker.pb.h"
#include "engine/core/ndarray.h"

namespace driftscope {

// The sender's side.

// `event` serialized as it is.
grpc::ByteBuffer SerializeRunEvent(const v1::RunEvent& event);

// `event` (a tensor_chunk with every field but data) with `size` bytes at
// `data` as the chunk's data. The buffer refers to those bytes without
// copying them; it holds a reference to `owner`, the array they lie in, until
// gRPC has written them (which may be after the call has ended). The bytes
// must not change meanwhile.
grpc::ByteBuffer SerializeChunkEvent(const v1::RunEvent& event,
                                     std::shared_ptr<const NdArray> owner,
                                     const uint8_t* data, size_t size);

// The receiver's side.

// One received event. For a tensor chunk, `event.tensor_chunk()` has every
// field but data, and `data` lists the pieces of the chunk's data in order:
// views into the received slices, which `slices` keeps alive.
struct ReceivedEvent {
  v1::RunEvent event;
  std::vector<absl::Span<const uint8_t>> data;
  std::vector<grpc::Slice> slices;
};

// Parses `buffer` as a RunEvent into `out` (whose previous contents are
// replaced). DataLoss for bytes that are not a well-formed RunEvent.
absl::Status ParseRunEvent(const grpc::ByteBuffer& buffer, ReceivedEvent* out);

// Calls driftscope.v1.Worker/Run on `channel` like the generated stub does,
// but reads the events as byte buffers, for ParseRunEvent.
std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> StartRawRun(
    const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext* context,
    const v1::RunRequest& request);

}  // namespace driftscope

#endif  // DRIFTSCOPE_PROTO_LIB_EVENT_WIRE_H_
