#include "engine/numerics/rounding.h"

#include <cmath>
#include <cstdint>
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

uint32_t U(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// The case-by-case definitions (early returns), against which the
// branch-free ones are held.
float CaseMantissa(float x, int drop) {
  uint32_t u = U(x);
  if ((u & 0x7F800000u) == 0x7F800000u) return x;
  const uint32_t lsb = (u >> drop) & 1u;
  u += ((1u << (drop - 1)) - 1u) + lsb;
  u &= ~((1u << drop) - 1u);
  return F(u);
}
float CaseFp16(float x) {
  const uint32_t u = U(x), sign = u & 0x80000000u, a = u ^ sign;
  if (a >= 0x7F800000u) return x;
  if (a >= 0x477FF000u) return F(sign | 0x7F800000u);
  if (a < 0x38800000u) return F(sign | U((F(a) + 0.5f) - 0.5f));
  return F(sign | U(CaseMantissa(F(a), 13)));
}

TEST(RoundingTest, BranchFreeFormsEqualTheCaseByCaseDefinitions) {
  // Every sign and exponent; all 2^13 patterns of the bits that rounding
  // drops (TF32/fp16) under several kept parts, and a sweep of the rest.
  const uint32_t kept[] = {0, 0x3FF, 0x155, 0x2AA, 0x200};
  for (uint32_t se = 0; se < 512; ++se) {
    for (uint32_t hi : kept) {
      for (uint32_t lo = 0; lo < (1u << 13); ++lo) {
        const uint32_t bits = (se << 23) | (hi << 13) | lo;
        const float x = F(bits);
        ASSERT_EQ(U(RoundToFp16(x)), U(CaseFp16(x))) << std::hex << bits;
        ASSERT_EQ(U(RoundToTf32(x)), U(CaseMantissa(x, 13)))
            << std::hex << bits;
        ASSERT_EQ(U(RoundToBf16(x)), U(CaseMantissa(x, 16)))
            << std::hex << bits;
      }
    }
    for (uint32_t m = 0; m < (1u << 23); m += 4099) {
      const float x = F((se << 23) | m);
      ASSERT_EQ(U(RoundToFp16(x)), U(CaseFp16(x)));
      ASSERT_EQ(U(RoundToBf16(x)), U(CaseMantissa(x, 16)));
    }
  }
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
