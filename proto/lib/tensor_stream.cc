#include "proto/lib/tensor_stream.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/core/sha256.h"
#include "proto/lib/background_sha256.h"
#include "proto/lib/crc32c.h"

namespace driftscope {

int64_t ElementCount(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > (int64_t{1} << 50) / d) return -1;
    n *= d;
  }
  return n;
}

v1::DType DTypeToProto(DType dtype) {
  return dtype == DType::kFloat32 ? v1::FLOAT32 : v1::FLOAT64;
}

absl::StatusOr<DType> DTypeFromProto(v1::DType dtype) {
  switch (dtype) {
    case v1::FLOAT32:
      return DType::kFloat32;
    case v1::FLOAT64:
      return DType::kFloat64;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "dtype must be FLOAT32 or FLOAT64, got ", static_cast<int>(dtype)));
  }
}

v1::Tensor TensorToProto(const NdArray& array) {
  v1::Tensor t;
  t.set_dtype(DTypeToProto(array.dtype()));
  for (int64_t d : array.shape()) t.add_shape(d);
  t.set_data(reinterpret_cast<const char*>(array.raw()),
             static_cast<size_t>(array.nbytes()));
  return t;
}

absl::StatusOr<NdArray> TensorFromProto(const v1::Tensor& tensor,
                                        absl::string_view field) {
  absl::StatusOr<DType> dtype = DTypeFromProto(tensor.dtype());
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".", dtype.status().message()));
  }
  std::vector<int64_t> shape(tensor.shape().begin(), tensor.shape().end());
  const int64_t n = ElementCount(shape);
  if (n < 0 ||
      static_cast<int64_t>(tensor.data().size()) != n * DTypeSize(*dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".data has ", tensor.data().size(), " bytes; shape ",
        NumpyShapeText(shape), " of ", DTypeName(*dtype), " needs ",
        n < 0 ? std::string("a valid shape")
              : absl::StrCat(n * DTypeSize(*dtype))));
  }
  NdArray array = NdArray::Uninitialized(*dtype, std::move(shape));
  std::memcpy(array.raw(), tensor.data().data(), tensor.data().size());
  return array;
}

bool EmitTensorChunkViews(const std::string& name, const NdArray& array,
                          const ChunkViewEmitter& emit, std::string* sha256_out,
                          int64_t chunk_bytes, absl::string_view known_sha256) {
  chunk_bytes = std::clamp<int64_t>(chunk_bytes, 1, kMaxChunkBytes);
  const int64_t total = array.nbytes();
  const uint8_t* bytes = array.raw();
  const bool hash = known_sha256.empty();
  // The whole tensor is in memory: a large one is hashed beside the
  // chunking and sending, a small one inline.
  std::optional<BackgroundSha256> background;
  Sha256 inline_sha;
  if (hash && total >= kBackgroundHashBytes) {
    background.emplace(array.raw());
    background->Advance(static_cast<size_t>(total));
  }
  v1::TensorChunk chunk;
  int64_t offset = 0;
  do {
    const size_t len =
        static_cast<size_t>(std::min(chunk_bytes, total - offset));
    // Every field is set again: `emit` may have taken the previous chunk.
    chunk.Clear();
    chunk.set_name(name);
    chunk.set_dtype(DTypeToProto(array.dtype()));
    for (int64_t d : array.shape()) chunk.add_shape(d);
    chunk.set_total_bytes(total);
    chunk.set_offset(offset);
    chunk.set_crc32c(Crc32c(bytes + offset, len));
    if (hash && !background.has_value()) inline_sha.Update(bytes + offset, len);
    const uint8_t* data = bytes + offset;
    offset += static_cast<int64_t>(len);
    if (offset == total) {
      std::string digest = !hash                    ? std::string(known_sha256)
                           : background.has_value() ? background->HexDigest()
                                                    : inline_sha.HexDigest();
      chunk.set_sha256(digest);
      if (sha256_out != nullptr) *sha256_out = std::move(digest);
    }
    if (!emit(&chunk, data, len)) return false;
  } while (offset < total);
  return true;
}

