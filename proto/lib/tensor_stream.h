// Large tensors on the wire: NdArray → TensorChunk messages of at most 1 MiB
// and back (worker.proto "TensorChunk"), and the tensors of a run collected
// into an engine RunResult.
//
// The sender computes a crc32c per chunk and the sha256 of the whole tensor
// (carried by the last chunk); the receiver checks both and every offset, so
// a corrupted, reordered, truncated or mislabelled chunk is a DATA_LOSS error
// that names the tensor. Objects here are one thread at a time.
#ifndef DRIFTSCOPE_PROTO_LIB_TENSOR_STREAM_H_
#define DRIFTSCOPE_PROTO_LIB_TENSOR_STREAM_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "driftscope/v1/worker.pb.h"
#include "engine/core/ndarray.h"
#include "engine/core/sha256.h"
#include "engine/train/run_result.h"
#include "proto/lib/background_sha256.h"

namespace driftscope {

inline constexpr int64_t kMaxChunkBytes = int64_t{1} << 20;
// Tensors at least this large are hashed on a helper thread (sender and
// receiver), overlapping SHA-256 with the rest of the per-byte work.
inline constexpr int64_t kBackgroundHashBytes = int64_t{4} << 20;

// Element count of `shape`, or -1 when a dimension is negative or the
// product would not fit the byte count of any real tensor.
int64_t ElementCount(const std::vector<int64_t>& shape);

v1::DType DTypeToProto(DType dtype);
// InvalidArgument for DTYPE_UNSPECIFIED or an unknown value.
absl::StatusOr<DType> DTypeFromProto(v1::DType dtype);

// A small tensor (one message: RunRequest.x, init_weights, ...) and back.
// `field` names the request field in errors ("x", "init_weights[2]").
v1::Tensor TensorToProto(const NdArray& array);
absl::StatusOr<NdArray> TensorFromProto(const v1::Tensor& tensor,
                                        absl::string_view field);

// Cuts `array` into chunks of at most `chunk_bytes` (≤ kMaxChunkBytes) and
// hands each to `emit` in order; an empty tensor is one empty chunk. `emit`
// may take the chunk's contents (Swap them into an event: a 1 MiB copy
// saved). Stops early and returns false when `emit` returns false (the
// stream broke). `sha256_out`, when not null, receives the tensor's sha256.
// `known_sha256`, when not empty, is the tensor's sha256 as the caller has
// just verified it (a blob read back and checked): sent instead of hashing
// the bytes again.
bool EmitTensorChunks(const std::string& name, const NdArray& array,
                      const std::function<bool(v1::TensorChunk*)>& emit,
                      std::string* sha256_out = nullptr,
                      int64_t chunk_bytes = kMaxChunkBytes,
                      absl::string_view known_sha256 = {});

// The same chunks with their data left in `array`: `emit` gets each chunk
// with every field but data, and the data's place in the array (`size`
// bytes at `data`), to send without a copy (event_wire.h).
using ChunkViewEmitter = std::function<bool(v1::TensorChunk* header,
                                            const uint8_t* data, size_t size)>;
bool EmitTensorChunkViews(const std::string& name, const NdArray& array,
                          const ChunkViewEmitter& emit,
                          std::string* sha256_out = nullptr,
                          int64_t chunk_bytes = kMaxChunkBytes,
                          absl::string_view known_sha256 = {});

// Reassembles named tensors from a chunk stream in which tensors may be
// interleaved but each tensor's chunks arrive in order.
class TensorAssembler {
 public:
  // Tensors announced larger than `max_tensor_bytes` are refused before any
  // memory is taken for them (the default: this machine's physical memory,
  // which no received tensor can exceed and still fit).
  TensorAssembler();
  explicit TensorAssembler(int64_t max_tensor_bytes)
      : max_tensor_bytes_(max_tensor_bytes) {}
  TensorAssembler(const TensorAssembler&) = delete;
  TensorAssembler& operator=(const TensorAssembler&) = delete;

  // DataLoss naming the tensor for a bad checksum, a gap or overlap, a chunk
  // over 1 MiB, a header that changed between chunks, a size that does not
  // match dtype × shape, or a second copy of a finished tensor;
  // ResourceExhausted for a tensor over the size limit or one whose memory
  // cannot be allocated.
  absl::Status Add(const v1::TensorChunk& chunk);
  // The same for a chunk whose data arrived in pieces (views into received
  // slices, event_wire.h), copied once, straight into the tensor; `header`'s
  // own data field is ignored.
  absl::Status Add(const v1::TensorChunk& header,
                   absl::Span<const absl::Span<const uint8_t>> data);

  // The finished tensors by name, in order of completion. DataLoss naming
  // the tensor when one is still incomplete (the stream was truncated).
  absl::StatusOr<std::vector<NamedArray>> Finish();

  // The SHA-256 each finished tensor was checked against, by name.
  const std::map<std::string, std::string>& digests() const { return digests_; }

 private:
  struct Partial {
    Sha256 sha;  // over the bytes received so far, for small tensors
    DType dtype;
    std::vector<int64_t> shape;
    int64_t total_bytes = 0;
    int64_t received = 0;
    NdArray array;
    // Hashes the received part of a large tensor on its own thread; declared
    // after `array` so it stops before the bytes it reads are freed.
    std::unique_ptr<BackgroundSha256> background;
  };
  const int64_t max_tensor_bytes_;
  std::map<std::string, std::unique_ptr<Partial>> partial_;
  std::vector<NamedArray> done_;
  std::map<std::string, std::string> digests_;
};

// Which parts of a result are streamed, as Capture in worker.proto.
struct CaptureSet {
  bool outputs = true, losses = true, final_weights = true,
       epoch_outputs = true, states = true;
};

// The tensors of `result` that `capture` selects, moved out of it (a large
// result is not copied), with their wire names: "outputs", "losses",
// "epoch{k}", the final weights under their own names ("layer0_kernel",
// ...), and the states ("state_h", "state_c").
std::vector<NamedArray> TakeResultTensors(RunResult* result,
                                          const CaptureSet& capture);

// The inverse: puts received tensors into `result` by name. InvalidArgument
// for a name it does not know or a duplicate epoch index.
absl::Status PlaceResultTensors(std::vector<NamedArray> tensors,
                                RunResult* result);

}  // namespace driftscope

#endif  // DRIFTSCOPE_PROTO_LIB_TENSOR_STREAM_H_
