// Philox4x32-10 against the Random123 known answers, and TF's stateless
// random ops against goldens written by real TensorFlow
// (tests/golden/init/make_init_golden.py).
#include "engine/rng/philox.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/io/npy.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

std::string Golden(const std::string& name) {
  return std::string(DRIFTSCOPE_SOURCE_DIR) + "/tests/golden/init/" + name;
}

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Distance in units in the last place between two finite floats.
int64_t UlpDistance(float a, float b) {
  auto key = [](float f) -> int64_t {
    int32_t i;
    std::memcpy(&i, &f, 4);
    return i >= 0 ? int64_t{i} : int64_t{INT32_MIN} - i;
  };
  return std::llabs(key(a) - key(b));
}

TEST(PhiloxTest, Random123KnownAnswers) {
  EXPECT_EQ(Philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(Philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                          {0xffffffff, 0xffffffff}),
            (PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(Philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
                          {0xa4093822, 0x299f31d0}),
            (PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(PhiloxTest, TfKeyCounterForSeed42) {
  // Worked example of docs/numerics.md §10.2; the uniform goldens below
  // confirm it against TensorFlow.
  PhiloxKey key;
  PhiloxCounter counter;
  TfStatelessKeyCounter(42, 0, &key, &counter);
  EXPECT_EQ(key, (PhiloxKey{0x89e74cef, 0x53939b05}));
  EXPECT_EQ(counter, (PhiloxCounter{0, 0, 0x8e9181c6, 0xb2ca7bfa}));
}

TEST(PhiloxTest, ConversionsUseTheLowMantissaBits) {
  EXPECT_EQ(Uint32ToFloat(0), 0.0f);
  EXPECT_EQ(Uint32ToFloat(0xFF800000u), 0.0f);  // high 9 bits are ignored
  EXPECT_EQ(Uint32ToFloat(1), std::ldexp(1.0f, -23));
  EXPECT_EQ(Uint32ToFloat(0xFFFFFFFFu), 1.0f - std::ldexp(1.0f, -23));
  EXPECT_EQ(Uint64ToDouble(0, 0), 0.0);
  EXPECT_EQ(Uint64ToDouble(0, 1), std::ldexp(1.0, -52));
  EXPECT_EQ(Uint64ToDouble(1, 0), std::ldexp(1.0, -20));
  EXPECT_EQ(Uint64ToDouble(0xFFFFFFFFu, 0xFFFFFFFFu),
            1.0 - std::ldexp(1.0, -52));
}

TEST(PhiloxTest, StreamWalksConsecutiveCountersFromTheSeedCounter) {
  // Block j of a fill is Philox(counter + j); NextUint32 after NextBlock
  // starts a fresh block (unread words are dropped).
  PhiloxStream stream(42, 0);
  PhiloxKey key;
  PhiloxCounter counter;
  TfStatelessKeyCounter(42, 0, &key, &counter);
  EXPECT_EQ(stream.NextBlock(), Philox4x32_10(counter, key));
  counter[0] = 1;
  EXPECT_EQ(stream.NextBlock(), Philox4x32_10(counter, key));
  EXPECT_EQ(stream.NextUint32(),
            Philox4x32_10({2, 0, counter[2], counter[3]}, key)[0]);
}

struct SeedCase {
  uint64_t s0, s1;
};
const SeedCase kSeeds[] = {
    {42, 0}, {7, 1003}, {123456789, 2}, {(uint64_t{1} << 40) + 5, 3}};

TEST(PhiloxTest, StatelessUniformFloat32IsBitIdenticalToTensorFlow) {
  for (const SeedCase& c : kSeeds) {
    for (int n : {7, 260}) {
      const std::string name =
          absl::StrCat("uniform_f32_", c.s0, "_", c.s1, "_", n, ".npy");
      absl::StatusOr<NdArray> golden = ReadNpy(Golden(name));
      ASSERT_TRUE(golden.ok()) << golden.status();
      ASSERT_EQ(golden->dtype(), DType::kFloat32);
      ASSERT_EQ(golden->size(), n);
      std::vector<float> ours(n);
      StatelessUniform(c.s0, c.s1, n, ours.data());
      for (int i = 0; i < n; ++i) {
        ASSERT_EQ(FloatBits(ours[i]), FloatBits(golden->data<float>()[i]))
            << name << " element " << i;
      }
    }
  }
}

TEST(PhiloxTest, StatelessUniform2DIsTheFlatFill) {
  absl::StatusOr<NdArray> golden = ReadNpy(Golden("uniform_f32_42_0_3x5.npy"));
  ASSERT_TRUE(golden.ok()) << golden.status();
  ASSERT_EQ(golden->shape(), (std::vector<int64_t>{3, 5}));
  std::vector<float> ours(15);
  StatelessUniform(42, 0, 15, ours.data());
  EXPECT_EQ(0, std::memcmp(ours.data(), golden->raw(), 15 * sizeof(float)));
}

TEST(PhiloxTest, StatelessUniformFloat64IsBitIdenticalToTensorFlow) {
  for (const SeedCase& c : kSeeds) {
    for (int n : {7, 260}) {
      const std::string name =
          absl::StrCat("uniform_f64_", c.s0, "_", c.s1, "_", n, ".npy");
      absl::StatusOr<NdArray> golden = ReadNpy(Golden(name));
      ASSERT_TRUE(golden.ok()) << golden.status();
      ASSERT_EQ(golden->dtype(), DType::kFloat64);
      ASSERT_EQ(golden->size(), n);
      std::vector<double> ours(n);
      StatelessUniform(c.s0, c.s1, n, ours.data());
      EXPECT_EQ(0, std::memcmp(ours.data(), golden->raw(), n * sizeof(double)))
          << name;
    }
  }
}

// Normals go through logf/sqrtf/sincosf, so they are tied to the libm (TF's
// wheel vs ours): we allow 4 ulps, and report how many were exact.
TEST(PhiloxTest, StatelessNormalMatchesTensorFlowWithinFourUlps) {
  int64_t exact = 0, total = 0, worst = 0;
  for (const SeedCase& c : kSeeds) {
    for (int n : {7, 261}) {
      const std::string name =
          absl::StrCat("normal_f32_", c.s0, "_", c.s1, "_", n, ".npy");
      absl::StatusOr<NdArray> golden = ReadNpy(Golden(name));
      ASSERT_TRUE(golden.ok()) << golden.status();
      ASSERT_EQ(golden->size(), n);
      std::vector<float> ours(n);
      StatelessNormal(c.s0, c.s1, n, ours.data());
      for (int i = 0; i < n; ++i) {
        const int64_t d = UlpDistance(ours[i], golden->data<float>()[i]);
        EXPECT_LE(d, 4) << name << " element " << i << ": " << ours[i] << " vs "
                        << golden->data<float>()[i];
        worst = std::max(worst, d);
        exact += d == 0;
        ++total;
      }
    }
  }
  // Same glibc family as TF's manylinux build: nearly all should be exact.
  EXPECT_GE(exact * 10, total * 9) << "exact " << exact << "/" << total;
  std::printf("normals: %lld/%lld bit-identical, worst %lld ulp\n",
              static_cast<long long>(exact), static_cast<long long>(total),
              static_cast<long long>(worst));
}

TEST(PhiloxTest, OddNormalCountIsAPrefixOfTheEvenOne) {
  std::vector<float> a(7), b(8);
  StatelessNormal(9, 9, 7, a.data());
  StatelessNormal(9, 9, 8, b.data());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), 7 * sizeof(float)));
}

TEST(PhiloxTest, StreamsForDifferentPurposesDiffer) {
  EXPECT_NE(streams::Init(0, 0), streams::Init(0, 1));
  EXPECT_NE(streams::Init(0, 15), streams::Init(1, 0));
  std::vector<float> a(4), b(4);
  StatelessUniform(42, streams::Init(0, 0), 4, a.data());
  StatelessUniform(42, streams::Init(0, 1), 4, b.data());
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace driftscope
