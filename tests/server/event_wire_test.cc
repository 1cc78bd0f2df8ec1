// RunEvents on the wire without copies: what SerializeChunkEvent writes is
// an ordinary RunEvent to protobuf, ParseRunEvent reads what protobuf writes
// however gRPC cuts it into slices, agrees with protobuf on arbitrary bytes,
// and the sender's buffer keeps the array it points into alive.
#include "proto/lib/event_wire.h"

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/lib/tensor_stream.h"

namespace driftscope {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

// `bytes` as a buffer of slices cut at the given lengths (the rest last).
grpc::ByteBuffer Cut(const std::string& bytes,
                     const std::vector<size_t>& cuts) {
  std::vector<grpc::Slice> slices;
  size_t at = 0;
  for (size_t len : cuts) {
    len = std::min(len, bytes.size() - at);
    slices.emplace_back(bytes.data() + at, len);
    at += len;
  }
  slices.emplace_back(bytes.data() + at, bytes.size() - at);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

std::string Joined(const ReceivedEvent& r) {
  std::string out;
  for (absl::Span<const uint8_t> piece : r.data) {
    out.append(reinterpret_cast<const char*>(piece.data()), piece.size());
  }
  return out;
}

std::shared_ptr<const NdArray> Ramp(int64_t n) {
  auto a = std::make_shared<NdArray>(DType::kFloat32, std::vector<int64_t>{n});
  for (int64_t i = 0; i < n; ++i) a->data<float>()[i] = 0.25f * i - 3;
  return a;
}

v1::RunEvent ChunkHeader(const NdArray& a) {
  v1::RunEvent e;
  e.set_run_id("run-7");
  v1::TensorChunk* c = e.mutable_tensor_chunk();
  c->set_name("outputs");
  c->set_dtype(v1::FLOAT32);
  c->add_shape(a.size());
  c->set_total_bytes(a.nbytes());
  c->set_offset(0);
  c->set_crc32c(0xdeadbeef);
  c->set_sha256(std::string(64, 'a'));
  return e;
}

TEST(EventWireTest, ChunkEventIsAnOrdinaryRunEventToProtobuf) {
  const auto array = Ramp(1000);
  const v1::RunEvent header = ChunkHeader(*array);
  const grpc::ByteBuffer buffer =
      SerializeChunkEvent(header, array, array->raw() + 40, 400);
  v1::RunEvent parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(buffer)));
  v1::RunEvent expected = header;
  expected.mutable_tensor_chunk()->set_data(array->raw() + 40, 400);
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, expected))
      << parsed.ShortDebugString();
}

TEST(EventWireTest, ChunkEventRoundTripsThroughParseRunEvent) {
  const auto array = Ramp(5000);
  const v1::RunEvent header = ChunkHeader(*array);
  const grpc::ByteBuffer buffer =
      SerializeChunkEvent(header, array, array->raw(), array->nbytes());
  ReceivedEvent r;
  ASSERT_TRUE(ParseRunEvent(buffer, &r).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(r.event, header));
  EXPECT_TRUE(r.event.tensor_chunk().data().empty());
  EXPECT_EQ(Joined(r), std::string(reinterpret_cast<const char*>(array->raw()),
                                   array->nbytes()));
}

TEST(EventWireTest, EmptyChunkHasNoData) {
  const auto array = Ramp(0);
  ReceivedEvent r;
  ASSERT_TRUE(
      ParseRunEvent(SerializeChunkEvent(ChunkHeader(*array), array, nullptr, 0),
                    &r)
          .ok());
  EXPECT_TRUE(r.event.has_tensor_chunk());
  EXPECT_TRUE(Joined(r).empty());
}

TEST(EventWireTest, BufferKeepsTheArrayAliveUntilReleased) {
  std::weak_ptr<const NdArray> watch;
  grpc::ByteBuffer buffer;
  {
    auto array = Ramp(100);
    watch = array;
    buffer = SerializeChunkEvent(ChunkHeader(*array), array, array->raw(), 400);
  }
  EXPECT_FALSE(watch.expired());   // only the buffer holds it now
  grpc::ByteBuffer copy = buffer;  // shares the slices
  buffer.Clear();
  EXPECT_FALSE(watch.expired());
  copy.Clear();
  EXPECT_TRUE(watch.expired());
}

