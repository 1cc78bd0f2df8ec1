// The worker-stream reader (ParseRunEvent), differential against protobuf:
// the input is the bytes of one received RunEvent. Whatever protobuf's own
// RunEvent::ParseFromString accepts, ParseRunEvent accepts and reads the
// same (tensor chunk data included); whatever protobuf refuses, it refuses.
// gRPC hands a message over in slices cut anywhere, so every input is read
// both as one slice and cut into small ones, and both reads must agree.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "driftscope/v1/worker.pb.h"
#include "fuzz/fuzz_util.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/lib/event_wire.h"

namespace driftscope::fuzz {
namespace {

// `bytes` in slices of 1..7 bytes, the lengths taken from the first byte.
grpc::ByteBuffer Cut(const std::string& bytes) {
  const unsigned seed = bytes.empty() ? 0 : static_cast<uint8_t>(bytes[0]);
  std::vector<grpc::Slice> slices;
  size_t at = 0;
  for (unsigned k = 0; at < bytes.size(); ++k) {
    const size_t len =
        std::min<size_t>(1 + (seed >> (k % 6)) % 7, bytes.size() - at);
    slices.emplace_back(bytes.data() + at, len);
    at += len;
  }
  if (slices.empty()) slices.emplace_back();
  return grpc::ByteBuffer(slices.data(), slices.size());
}

grpc::ByteBuffer Whole(const std::string& bytes) {
  grpc::Slice only(bytes.data(), bytes.size());
  return grpc::ByteBuffer(&only, 1);
}

// What ParseRunEvent read, as one protobuf message (chunk data joined).
std::string Read(const ReceivedEvent& r) {
  v1::RunEvent event = r.event;
  if (event.has_tensor_chunk()) {
    std::string data;
    for (absl::Span<const uint8_t> piece : r.data) {
      data.append(reinterpret_cast<const char*>(piece.data()), piece.size());
    }
    event.mutable_tensor_chunk()->set_data(data);
  }
  return event.SerializeAsString();
}

void Check(const std::string& bytes) {
  v1::RunEvent reference;
  const bool protobuf_ok = reference.ParseFromString(bytes);
  ReceivedEvent whole, cut;
  const absl::Status whole_status = ParseRunEvent(Whole(bytes), &whole);
  const absl::Status cut_status = ParseRunEvent(Cut(bytes), &cut);
  const std::string input =
      absl::StrCat(" on \"", absl::CHexEscape(bytes), "\"");
  if (whole_status.ok() != cut_status.ok()) {
    Fail(absl::StrCat("one slice: ", whole_status.ToString(),
                      "; cut: ", cut_status.ToString(), input));
  }
  if (whole_status.ok() != protobuf_ok) {
    Fail(absl::StrCat("protobuf ", protobuf_ok ? "accepts" : "refuses",
                      " but ParseRunEvent says ", whole_status.ToString(),
                      input));
  }
  if (!protobuf_ok) {
    if (whole_status.code() != absl::StatusCode::kDataLoss) {
      Fail(absl::StrCat("a refusal that is not DATA_LOSS: ",
                        whole_status.ToString()));
    }
    return;
  }
  const std::string expected = reference.SerializeAsString();
  if (Read(whole) != expected || Read(cut) != expected) {
    Fail(absl::StrCat("ParseRunEvent read another event than protobuf:\n",
                      reference.DebugString(), "vs\n",
                      whole.event.DebugString(), input));
  }
}

}  // namespace
}  // namespace driftscope::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Refused UTF-8 would be logged by protobuf for every such input.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  driftscope::fuzz::Check(
      std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
