// Chunked tensors: crc32c against the published check value, round trips,
// and every kind of damage a stream can suffer detected as DATA_LOSS naming
// the tensor.
#include "proto/lib/tensor_stream.h"

#include <cstring>
#include <string>
#include <vector>

#include "engine/core/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/crc32c.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

NdArray Ramp(std::vector<int64_t> shape) {
  NdArray a(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < a.size(); ++i) a.data<float>()[i] = 0.5f * i - 7;
  return a;
}

std::vector<v1::TensorChunk> Chunks(const std::string& name, const NdArray& a,
                                    int64_t chunk_bytes = kMaxChunkBytes) {
  std::vector<v1::TensorChunk> out;
  EmitTensorChunks(
      name, a,
      [&](v1::TensorChunk* c) {
        out.push_back(*c);
        return true;
      },
      nullptr, chunk_bytes);
  return out;
}

TEST(Crc32cTest, CheckValueAndHardwareMatchesTable) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);  // RFC 3720 B.4 check
  EXPECT_EQ(Crc32cPortable("123456789", 9), 0xE3069283u);
  std::string bytes(1000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  for (size_t start : {0, 1, 3, 8}) {
    for (size_t len : {0, 1, 7, 8, 9, 100, 991}) {
      EXPECT_EQ(Crc32c(bytes.data() + start, len),
                Crc32cPortable(bytes.data() + start, len));
    }
  }
  // Continuing over two pieces gives the CRC of the whole.
  EXPECT_EQ(Crc32c(bytes.data() + 500, 500, Crc32c(bytes.data(), 500)),
            Crc32c(bytes.data(), 1000));
}

TEST(Crc32cTest, ThreeLaneHardwarePathMatchesTableOnLongInputs) {
  // Long inputs run in three interleaved 4 KiB lanes joined by a shift;
  // lengths around the 12 KiB stripe, unaligned starts, a continued CRC.
  std::string bytes(100000, '\0');
  uint32_t x = 12345;
  for (char& c : bytes) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  for (size_t start : {0, 3}) {
    for (size_t len : {12287, 12288, 12293, 28685, 65536, 99990}) {
      EXPECT_EQ(Crc32c(bytes.data() + start, len),
                Crc32cPortable(bytes.data() + start, len))
          << start << " " << len;
      EXPECT_EQ(Crc32c(bytes.data() + start, len, 0xDEADBEEFu),
                Crc32cPortable(bytes.data() + start, len, 0xDEADBEEFu));
    }
  }
}

TEST(TensorStreamTest, RoundTripInChunksOfAtMostOneMiB) {
  const NdArray a = Ramp({3, 1000, 300});  // 3.6 MB: 4 chunks
  const std::vector<v1::TensorChunk> chunks = Chunks("outputs", a);
  ASSERT_EQ(chunks.size(), 4u);
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_LE(static_cast<int64_t>(chunks[i].data().size()), kMaxChunkBytes);
    EXPECT_EQ(chunks[i].offset(), static_cast<int64_t>(i) * kMaxChunkBytes);
    EXPECT_EQ(chunks[i].sha256().empty(), i + 1 < chunks.size());
  }
  EXPECT_EQ(chunks.back().sha256(), Sha256Hex(a.raw(), a.nbytes()));
  TensorAssembler assembler;
  for (const auto& c : chunks) ASSERT_TRUE(assembler.Add(c).ok());
  auto done = assembler.Finish();
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->size(), 1u);
  EXPECT_EQ((*done)[0].name, "outputs");
  EXPECT_TRUE((*done)[0].array == a);
}

TEST(TensorStreamTest, LargeTensorsHashedBesideTheStreamRoundTrip) {
  // Above kBackgroundHashBytes both ends hash on a helper thread; the
  // digest and the checks are the same.
  const NdArray a = Ramp({6, 1 << 18});  // 6 MiB
  ASSERT_GE(a.nbytes(), kBackgroundHashBytes);
  std::string sent_sha;
  std::vector<v1::TensorChunk> chunks;
  ASSERT_TRUE(EmitTensorChunks(
      "outputs", a,
      [&](v1::TensorChunk* c) {
        chunks.push_back(*c);
        return true;
      },
      &sent_sha));
  ASSERT_EQ(chunks.size(), 6u);
  EXPECT_EQ(sent_sha, Sha256Hex(a.raw(), a.nbytes()));
  EXPECT_EQ(chunks.back().sha256(), sent_sha);
  TensorAssembler assembler;
  for (const auto& c : chunks) ASSERT_TRUE(assembler.Add(c).ok());
  auto done = assembler.Finish();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE((*done)[0].array == a);

  // A forged chunk with a matching crc32c fails the background sha256.
  std::string* data = chunks[2].mutable_data();
  (*data)[12345] ^= 0x10;
  chunks[2].set_crc32c(Crc32c(data->data(), data->size()));
  TensorAssembler forged;
  absl::Status s;
  for (const auto& c : chunks) {
    s = forged.Add(c);
    if (!s.ok()) break;
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("sha256"));

  // Abandoned half way: Finish names the truncated tensor, nothing hangs.
  TensorAssembler half;
  for (size_t i = 0; i < 3; ++i) ASSERT_TRUE(half.Add(chunks[i]).ok());
  EXPECT_THAT(half.Finish().status().message(),
              HasSubstr("\"outputs\": truncated"));
}