TEST(EventWireTest, ReadsProtobufsEncodingOfEveryEventCutAnywhere) {
  std::vector<v1::RunEvent> events(4);
  events[0].set_run_id("r");
  events[0].mutable_accepted()->set_spec_digest("d");
  events[0].mutable_accepted()->set_total_steps(300);
  for (int i = 0; i < 40; ++i) {
    v1::Fingerprint* f = events[1].mutable_fingerprints()->add_fingerprints();
    f->set_step(i);
    f->set_sha256(std::string(64, static_cast<char>('a' + i % 6)));
  }
  events[2].mutable_progress()->set_loss(0.125);
  events[2].mutable_progress()->set_step(1 << 20);  // a multi-byte varint
  {
    v1::TensorChunk* c = events[3].mutable_tensor_chunk();
    c->set_name("layer0_kernel");
    c->add_shape(3);
    c->add_shape(100);
    c->set_offset(1234567);
    c->set_data(std::string(300, '\x7f') + std::string(300, '\x80'));
    c->set_crc32c(77);
  }
  std::mt19937 rng(42);
  for (const v1::RunEvent& e : events) {
    const std::string bytes = e.SerializeAsString();
    // Whole, one byte per slice, and random cuts (varints split included).
    std::vector<std::vector<size_t>> cuttings = {
        {}, std::vector<size_t>(bytes.size(), 1)};
    for (int k = 0; k < 20; ++k) {
      std::vector<size_t> cuts;
      for (size_t at = 0; at < bytes.size();) {
        cuts.push_back(rng() % 9);  // empty slices too
        at += cuts.back();
      }
      cuttings.push_back(cuts);
    }
    for (const auto& cuts : cuttings) {
      ReceivedEvent r;
      ASSERT_TRUE(ParseRunEvent(Cut(bytes, cuts), &r).ok());
      v1::RunEvent got = r.event;
      if (got.has_tensor_chunk())
        got.mutable_tensor_chunk()->set_data(Joined(r));
      EXPECT_TRUE(MessageDifferencer::Equals(got, e)) << got.ShortDebugString();
    }
  }
}

TEST(EventWireTest, FieldOrderUnknownFieldsAndRepeatsFollowProtobuf) {
  // data first, then the header, an unknown field, and a second data that
  // replaces the first; the chunk field itself twice (the two merge).
  v1::TensorChunk a, b;
  a.set_data("first");
  a.set_name("outputs");
  b.set_offset(9);
  b.set_data("second");
  std::string chunk_a = a.SerializeAsString();
  chunk_a += std::string("\xa0\x06\x05", 3);  // field 100, varint 5
  const std::string chunk_b = b.SerializeAsString();
  std::string bytes;
  bytes += '\x2a';
  bytes += static_cast<char>(chunk_a.size());
  bytes += chunk_a;
  bytes += "\x0a\x02id";  // run_id after the chunk
  bytes += '\x2a';
  bytes += static_cast<char>(chunk_b.size());
  bytes += chunk_b;
  v1::RunEvent reference;
  ASSERT_TRUE(reference.ParseFromString(bytes));
  ReceivedEvent r;
  ASSERT_TRUE(ParseRunEvent(Cut(bytes, {3, 5}), &r).ok());
  EXPECT_EQ(Joined(r), "second");
  EXPECT_EQ(reference.tensor_chunk().data(), "second");
  EXPECT_EQ(r.event.run_id(), "id");
  EXPECT_EQ(r.event.tensor_chunk().name(), "outputs");
  EXPECT_EQ(r.event.tensor_chunk().offset(), 9);
}

