// isa=native kernels are compiled for the build host; on a CPU without all
// of its features they must be refused with the missing features named, not
// die with an illegal instruction.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "engine/cpu/kernel_table.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

TEST(NativeIsaTest, BuildFeaturesOfTheLevelsGrowWithTheLevel) {
  // x86-64-v3 implies AVX2/FMA/BMI2; v4 adds AVX-512; the baseline has
  // neither. These come from the compiler, not from a list of ours.
  const std::string v1 = IsaBuildFeatures(Isa::kX86_64);
  const std::string v3 = IsaBuildFeatures(Isa::kX86_64_V3);
  const std::string v4 = IsaBuildFeatures(Isa::kX86_64_V4);
  EXPECT_EQ(v1.find("avx2"), std::string::npos) << v1;
  for (const char* f : {"avx2", "fma", "bmi2"}) {
    EXPECT_NE(v3.find(f), std::string::npos) << f << " in " << v3;
  }
  EXPECT_EQ(v3.find("avx512f"), std::string::npos) << v3;
  for (const char* f : {"avx512f", "avx512bw", "avx512dq", "avx512vl"}) {
    EXPECT_NE(v4.find(f), std::string::npos) << f << " in " << v4;
  }
}

TEST(NativeIsaTest, NativeRunsOnTheHostItWasBuiltFor) {
  // The tests run where they were built: every feature is there.
  const std::string native = IsaBuildFeatures(Isa::kNative);
  for (absl::string_view f :
       absl::StrSplit(native, ' ', absl::SkipWhitespace())) {
    EXPECT_TRUE(CpuHasFeature(f)) << f;
  }
  absl::StatusOr<const CpuKernelTable*> table = KernelsFor(Isa::kNative);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_STREQ((*table)->isa, "native");
}

TEST(NativeIsaTest, AnOlderCpuIsToldWhichFeaturesItLacks) {
  // A CPU with AVX2 but no AVX-512, given kernels built on an AVX-512 host.
  const std::set<std::string> older = {"sse3",   "ssse3", "sse4.1", "sse4.2",
                                       "popcnt", "avx",   "avx2",   "fma",
                                       "bmi",    "bmi2"};
  const std::vector<std::string> missing = MissingCpuFeatures(
      " sse4.2 avx2 fma avx512f avx512bw avx512vl",
      [&](absl::string_view f) { return older.count(std::string(f)) > 0; });
  EXPECT_EQ(missing,
            (std::vector<std::string>{"avx512f", "avx512bw", "avx512vl"}));
}

TEST(NativeIsaTest, FeaturesThisBuildCannotCheckAreNotReported) {
  const std::vector<std::string> missing = MissingCpuFeatures(
      "avx2 some-future-extension", [](absl::string_view) { return false; });
  EXPECT_EQ(missing, (std::vector<std::string>{"avx2"}));
}

TEST(NativeIsaTest, CpuHasFeatureAgreesWithTheLevelCheck) {
  // The same CPU answers both ways: v3 works exactly when its features are
  // all there.
  const bool v3_features =
      CpuHasFeature("avx2") && CpuHasFeature("fma") && CpuHasFeature("bmi2");
  EXPECT_EQ(KernelsFor(Isa::kX86_64_V3).ok(), v3_features);
  EXPECT_FALSE(CpuHasFeature("no-such-feature"));
}

}  // namespace
}  // namespace driftscope