TEST(TensorStreamTest, SenderStopsWhenTheReceiverIsGone) {
  const NdArray a = Ramp({32, 1 << 18});  // 32 MiB
  int emitted = 0;
  EXPECT_FALSE(EmitTensorChunks(
      "outputs", a, [&](v1::TensorChunk*) { return ++emitted < 2; }));
  EXPECT_EQ(emitted, 2);
}

TEST(TensorStreamTest, EmptyTensorIsOneChunk) {
  const NdArray a(DType::kFloat64, {0, 4});
  const auto chunks = Chunks("losses", a);
  ASSERT_EQ(chunks.size(), 1u);
  TensorAssembler assembler;
  ASSERT_TRUE(assembler.Add(chunks[0]).ok());
  auto done = assembler.Finish();
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE((*done)[0].array == a);
}

TEST(TensorStreamTest, FlippedBitIsDataLossNamingTheTensor) {
  auto chunks = Chunks("layer0_kernel", Ramp({1000}), 1000);
  (*chunks[2].mutable_data())[17] ^= 0x01;
  TensorAssembler assembler;
  ASSERT_TRUE(assembler.Add(chunks[0]).ok());
  ASSERT_TRUE(assembler.Add(chunks[1]).ok());
  absl::Status s = assembler.Add(chunks[2]);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("\"layer0_kernel\""));
  EXPECT_THAT(s.message(), HasSubstr("crc32c"));
}

TEST(TensorStreamTest, ForgedChunkWithValidCrcFailsTheSha256) {
  auto chunks = Chunks("outputs", Ramp({1000}), 1000);
  std::string* data = chunks[1].mutable_data();
  (*data)[3] ^= 0x40;
  chunks[1].set_crc32c(Crc32c(data->data(), data->size()));
  TensorAssembler assembler;
  absl::Status s;
  for (const auto& c : chunks) {
    s = assembler.Add(c);
    if (!s.ok()) break;
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("sha256"));
  EXPECT_THAT(s.message(), HasSubstr("\"outputs\""));
}