TEST(EventWireTest, TruncatedOrForeignBytesAreDataLoss) {
  const auto array = Ramp(64);
  const std::string whole = Flatten(
      SerializeChunkEvent(ChunkHeader(*array), array, array->raw(), 256));
  // Every cut inside the chunk field leaves a length that runs past the end.
  const size_t chunk_start = whole.find('\x2a');
  for (size_t len = chunk_start + 1; len < whole.size(); ++len) {
    ReceivedEvent r;
    const absl::Status s = ParseRunEvent(Cut(whole.substr(0, len), {7}), &r);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << "length " << len;
  }
  // A chunk whose length ends one byte before its data does: protobuf
  // refuses it, and so must the reader, without reading past the chunk.
  {
    v1::TensorChunk c;
    c.set_data("abcd");
    std::string chunk = c.SerializeAsString();
    std::string bytes = "\x2a";
    bytes += static_cast<char>(chunk.size() - 1);
    bytes += chunk;
    v1::RunEvent reference;
    EXPECT_FALSE(reference.ParseFromString(bytes));
    ReceivedEvent r;
    EXPECT_EQ(ParseRunEvent(Cut(bytes, {2}), &r).code(),
              absl::StatusCode::kDataLoss);
  }
}

// A tag written as a six-byte varint (a legal encoding of the value, but
// protobuf reads tags of at most five bytes) was accepted here and refused
// by protobuf: the reader disagreed with its own invariant. Five-byte tags
// whose value overflows 32 bits are read modulo 2^32, as protobuf does.
TEST(EventWireTest, TagsLongerThanFiveBytesAreRefusedAsProtobufDoes) {
  google::protobuf::LogSilencer quiet;
  // run_id "a", then field 1000 (varint) as c0 be 80 80 80 00 and value 1.
  const std::string six("\x0a\x01\x61\xc0\xbe\x80\x80\x80\x00\x01", 10);
  v1::RunEvent reference;
  EXPECT_FALSE(reference.ParseFromString(six));
  ReceivedEvent r;
  EXPECT_EQ(ParseRunEvent(Cut(six, {4}), &r).code(),
            absl::StatusCode::kDataLoss);
  // The same field with a five-byte tag: both accept it.
  const std::string five("\x0a\x01\x61\xc0\xbe\x80\x80\x00\x01", 9);
  ASSERT_TRUE(reference.ParseFromString(five));
  ASSERT_TRUE(ParseRunEvent(Cut(five, {4}), &r).ok());
  EXPECT_EQ(r.event.SerializeAsString(), reference.SerializeAsString());
  // Bits above 32 in a five-byte tag are dropped by both: 0x70 in the last
  // byte sets three bits above bit 31, and field 1000 remains.
  const std::string wide("\x0a\x01\x61\xc0\xbe\x80\x80\x70\x01", 9);
  const bool protobuf_ok = reference.ParseFromString(wide);
  const bool ours_ok = ParseRunEvent(Cut(wide, {4}), &r).ok();
  EXPECT_EQ(ours_ok, protobuf_ok);
  if (protobuf_ok && ours_ok) {
    EXPECT_EQ(r.event.SerializeAsString(), reference.SerializeAsString());
  }
}

// Reads `bytes` as protobuf does and with ParseRunEvent (cut into slices of
// 3 bytes); both must accept and read the same event, or both refuse.
void ExpectReadAsProtobufReads(const std::string& bytes) {
  v1::RunEvent reference;
  const bool protobuf_ok = reference.ParseFromString(bytes);
  ReceivedEvent r;
  const absl::Status s = ParseRunEvent(Cut(bytes, {3, 3, 3, 3, 3, 3}), &r);
  ASSERT_EQ(s.ok(), protobuf_ok) << s;
  if (!protobuf_ok) {
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
    return;
  }
  v1::RunEvent got = r.event;
  if (got.has_tensor_chunk()) got.mutable_tensor_chunk()->set_data(Joined(r));
  EXPECT_EQ(got.SerializeAsString(), reference.SerializeAsString());
}

// `inner` wrapped in `depth` nested groups of field 9 (unknown to RunEvent
// and TensorChunk).
std::string Groups(int depth, const std::string& inner) {
  std::string bytes;
  for (int i = 0; i < depth; ++i) bytes += '\x4b';  // field 9, start group
  bytes += inner;
  for (int i = 0; i < depth; ++i) bytes += '\x4c';  // field 9, end group
  return bytes;
}

