#include "proto/lib/event_wire.h"

#include <google/protobuf/io/coded_stream.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <string>
#include <utility>

#include "driftscope/v1/worker.grpc.pb.h"

namespace driftscope {

namespace {

using google::protobuf::io::CodedOutputStream;

// RunEvent.tensor_chunk and TensorChunk.data (worker.proto).
constexpr uint32_t kChunkField = 5;
constexpr uint32_t kDataField = 6;

enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kFixed32 = 5,
};

void AppendVarint(uint64_t value, std::string* out) {
  uint8_t buf[10];
  const uint8_t* end = CodedOutputStream::WriteVarint64ToArray(value, buf);
  out->append(reinterpret_cast<const char*>(buf),
              static_cast<size_t>(end - buf));
}

void AppendTag(uint32_t field, WireType type, std::string* out) {
  AppendVarint((uint64_t{field} << 3) | type, out);
}

void ReleaseOwner(void* owner) {
  delete static_cast<std::shared_ptr<const NdArray>*>(owner);
}

// Reads a byte sequence spread over slices, never past `limit` bytes from
// the start.
class SliceReader {
 public:
  explicit SliceReader(const std::vector<grpc::Slice>& slices)
      : slices_(slices) {
    for (const grpc::Slice& s : slices) limit_ += s.size();
  }

  size_t position() const { return position_; }
  size_t limit() const { return limit_; }
  void set_limit(size_t limit) { limit_ = limit; }

  bool ReadByte(uint8_t* b) {
    if (position_ >= limit_ || !SkipEmptySlices()) return false;
    *b = slices_[slice_].begin()[offset_];
    Advance(1);
    return true;
  }

  bool ReadVarint(uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b = 0;
      if (!ReadByte(&b)) return false;
      *value |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;  // more than ten bytes
  }

  // A field tag as protobuf's parser reads one: at most five bytes, the
  // value taken modulo 2^32, field number 0 refused. A longer varint (legal
  // for a value) is not a tag to protobuf, so neither is it here.
  bool ReadTag(uint64_t* tag) {
    uint32_t value = 0;
    for (int i = 0; i < 5; ++i) {
      uint8_t b = 0;
      if (!ReadByte(&b)) return false;
      value |= static_cast<uint32_t>(b & 0x7fu) << (7 * i);
      if ((b & 0x80) == 0) {
        *tag = value;
        return (value >> 3) != 0;
      }
    }
    return false;
  }

  // The next `n` bytes as views into the slices (appended to `pieces`) or
  // copied (appended to `out`); either may be null to skip them.
  bool Take(size_t n, std::vector<absl::Span<const uint8_t>>* pieces,
            std::string* out) {
    if (n > limit_ - position_) return false;
    while (n > 0) {
      if (!SkipEmptySlices()) return false;
      const grpc::Slice& s = slices_[slice_];
      const size_t len = std::min(n, s.size() - offset_);
      const uint8_t* p = s.begin() + offset_;
      if (pieces != nullptr) pieces->emplace_back(p, len);
      if (out != nullptr) out->append(reinterpret_cast<const char*>(p), len);
      Advance(len);
      n -= len;
    }
    return true;
  }

 private:
  // False at the end of the last slice (limit_ never lies past it; this
  // keeps a mistake in the bounds from reading past the slices).
  bool SkipEmptySlices() {
    while (slice_ < slices_.size() && offset_ == slices_[slice_].size()) {
      ++slice_;
      offset_ = 0;
    }
    return slice_ < slices_.size();
  }
  void Advance(size_t n) {
    offset_ += n;
    position_ += n;
  }

  const std::vector<grpc::Slice>& slices_;
  size_t slice_ = 0, offset_ = 0;  // where position_ lies
  size_t position_ = 0, limit_ = 0;
};

// Copies the rest of a field whose tag was read (its payload, after the tag
// itself re-encoded) to `out`. False for a group or an unknown wire type
// (neither appears in proto3) and for a field cut short.
bool CopyField(SliceReader& in, uint64_t tag, std::string* out) {
  AppendVarint(tag, out);
  switch (tag & 7) {
    case kVarint: {
      uint64_t v = 0;
      if (!in.ReadVarint(&v)) return false;
      AppendVarint(v, out);
      return true;
    }
    case kFixed64:
      return in.Take(8, nullptr, out);
    case kFixed32:
      return in.Take(4, nullptr, out);
    case kLengthDelimited: {
      uint64_t len = 0;
      if (!in.ReadVarint(&len)) return false;
      AppendVarint(len, out);
      return in.Take(len, nullptr, out);
    }
    default:
      return false;
  }
}

// A TensorChunk's fields up to in.limit(): data as views into `data` (the
// last occurrence wins, as in protobuf), the others copied to `header`.
bool SplitChunk(SliceReader& in, std::string* header,
                std::vector<absl::Span<const uint8_t>>* data) {
  while (in.position() < in.limit()) {
    uint64_t tag = 0;
    if (!in.ReadTag(&tag)) return false;
    if (tag == ((uint64_t{kDataField} << 3) | kLengthDelimited)) {
      uint64_t len = 0;
      if (!in.ReadVarint(&len)) return false;
      data->clear();
      if (!in.Take(len, data, nullptr)) return false;
    } else if (!CopyField(in, tag, header)) {
      return false;
    }
  }
  return true;
}

}  // namespace