TEST(TensorStreamTest, TruncatedStreamIsDataLossAtFinish) {
  auto chunks = Chunks("epoch0", Ramp({1000}), 1000);
  chunks.pop_back();
  TensorAssembler assembler;
  for (const auto& c : chunks) ASSERT_TRUE(assembler.Add(c).ok());
  auto done = assembler.Finish();
  EXPECT_EQ(done.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(done.status().message(), HasSubstr("\"epoch0\": truncated"));
}

TEST(TensorStreamTest, MissingRepeatedOrAlteredChunksAreDataLoss) {
  const auto chunks = Chunks("outputs", Ramp({1000}), 1000);
  {
    TensorAssembler a;  // a chunk skipped
    ASSERT_TRUE(a.Add(chunks[0]).ok());
    EXPECT_EQ(a.Add(chunks[2]).code(), absl::StatusCode::kDataLoss);
  }
  {
    TensorAssembler a;  // a chunk repeated
    ASSERT_TRUE(a.Add(chunks[0]).ok());
    EXPECT_EQ(a.Add(chunks[0]).code(), absl::StatusCode::kDataLoss);
  }
  {
    TensorAssembler a;  // the stream starts in the middle
    EXPECT_EQ(a.Add(chunks[1]).code(), absl::StatusCode::kDataLoss);
  }
  {
    TensorAssembler a;  // the shape changes between chunks
    ASSERT_TRUE(a.Add(chunks[0]).ok());
    v1::TensorChunk c = chunks[1];
    c.set_shape(0, 999);
    EXPECT_EQ(a.Add(c).code(), absl::StatusCode::kDataLoss);
  }
  {
    TensorAssembler a;  // total_bytes that does not match the shape
    v1::TensorChunk c = chunks[0];
    c.set_total_bytes(4004);
    EXPECT_EQ(a.Add(c).code(), absl::StatusCode::kDataLoss);
  }
}

TEST(TensorStreamTest, ResultTensorsRoundTripThroughNames) {
  RunResult r;
  r.outputs = Ramp({2, 3, 4});
  r.losses = Ramp({5});
  r.epoch_outputs = {Ramp({2, 3, 4}), Ramp({2, 3, 4})};
  r.epoch_outputs[1].data<float>()[0] = 99;
  r.final_weights = {{"layer0_kernel", Ramp({1, 8})},
                     {"layer0_bias", Ramp({8})}};
  r.final_states = {{"state_h", Ramp({2, 2})}};
  RunResult taken = r, back;
  ASSERT_TRUE(
      PlaceResultTensors(TakeResultTensors(&taken, CaptureSet{}), &back).ok());
  EXPECT_TRUE(back.outputs == r.outputs);
  EXPECT_TRUE(back.losses == r.losses);
  ASSERT_EQ(back.epoch_outputs.size(), 2u);
  EXPECT_TRUE(back.epoch_outputs[1] == r.epoch_outputs[1]);
  ASSERT_EQ(back.final_weights.size(), 2u);
  EXPECT_EQ(back.final_weights[1].name, "layer0_bias");
  ASSERT_EQ(back.final_states.size(), 1u);
  taken = r;
  EXPECT_EQ(
      TakeResultTensors(&taken, CaptureSet{true, false, false, false, false})
          .size(),
      1u);
}

TEST(TensorStreamTest, OversizeTensorIsRefusedBeforeAnyMemoryIsTaken) {
  // A sender announcing more than the receiver accepts (by default: more
  // than this machine's memory) gets ResourceExhausted on the first chunk,
  // not an allocation that fails or an out-of-memory kill later.
  v1::TensorChunk huge;
  huge.set_name("outputs");
  huge.set_dtype(v1::FLOAT32);
  huge.add_shape(int64_t{1} << 46);
  huge.set_total_bytes(int64_t{1} << 48);  // 256 TiB
  huge.set_offset(0);
  huge.set_crc32c(Crc32c("", 0));
  TensorAssembler assembler;
  absl::Status s = assembler.Add(huge);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("\"outputs\""));

  const std::vector<v1::TensorChunk> chunks = Chunks("losses", Ramp({500}));
  TensorAssembler small(1000);  // the tensor is 2000 bytes
  s = small.Add(chunks[0]);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("2000 bytes announced"));
  TensorAssembler enough(2000);
  EXPECT_TRUE(enough.Add(chunks[0]).ok());
}

TEST(TensorStreamTest, KnownSha256IsSentAndStillCheckedByTheReceiver) {
  // A sender that has just verified the bytes (a blob read back) passes the
  // digest instead of hashing again; the receiver checks it all the same,
  // so a wrong one cannot slip through.
  const NdArray a = Ramp({300000});  // large enough for the background path
  const std::string sha = Sha256Hex(a.raw(), static_cast<size_t>(a.nbytes()));
  std::vector<v1::TensorChunk> chunks;
  std::string reported;
  ASSERT_TRUE(EmitTensorChunks(
      "outputs", a,
      [&](v1::TensorChunk* c) { return chunks.push_back(*c), true; }, &reported,
      kMaxChunkBytes, sha));
  EXPECT_EQ(reported, sha);
  EXPECT_EQ(chunks.back().sha256(), sha);
  TensorAssembler good;
  for (const auto& c : chunks) ASSERT_TRUE(good.Add(c).ok());

  std::string wrong = sha;
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  chunks.clear();
  ASSERT_TRUE(EmitTensorChunks(
      "outputs", a,
      [&](v1::TensorChunk* c) { return chunks.push_back(*c), true; }, nullptr,
      kMaxChunkBytes, wrong));
  TensorAssembler bad;
  absl::Status s;
  for (const auto& c : chunks) s = bad.Add(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("sha256"));
}

TEST(TensorStreamTest, AssemblerReportsTheDigestsItChecked) {
  const NdArray a = Ramp({5000});
  const NdArray b = Ramp({3});
  TensorAssembler assembler;
  for (const auto& c : Chunks("outputs", a, 7000)) {
    ASSERT_TRUE(assembler.Add(c).ok());
  }
  for (const auto& c : Chunks("losses", b)) ASSERT_TRUE(assembler.Add(c).ok());
  ASSERT_TRUE(assembler.Finish().ok());
  EXPECT_EQ(assembler.digests().at("outputs"),
            Sha256Hex(a.raw(), static_cast<size_t>(a.nbytes())));
  EXPECT_EQ(assembler.digests().at("losses"),
            Sha256Hex(b.raw(), static_cast<size_t>(b.nbytes())));
}

}  // namespace
}  // namespace driftscope
