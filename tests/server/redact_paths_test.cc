// RedactServerPaths: what a daemon's errors tell clients keeps the words
// and loses the server's file system.
#include <string>

#include "gtest/gtest.h"
#include "proto/lib/status.h"

namespace driftscope {
namespace {

TEST(RedactServerPathsTest, AbsolutePathsKeepOnlyTheirLastComponent) {
  EXPECT_EQ(RedactServerPaths("blob /srv/store/blobs/ab/cdef is corrupt"),
            "blob cdef is corrupt");
  EXPECT_EQ(RedactServerPaths("/srv/store/coordinator.db: disk I/O error"),
            "coordinator.db: disk I/O error");
  EXPECT_EQ(RedactServerPaths("cannot create \"/var/lib/x/tmp/ab-123\": No "
                              "space left on device"),
            "cannot create \"ab-123\": No space left on device");
  EXPECT_EQ(RedactServerPaths("(--store_dir=/var/lib/driftscope/, a; "
                              "/opt/lib/libdriftscope_cuda.so)"),
            "(--store_dir=driftscope, a; libdriftscope_cuda.so)");
}

TEST(RedactServerPathsTest, TextWithoutPathsIsUnchanged) {
  for (const std::string text :
       {"spec.model.layers[1].lstm.units must be in [1, 4096], got 0",
        "2.1 GB/s and 1/2 of it", "a / b", "at /", "rate /s",
        "see https://example.invalid/a/b", "x has shape (5, 10, 3)", ""}) {
    EXPECT_EQ(RedactServerPaths(text), text);
  }
}

TEST(RedactServerPathsTest, GrpcStatusCarriesTheRedactedMessage) {
  const grpc::Status s = ToGrpcStatus(
      absl::DataLossError("blob /srv/store/blobs/ab/cd is corrupt"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(s.error_message(), "blob cd is corrupt");
}

}  // namespace
}  // namespace driftscope