grpc::ByteBuffer SerializeRunEvent(const v1::RunEvent& event) {
  grpc::ByteBuffer buffer;
  bool own = false;
  // Fails only for a message over 2 GiB, which no event comes near.
  grpc::SerializationTraits<v1::RunEvent>::Serialize(event, &buffer, &own);
  return buffer;
}

grpc::ByteBuffer SerializeChunkEvent(const v1::RunEvent& event,
                                     std::shared_ptr<const NdArray> owner,
                                     const uint8_t* data, size_t size) {
  // Everything but the chunk (the run id), then the chunk's header fields,
  // then data's tag and length: one small slice before the data's own.
  v1::RunEvent shell = event;
  shell.clear_tensor_chunk();
  std::string prefix = shell.SerializeAsString();
  const std::string header = event.tensor_chunk().SerializeAsString();
  const size_t chunk_size =
      header.size() + 1 + CodedOutputStream::VarintSize64(size) + size;
  AppendTag(kChunkField, kLengthDelimited, &prefix);
  AppendVarint(chunk_size, &prefix);
  prefix += header;
  AppendTag(kDataField, kLengthDelimited, &prefix);
  AppendVarint(size, &prefix);
  if (size == 0) {
    grpc::Slice only(prefix);
    return grpc::ByteBuffer(&only, 1);
  }
  grpc::Slice slices[2] = {
      grpc::Slice(prefix),
      grpc::Slice(const_cast<uint8_t*>(data), size, &ReleaseOwner,
                  new std::shared_ptr<const NdArray>(std::move(owner)))};
  return grpc::ByteBuffer(slices, 2);
}

absl::Status ParseRunEvent(const grpc::ByteBuffer& buffer, ReceivedEvent* out) {
  out->event.Clear();
  out->data.clear();
  out->slices.clear();
  const auto malformed = [] {
    return absl::DataLossError("a Run event is not a well-formed RunEvent");
  };
  if (!buffer.Dump(&out->slices).ok()) return malformed();
  SliceReader in(out->slices);
  const size_t end = in.limit();
  std::string rest, header;
  bool has_chunk = false;
  while (in.position() < end) {
    uint64_t tag = 0;
    if (!in.ReadTag(&tag)) return malformed();
    if (tag == ((uint64_t{kChunkField} << 3) | kLengthDelimited)) {
      uint64_t len = 0;
      if (!in.ReadVarint(&len) || len > end - in.position()) {
        return malformed();
      }
      // Repeated occurrences of a message field merge, as in protobuf.
      in.set_limit(in.position() + len);
      if (!SplitChunk(in, &header, &out->data)) return malformed();
      in.set_limit(end);
      has_chunk = true;
    } else if (!CopyField(in, tag, &rest)) {
      return malformed();
    }
  }
  if (!out->event.ParseFromString(rest)) return malformed();
  if (has_chunk) {
    if (out->event.event_case() != v1::RunEvent::EVENT_NOT_SET) {
      return absl::DataLossError(
          "a Run event carries a tensor chunk and another event");
    }
    if (!out->event.mutable_tensor_chunk()->ParseFromString(header)) {
      return malformed();
    }
  }
  return absl::OkStatus();
}

std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> StartRawRun(
    const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext* context,
    const v1::RunRequest& request) {
  static const std::string* const name = new std::string(
      std::string("/") + v1::Worker::service_full_name() + "/Run");
  const grpc::internal::RpcMethod method(
      name->c_str(), grpc::internal::RpcMethod::SERVER_STREAMING, channel);
  return std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>>(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
          channel.get(), method, context, request));
}

}  // namespace driftscope