bool EmitTensorChunks(const std::string& name, const NdArray& array,
                      const std::function<bool(v1::TensorChunk*)>& emit,
                      std::string* sha256_out, int64_t chunk_bytes,
                      absl::string_view known_sha256) {
  return EmitTensorChunkViews(
      name, array,
      [&emit](v1::TensorChunk* chunk, const uint8_t* data, size_t size) {
        chunk->set_data(data, size);
        return emit(chunk);
      },
      sha256_out, chunk_bytes, known_sha256);
}

TensorAssembler::TensorAssembler()
    : max_tensor_bytes_([] {
        const long pages = sysconf(_SC_PHYS_PAGES);
        const long page = sysconf(_SC_PAGESIZE);
        return pages > 0 && page > 0 ? int64_t{pages} * page
                                     : std::numeric_limits<int64_t>::max();
      }()) {}

absl::Status TensorAssembler::Add(const v1::TensorChunk& chunk) {
  const absl::Span<const uint8_t> data(
      reinterpret_cast<const uint8_t*>(chunk.data().data()),
      chunk.data().size());
  return Add(chunk, absl::MakeConstSpan(&data, 1));
}

absl::Status TensorAssembler::Add(
    const v1::TensorChunk& chunk,
    absl::Span<const absl::Span<const uint8_t>> data) {
  const std::string& name = chunk.name();
  auto loss = [&name](auto&&... parts) {
    return absl::DataLossError(
        absl::StrCat("tensor \"", name, "\": ", parts...));
  };
  for (const NamedArray& d : done_) {
    if (d.name == name) return loss("chunk after the tensor was complete");
  }
  int64_t len = 0;
  for (absl::Span<const uint8_t> piece : data) {
    len += static_cast<int64_t>(piece.size());
  }
  if (len > kMaxChunkBytes) {
    return loss("chunk of ", len, " bytes exceeds ", kMaxChunkBytes);
  }
  uint32_t crc = 0;
  for (absl::Span<const uint8_t> piece : data) {
    crc = Crc32c(piece.data(), piece.size(), crc);
  }
  if (crc != chunk.crc32c()) {
    return loss("crc32c mismatch in the chunk at offset ", chunk.offset());
  }
  auto it = partial_.find(name);
  if (it == partial_.end()) {
    if (chunk.offset() != 0) {
      return loss("first chunk starts at offset ", chunk.offset(),
                  ", not 0 (earlier chunks are missing)");
    }
    absl::StatusOr<DType> dtype = DTypeFromProto(chunk.dtype());
    if (!dtype.ok()) return loss(dtype.status().message());
    std::vector<int64_t> shape(chunk.shape().begin(), chunk.shape().end());
    const int64_t n = ElementCount(shape);
    if (n < 0 || n * DTypeSize(*dtype) != chunk.total_bytes()) {
      return loss("total_bytes ", chunk.total_bytes(), " does not match ",
                  DTypeName(*dtype), " shape ", NumpyShapeText(shape));
    }
    if (chunk.total_bytes() > max_tensor_bytes_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("tensor \"", name, "\": ", chunk.total_bytes(),
                       " bytes announced, more than the ", max_tensor_bytes_,
                       " this receiver accepts"));
    }
    auto p = std::make_unique<Partial>();
    p->dtype = *dtype;
    p->shape = shape;
    p->total_bytes = chunk.total_bytes();
    // Every byte is written by the chunks before the tensor is handed out.
    try {
      p->array = NdArray::Uninitialized(*dtype, std::move(shape));
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          absl::StrCat("tensor \"", name, "\": cannot allocate ",
                       chunk.total_bytes(), " bytes to receive it"));
    }
    if (p->total_bytes >= kBackgroundHashBytes) {
      p->background = std::make_unique<BackgroundSha256>(p->array.raw());
    }
    it = partial_.emplace(name, std::move(p)).first;
  }
  Partial& p = *it->second;
  if (chunk.dtype() != DTypeToProto(p.dtype) ||
      chunk.total_bytes() != p.total_bytes ||
      !std::equal(chunk.shape().begin(), chunk.shape().end(), p.shape.begin(),
                  p.shape.end())) {
    return loss("dtype, shape or total_bytes changed between chunks");
  }
  if (chunk.offset() != p.received) {
    return loss("chunk at offset ", chunk.offset(), ", expected ", p.received,
                " (a chunk is missing, repeated or out of order)");
  }
  if (len > p.total_bytes - p.received) {
    return loss("chunk at offset ", chunk.offset(), " runs past total_bytes ",
                p.total_bytes);
  }
  // An empty chunk only ever stands for an empty tensor; anything else would
  // let a stream stall without progress.
  if (len == 0 && p.total_bytes != 0) {
    return loss("empty chunk at offset ", chunk.offset());
  }
  uint8_t* to = p.array.raw() + p.received;
  for (absl::Span<const uint8_t> piece : data) {
    if (piece.empty()) continue;
    std::memcpy(to, piece.data(), piece.size());
    to += piece.size();
  }
  if (p.background != nullptr) {
    p.background->Advance(static_cast<size_t>(p.received + len));
  } else {
    p.sha.Update(p.array.raw() + p.received, static_cast<size_t>(len));
  }
  p.received += len;
  if (p.received < p.total_bytes) {
    if (!chunk.sha256().empty()) {
      return loss("sha256 on a chunk that is not the last");
    }
    return absl::OkStatus();
  }
  const std::string sha =
      p.background != nullptr ? p.background->HexDigest() : p.sha.HexDigest();
  if (chunk.sha256() != sha) {
    return loss("sha256 of the reassembled tensor is ", sha,
                ", the sender's is \"", chunk.sha256(), "\"");
  }
  digests_[name] = sha;
  done_.push_back(NamedArray{name, std::move(p.array)});
  partial_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NamedArray>> TensorAssembler::Finish() {
  if (!partial_.empty()) {
    const auto& [name, p] = *partial_.begin();
    return absl::DataLossError(
        absl::StrCat("tensor \"", name, "\": truncated, received ", p->received,
                     " of ", p->total_bytes, " bytes"));
  }
  return std::move(done_);
}