std::string Varint(uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out += static_cast<char>(v | 0x80);
  return out + static_cast<char>(v);
}

std::string ChunkField(const std::string& chunk) {
  return "\x2a" + Varint(chunk.size()) + chunk;
}

// Found by fuzz/event_wire_fuzzer.cc: protobuf reads an unknown field of
// the group wire types (nested up to its recursion limit of 100, counting
// the tensor chunk itself), and ParseRunEvent refused every group.
TEST(EventWireTest, UnknownGroupsAreReadAsProtobufReadsThem) {
  google::protobuf::LogSilencer quiet;
  // A group with a varint inside, beside run_id and inside a chunk.
  const std::string group = Groups(1, std::string("\x08\x07", 2));
  ExpectReadAsProtobufReads("\x0a\x02id" + group);
  ExpectReadAsProtobufReads(ChunkField("\x0a\x01x" + group +
                                       "\x32\x02"
                                       "ab"));
  {
    v1::RunEvent reference;
    ASSERT_TRUE(reference.ParseFromString("\x0a\x02id" + group));
  }
  // At the depth limit and one past it, at the top and inside the chunk.
  for (int depth : {98, 99, 100, 101}) {
    SCOPED_TRACE(depth);
    ExpectReadAsProtobufReads(Groups(depth, ""));
    const std::string in_chunk = Groups(depth, "");
    ExpectReadAsProtobufReads("\x2a" + Varint(in_chunk.size()) + in_chunk);
  }
  // An end tag of another field, a missing end, an end without a start.
  ExpectReadAsProtobufReads(std::string("\x4b\x54", 2));
  ExpectReadAsProtobufReads(std::string("\x4b\x08\x01", 3));
  ExpectReadAsProtobufReads(std::string("\x4c", 1));
  ExpectReadAsProtobufReads(ChunkField(std::string("\x4b", 1)));
}

// Found by fuzz/event_wire_fuzzer.cc: a tensor chunk beside another member
// of the oneof `event` was refused, where protobuf keeps the member read
// last (a replaced member must still parse; one member's occurrences merge).
TEST(EventWireTest, ChunkBesideAnotherEventFollowsProtobufsOneof) {
  google::protobuf::LogSilencer quiet;
  v1::RunEvent progress;
  progress.mutable_progress()->set_step(1);
  const std::string p = progress.SerializeAsString();
  v1::RunEvent epoch;
  epoch.mutable_progress()->set_epoch(2);
  const std::string e = epoch.SerializeAsString();
  const std::string chunk =
      ChunkField(std::string("\x0a\x01x\x32\x02"
                             "ab",
                             7));
  ExpectReadAsProtobufReads(p + chunk);      // the chunk
  ExpectReadAsProtobufReads(chunk + p);      // the progress
  ExpectReadAsProtobufReads(p + chunk + e);  // epoch 2 only, not step 1
  ExpectReadAsProtobufReads(chunk + p + chunk + "\x0a\x02id");
  ReceivedEvent r;
  ASSERT_TRUE(ParseRunEvent(Cut(p + chunk, {2}), &r).ok());
  EXPECT_TRUE(r.event.has_tensor_chunk());
  EXPECT_EQ(Joined(r), "ab");
  ASSERT_TRUE(ParseRunEvent(Cut(p + chunk + e, {2}), &r).ok());
  EXPECT_EQ(r.event.progress().step(), 0);
  EXPECT_EQ(r.event.progress().epoch(), 2);
  EXPECT_TRUE(r.data.empty());
  // A replaced member that does not parse (a string that is not UTF-8)
  // fails the event, in protobuf and here.
  const std::string bad_chunk = ChunkField(std::string("\x0a\x01\xff", 3));
  ExpectReadAsProtobufReads(bad_chunk + p);
  v1::RunEvent failed;
  failed.mutable_failed()->set_message("x");
  std::string bad_failed = failed.SerializeAsString();
  bad_failed.back() = '\xff';
  ExpectReadAsProtobufReads(bad_failed + chunk);
  {
    v1::RunEvent reference;
    EXPECT_FALSE(reference.ParseFromString(bad_failed + chunk));
    EXPECT_TRUE(reference.ParseFromString(p + chunk + e));
  }
}

