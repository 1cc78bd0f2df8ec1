// BackgroundSha256 gives the digest Sha256Hex gives, however the range
// grows. (Abandoning one half way is covered by the tensor stream tests.)
#include "proto/lib/background_sha256.h"

#include <string>

#include "engine/core/sha256.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

std::string Bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 131 + (i >> 9));
  return s;
}

const uint8_t* U8(const std::string& s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

TEST(BackgroundSha256Test, DigestMatchesWhateverTheSteps) {
  const std::string bytes = Bytes(5 * 1000 * 1000 + 17);
  const std::string expected = Sha256Hex(bytes.data(), bytes.size());
  {
    BackgroundSha256 whole(U8(bytes));
    whole.Advance(bytes.size());
    EXPECT_EQ(whole.HexDigest(), expected);
  }
  {
    // Uneven steps, one repeated, as chunks of a stream arrive.
    BackgroundSha256 steps(U8(bytes));
    for (size_t end : {size_t{0}, size_t{1}, size_t{4096}, size_t{4096},
                       size_t{1 << 20}, size_t{3333333}, bytes.size()}) {
      steps.Advance(end);
    }
    EXPECT_EQ(steps.HexDigest(), expected);
  }
  {
    BackgroundSha256 empty(U8(bytes));
    EXPECT_EQ(empty.HexDigest(), Sha256Hex("", 0));
  }
}

}  // namespace
}  // namespace driftscope
