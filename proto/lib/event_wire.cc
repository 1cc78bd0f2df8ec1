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

// RunEvent's oneof `event` is fields 2 (accepted) to 8 (fingerprints).
constexpr uint32_t kFirstEventField = 2;
constexpr uint32_t kLastEventField = 8;

// Protobuf's parser refuses a message nested deeper than this (its default
// recursion limit), counting groups and message fields alike.
constexpr int kMaxDepth = 100;

enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
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
// itself re-encoded) to `out`. A group (proto2's, which protobuf still reads
// as an unknown field) is copied up to its matching end tag, nested at most
// `depth` deep. False for a wire type protobuf refuses, a group that does
// not end right, and a field cut short.
bool CopyField(SliceReader& in, uint64_t tag, std::string* out, int depth) {
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
    case kStartGroup: {
      if (depth <= 0) return false;
      while (true) {
        uint64_t inner = 0;
        if (!in.ReadTag(&inner)) return false;
        if ((inner & 7) == kEndGroup) {
          AppendVarint(inner, out);
          return (inner >> 3) == (tag >> 3);
        }
        if (!CopyField(in, inner, out, depth - 1)) return false;
      }
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
    } else if (!CopyField(in, tag, header, kMaxDepth - 1)) {
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
  // The fields outside the oneof `event` (run_id, unknown fields) go to
  // `rest`; the member of the oneof read last to `member`, or, for a tensor
  // chunk, its fields but data to `header` and its data to out->data. As in
  // protobuf, a member replaces the one before it (which must still parse)
  // and repeated occurrences of one member merge.
  std::string rest, member, header;
  uint32_t member_field = 0;  // none yet
  while (in.position() < end) {
    uint64_t tag = 0;
    if (!in.ReadTag(&tag)) return malformed();
    const uint32_t field = static_cast<uint32_t>(tag >> 3);
    const bool is_member = (tag & 7) == kLengthDelimited &&
                           field >= kFirstEventField &&
                           field <= kLastEventField;
    if (is_member && field != member_field) {
      if (member_field == kChunkField) {
        v1::TensorChunk replaced;
        if (!replaced.ParseFromString(header)) return malformed();
      } else if (member_field != 0) {
        v1::RunEvent replaced;
        if (!replaced.ParseFromString(member)) return malformed();
      }
      member.clear();
      header.clear();
      out->data.clear();
      member_field = field;
    }
    if (is_member && field == kChunkField) {
      uint64_t len = 0;
      if (!in.ReadVarint(&len) || len > end - in.position()) {
        return malformed();
      }
      in.set_limit(in.position() + len);
      if (!SplitChunk(in, &header, &out->data)) return malformed();
      in.set_limit(end);
    } else if (!CopyField(in, tag, is_member ? &member : &rest, kMaxDepth)) {
      return malformed();
    }
  }
  if (!out->event.ParseFromString(rest)) return malformed();
  if (member_field == kChunkField) {
    if (!out->event.mutable_tensor_chunk()->ParseFromString(header)) {
      return malformed();
    }
  } else if (!out->event.MergeFromString(member)) {
    return malformed();
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