TEST(EventWireTest, AgreesWithProtobufOnRandomBytes) {
  // Whatever ParseRunEvent accepts, protobuf accepts and reads the same;
  // whatever protobuf refuses, ParseRunEvent refuses. Inputs are mutations
  // of real events, so most get past the first bytes.
  const auto array = Ramp(16);
  std::vector<std::string> seeds = {
      Flatten(
          SerializeChunkEvent(ChunkHeader(*array), array, array->raw(), 64)),
      Flatten(SerializeRunEvent(v1::RunEvent()))};
  {
    v1::RunEvent e;
    e.mutable_failed()->set_message("boom");
    seeds.push_back(e.SerializeAsString());
  }
  // Mutated strings are often not UTF-8; protobuf would log each refusal.
  google::protobuf::LogSilencer quiet;
  std::mt19937 rng(7);
  int accepted = 0;
  for (int k = 0; k < 20000; ++k) {
    std::string bytes = seeds[k % seeds.size()];
    const int edits = 1 + rng() % 3;
    for (int i = 0; i < edits && !bytes.empty(); ++i) {
      const size_t at = rng() % bytes.size();
      switch (rng() % 3) {
        case 0:
          bytes[at] = static_cast<char>(rng());
          break;
        case 1:
          bytes.erase(at, 1 + rng() % 4);
          break;
        default:
          bytes.insert(at, 1, static_cast<char>(rng()));
      }
    }
    v1::RunEvent reference;
    const bool protobuf_ok = reference.ParseFromString(bytes);
    ReceivedEvent r;
    const bool ok = ParseRunEvent(Cut(bytes, {1, 2, 3}), &r).ok();
    if (!protobuf_ok) {
      EXPECT_FALSE(ok) << "accepted what protobuf refuses, case " << k;
      continue;
    }
    EXPECT_TRUE(ok) << "refused what protobuf accepts, case " << k;
    if (!ok) continue;
    ++accepted;
    v1::RunEvent got = r.event;
    if (got.has_tensor_chunk()) got.mutable_tensor_chunk()->set_data(Joined(r));
    // Unknown fields are kept by both, in the same bytes.
    EXPECT_EQ(got.SerializeAsString(), reference.SerializeAsString())
        << "case " << k;
  }
  EXPECT_GT(accepted, 1000);  // the comparison was exercised
}

TEST(EventWireTest, AssemblerTakesDataInPieces) {
  // The chunk's data split into pieces reassembles exactly, and a damaged
  // piece fails the chunk's crc32c.
  NdArray a(DType::kFloat64, {3000});
  for (int64_t i = 0; i < a.size(); ++i) a.data<double>()[i] = 1.0 / (i + 1);
  std::vector<v1::TensorChunk> chunks;
  EmitTensorChunks(
      "outputs", a,
      [&](v1::TensorChunk* c) { return chunks.push_back(*c), true; }, nullptr,
      10000);
  ASSERT_EQ(chunks.size(), 3u);
  TensorAssembler assembler;
  for (const v1::TensorChunk& c : chunks) {
    const auto* p = reinterpret_cast<const uint8_t*>(c.data().data());
    const size_t n = c.data().size();
    const std::vector<absl::Span<const uint8_t>> pieces = {
        {p, 1}, {p + 1, 0}, {p + 1, n / 2}, {p + 1 + n / 2, n - 1 - n / 2}};
    ASSERT_TRUE(assembler.Add(c, pieces).ok());
  }
  auto done = assembler.Finish();
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->size(), 1u);
  EXPECT_EQ((*done)[0].array, a);

  std::string damaged = chunks[0].data();
  damaged[5000] ^= 1;
  const auto* p = reinterpret_cast<const uint8_t*>(damaged.data());
  const std::vector<absl::Span<const uint8_t>> pieces = {
      {p, 4000}, {p + 4000, damaged.size() - 4000}};
  TensorAssembler other;
  const absl::Status s = other.Add(chunks[0], pieces);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("crc32c"));
}

}  // namespace
}  // namespace driftscope