std::vector<NamedArray> TakeResultTensors(RunResult* result,
                                          const CaptureSet& capture) {
  std::vector<NamedArray> out;
  if (capture.outputs) {
    out.push_back(NamedArray{"outputs", std::move(result->outputs)});
  }
  if (capture.losses) {
    out.push_back(NamedArray{"losses", std::move(result->losses)});
  }
  if (capture.epoch_outputs) {
    for (size_t k = 0; k < result->epoch_outputs.size(); ++k) {
      out.push_back(NamedArray{absl::StrCat("epoch", k),
                               std::move(result->epoch_outputs[k])});
    }
  }
  if (capture.final_weights) {
    for (NamedArray& w : result->final_weights) out.push_back(std::move(w));
  }
  if (capture.states) {
    for (NamedArray& s : result->final_states) out.push_back(std::move(s));
  }
  return out;
}

absl::Status PlaceResultTensors(std::vector<NamedArray> tensors,
                                RunResult* result) {
  std::map<int, NdArray> epochs;
  for (NamedArray& t : tensors) {
    int k = 0;
    if (t.name == "outputs") {
      result->outputs = std::move(t.array);
    } else if (t.name == "losses") {
      result->losses = std::move(t.array);
    } else if (absl::StartsWith(t.name, "epoch") &&
               absl::SimpleAtoi(absl::string_view(t.name).substr(5), &k) &&
               k >= 0) {
      if (!epochs.emplace(k, std::move(t.array)).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor \"", t.name, "\" received twice"));
      }
    } else if (absl::StartsWith(t.name, "layer")) {
      result->final_weights.push_back(std::move(t));
    } else if (absl::StartsWith(t.name, "state_")) {
      result->final_states.push_back(std::move(t));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown result tensor \"", t.name, "\""));
    }
  }
  int expect = 0;
  for (auto& [k, array] : epochs) {
    if (k != expect++) {
      return absl::DataLossError(
          absl::StrCat("tensor \"epoch", expect - 1, "\" is missing"));
    }
    result->epoch_outputs.push_back(std::move(array));
  }
  return absl::OkStatus();
}

}  // namespace driftscope
