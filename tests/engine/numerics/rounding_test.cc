#include "engine/numerics/rounding.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "gtest/gtest.h"

namespace driftscope {
namespace {

float F(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

TEST(RoundingTest, Tf32KeepsTenMantissaBitsRoundingToNearestEven) {
  // 1 + 2^-10 is representable; 1 + 2^-11 is a tie and rounds to even (1).
  EXPECT_EQ(RoundToTf32(1.0f + 0x1p-10f), 1.0f + 0x1p-10f);
  EXPECT_EQ(RoundToTf32(1.0f + 0x1p-11f), 1.0f);
  // 1 + 3·2^-11 is a tie between 1+2^-10 (odd) and 1+2^-9 (even).
  EXPECT_EQ(RoundToTf32(1.0f + 3 * 0x1p-11f), 1.0f + 0x1p-9f);
  // Just above the tie rounds up.
  EXPECT_EQ(RoundToTf32(F(0x3F801001)), 1.0f + 0x1p-10f);
  EXPECT_EQ(RoundToTf32(-1.0f - 0x1p-10f), -1.0f - 0x1p-10f);
  EXPECT_TRUE(std::isnan(RoundToTf32(std::nanf(""))));
  EXPECT_EQ(RoundToTf32(std::numeric_limits<float>::infinity()),
            std::numeric_limits<float>::infinity());
  // The largest float rounds up into infinity, as hardware does.
  EXPECT_TRUE(std::isinf(RoundToTf32(std::numeric_limits<float>::max())));
}

TEST(RoundingTest, Bf16KeepsSevenMantissaBits) {
  EXPECT_EQ(RoundToBf16(1.0f + 0x1p-7f), 1.0f + 0x1p-7f);
  EXPECT_EQ(RoundToBf16(1.0f + 0x1p-8f), 1.0f);  // tie to even
  EXPECT_EQ(RoundToBf16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);
  EXPECT_EQ(RoundToBf16(3.14159265f), 3.140625f);
}

TEST(RoundingTest, Fp16HasItsRangeAndSubnormals) {
  EXPECT_EQ(RoundToFp16(65504.0f), 65504.0f);
  EXPECT_EQ(RoundToFp16(65519.0f), 65504.0f);
  EXPECT_TRUE(std::isinf(RoundToFp16(65520.0f)));
  EXPECT_EQ(RoundToFp16(1.0f + 0x1p-11f), 1.0f);  // tie to even
  EXPECT_EQ(RoundToFp16(1.0f + 0x1p-10f), 1.0f + 0x1p-10f);
  EXPECT_EQ(RoundToFp16(0x1p-24f), 0x1p-24f);  // smallest subnormal
  EXPECT_EQ(RoundToFp16(0x1p-25f), 0.0f);      // tie to even (zero)
  EXPECT_EQ(RoundToFp16(0x1.8p-25f), 0x1p-24f);
  EXPECT_EQ(RoundToFp16(3 * 0x1p-25f), 2 * 0x1p-24f);  // 1.5 quanta -> 2
  EXPECT_EQ(RoundToFp16(-0.1f), -0.0999755859375f);
}

TEST(RoundingTest, StochasticRoundingPicksNeighboursInProportion) {
  const double x = 1.0 + 0.25 * 0x1p-23;  // a quarter of the way up
  int up = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    float r = StochasticRoundToFloat(x, (i + 0.5f) / n);
    ASSERT_TRUE(r == 1.0f || r == 1.0f + 0x1p-23f);
    up += r != 1.0f;
  }
  EXPECT_EQ(up, n / 4);
  EXPECT_EQ(StochasticRoundToFloat(2.0, 0.999f), 2.0f);  // exact stays
}

}  // namespace
}  // namespace driftscope
