// FileBlobStore: content addressing, idempotence, corruption detection.
#include "server/coordinator/blob_store.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/coordinator/store_test_util.h"

namespace driftscope::coordinator {
namespace {

using ::driftscope::testing::StoreDir;
using ::testing::HasSubstr;

// SHA-256("abc"), FIPS 180-2 appendix B.1.
constexpr char kAbc[] =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

std::unique_ptr<FileBlobStore> OpenBlobs(const std::string& root) {
  absl::StatusOr<std::unique_ptr<FileBlobStore>> blobs =
      FileBlobStore::Open(root);
  EXPECT_TRUE(blobs.ok()) << blobs.status();
  return blobs.ok() ? *std::move(blobs) : nullptr;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(FileBlobStoreTest, PutStoresTheBytesUnderTheirSha256) {
  StoreDir dir;
  std::unique_ptr<FileBlobStore> blobs = OpenBlobs(dir.path());
  ASSERT_NE(blobs, nullptr);
  absl::StatusOr<std::string> key = blobs->Put("abc");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(*key, kAbc);
  EXPECT_EQ(blobs->PathOf(kAbc),
            dir.path() + "/ba/" + std::string(kAbc).substr(2));
  EXPECT_EQ(ReadFile(blobs->PathOf(kAbc)), "abc");
  EXPECT_TRUE(blobs->Has(kAbc));
  absl::StatusOr<std::string> back = blobs->Get(kAbc);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "abc");
  // Idempotent: the same key, one file.
  EXPECT_EQ(blobs->Put("abc").value_or(""), kAbc);
  EXPECT_EQ(
      std::distance(std::filesystem::directory_iterator(dir.path() + "/ba"),
                    std::filesystem::directory_iterator()),
      1);
}

TEST(FileBlobStoreTest, EmptyAndBinaryBlobsRoundTrip) {
  StoreDir dir;
  std::unique_ptr<FileBlobStore> blobs = OpenBlobs(dir.path());
  ASSERT_NE(blobs, nullptr);
  std::string binary(200000, '\0');
  for (size_t i = 0; i < binary.size(); ++i) {
    binary[i] = static_cast<char>(i * 7919 % 251);
  }
  for (const std::string& data : {std::string(), binary}) {
    absl::StatusOr<std::string> key = blobs->Put(data);
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(blobs->Get(*key).value_or("<missing>"), data);
  }
}

TEST(FileBlobStoreTest, MissingAndMalformedKeys) {
  StoreDir dir;
  std::unique_ptr<FileBlobStore> blobs = OpenBlobs(dir.path());
  ASSERT_NE(blobs, nullptr);
  const std::string absent(64, '0');
  EXPECT_FALSE(blobs->Has(absent));
  EXPECT_TRUE(absl::IsNotFound(blobs->Get(absent).status()));
  for (const std::string& bad :
       {std::string("abc"), std::string(64, 'A'), std::string(64, 'g'),
        std::string("../") + std::string(61, '0')}) {
    EXPECT_FALSE(blobs->Has(bad)) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(blobs->Get(bad).status())) << bad;
  }
}

TEST(FileBlobStoreTest, CorruptedBlobIsDataLoss) {
  StoreDir dir;
  std::unique_ptr<FileBlobStore> blobs = OpenBlobs(dir.path());
  ASSERT_NE(blobs, nullptr);
  ASSERT_TRUE(blobs->Put("abc").ok());
  std::ofstream(blobs->PathOf(kAbc), std::ios::binary | std::ios::trunc)
      << "abd";  // one flipped bit, same size
  absl::Status s = blobs->Get(kAbc).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("corrupt"));
}

TEST(FileBlobStoreTest, GetIntoReadsStraightIntoTheBufferAndChecksIt) {
  StoreDir dir;
  std::unique_ptr<FileBlobStore> blobs = OpenBlobs(dir.path());
  ASSERT_NE(blobs, nullptr);
  std::string big(3 << 20, '\0');  // several read() calls
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31);
  absl::StatusOr<std::string> key = blobs->Put(big);
  ASSERT_TRUE(key.ok()) << key.status();
  std::vector<uint8_t> out(big.size());
  ASSERT_TRUE(blobs->GetInto(*key, absl::MakeSpan(out)).ok());
  EXPECT_EQ(std::memcmp(out.data(), big.data(), big.size()), 0);

  // The wrong size is named, and nothing is read.
  std::vector<uint8_t> small(big.size() - 1);
  absl::Status s = blobs->GetInto(*key, absl::MakeSpan(small));
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat(big.size(), " bytes")));
  // Missing, malformed and corrupt keys as for Get.
  std::vector<uint8_t> three(3);
  EXPECT_TRUE(absl::IsNotFound(blobs->GetInto(kAbc, absl::MakeSpan(three))));
  EXPECT_TRUE(absl::IsInvalidArgument(
      blobs->GetInto("not-a-key", absl::MakeSpan(three))));
  ASSERT_TRUE(blobs->Put("abc").ok());
  std::ofstream(blobs->PathOf(kAbc), std::ios::binary | std::ios::trunc)
      << "abd";
  s = blobs->GetInto(kAbc, absl::MakeSpan(three));
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("corrupt"));
}

TEST(FileBlobStoreTest, PutVerifiedStoresUnderTheGivenKey) {
  StoreDir dir;
  std::unique_ptr<FileBlobStore> blobs = OpenBlobs(dir.path());
  ASSERT_NE(blobs, nullptr);
  absl::StatusOr<std::string> key = blobs->PutVerified("abc", kAbc);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(*key, kAbc);
  EXPECT_EQ(*blobs->Get(kAbc), "abc");
  // The caller's word is taken; a wrong digest shows when read back.
  const std::string wrong(64, 'b');
  ASSERT_TRUE(blobs->PutVerified("abd", wrong).ok());
  EXPECT_TRUE(absl::IsDataLoss(blobs->Get(wrong).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(blobs->PutVerified("abc", "ABC").status()));
}

TEST(FileBlobStoreTest, PutRepairsATruncatedBlob) {
  StoreDir dir;
  std::unique_ptr<FileBlobStore> blobs = OpenBlobs(dir.path());
  ASSERT_NE(blobs, nullptr);
  ASSERT_TRUE(blobs->Put("abc").ok());
  std::ofstream(blobs->PathOf(kAbc), std::ios::binary | std::ios::trunc)
      << "ab";
  ASSERT_TRUE(absl::IsDataLoss(blobs->Get(kAbc).status()));
  ASSERT_TRUE(blobs->Put("abc").ok());
  EXPECT_EQ(blobs->Get(kAbc).value_or(""), "abc");
}

TEST(FileBlobStoreTest, OpenRemovesTemporaryFilesACrashLeftBehind) {
  StoreDir dir;
  ASSERT_NE(OpenBlobs(dir.path()), nullptr);
  const std::string leftover = dir.path() + "/tmp/ba7816bf8f01cfea-Ab12Cd";
  std::ofstream(leftover) << "half a blob";
  ASSERT_TRUE(std::filesystem::exists(leftover));
  std::unique_ptr<FileBlobStore> blobs = OpenBlobs(dir.path());
  ASSERT_NE(blobs, nullptr);
  EXPECT_FALSE(std::filesystem::exists(leftover));
  EXPECT_FALSE(blobs->Has(kAbc));
}

}  // namespace
}  // namespace driftscope::coordinator
