#include "engine/train/shuffle.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <vector>

#include "engine/rng/philox.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

TEST(ShuffleTest, NoShuffleIsIdentity) {
  PhiloxStream rng(42, streams::kShuffle);
  std::vector<int64_t> order(100, -1);
  EpochOrder(false, &rng, &order);
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(ShuffleTest, PermutationsDifferPerEpochAndRepeatPerSeed) {
  PhiloxStream a(42, streams::kShuffle), b(42, streams::kShuffle);
  std::vector<int64_t> e1(100), e2(100), again(100);
  EpochOrder(true, &a, &e1);
  EpochOrder(true, &a, &e2);
  EpochOrder(true, &b, &again);
  EXPECT_EQ(e1, again);
  EXPECT_NE(e1, e2);
  std::vector<int64_t> sorted = e1;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> ids(100);
  std::iota(ids.begin(), ids.end(), 0);
  EXPECT_EQ(sorted, ids);
  std::vector<int64_t> identity = ids;
  EXPECT_NE(e1, identity);
}

TEST(ShuffleTest, AllPermutationsOfThreeEquallyLikely) {
  PhiloxStream rng(7, streams::kShuffle);
  std::map<std::vector<int64_t>, int> counts;
  constexpr int kDraws = 60000;
  std::vector<int64_t> order(3);
  for (int i = 0; i < kDraws; ++i) {
    EpochOrder(true, &rng, &order);
    ++counts[order];
  }
  ASSERT_EQ(counts.size(), 6u);
  // Chi-square with 5 degrees of freedom; 20.5 is the 0.999 quantile.
  double chi2 = 0;
  for (const auto& [perm, c] : counts) {
    const double e = kDraws / 6.0;
    chi2 += (c - e) * (c - e) / e;
  }
  EXPECT_LT(chi2, 20.5);
}

TEST(ShuffleTest, UniformBelowRejectsTheBiasedTail) {
  // range 3·2^30: 2^32 mod range = 2^30, so words below 2^30 are rejected
  // (they would make [0, 2^30) twice as likely) and the rest map by mod.
  PhiloxStream rng(1, 2), raw(1, 2);
  const uint32_t range = 3u << 30;
  for (int i = 0; i < 1000; ++i) {
    uint32_t w = raw.NextUint32();
    while (w < (1u << 30)) w = raw.NextUint32();
    EXPECT_EQ(UniformBelow(&rng, range), w % range);
  }
  EXPECT_EQ(UniformBelow(&rng, 1), 0u);
}

}  // namespace
}  // namespace driftscope
