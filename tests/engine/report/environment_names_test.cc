// EnvironmentNames and ProfileLabel: the one naming rule of `driftscope
// run`, `driftscope report` and GetReport.
#include "engine/report/environment_names.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::ElementsAre;

TEST(EnvironmentNamesTest, EachProfileOnOneWorkerIsNamedByItsProfileAlone) {
  EXPECT_THAT(EnvironmentNames({{"w1", "ref64"},
                                {"w1", "fp32"},
                                {"w1", "fp32"},  // a repeat shares the name
                                {"w2", "tf32"}}),
              ElementsAre("ref64", "fp32", "fp32", "tf32"));
}

TEST(EnvironmentNamesTest, OneProfileOnTwoWorkersNamesEveryRunWorkerSlash) {
  EXPECT_THAT(
      EnvironmentNames({{"w1", "ref64"}, {"w1", "fp32"}, {"w2", "fp32"}}),
      ElementsAre("w1/ref64", "w1/fp32", "w2/fp32"));
}

TEST(EnvironmentNamesTest, InProcessRunsHaveNoWorker) {
  EXPECT_THAT(EnvironmentNames({{"", "ref64"}, {"", "bf16"}}),
              ElementsAre("ref64", "bf16"));
}

TEST(EnvironmentNamesTest, ProfileLabelPrefersTheRequestedText) {
  EXPECT_EQ(ProfileLabel("tf32", "fp32,matmul=tf32,isa=x86-64,threads=1"),
            "tf32");
  EXPECT_EQ(ProfileLabel("fp32,gemm=pairwise", ""), "fp32,gemm=pairwise");
  EXPECT_EQ(ProfileLabel("", ""), "default");
}

TEST(EnvironmentNamesTest, ProfileThatRanIsShownAsThePresetItIs) {
  // What a worker reports for the sse2 preset, wherever it runs.
  EXPECT_EQ(ProfileLabel("", "fp32,isa=x86-64,threads=1"), "fp32-sse2");
  EXPECT_EQ(ProfileLabel("", "fp32,gemm=sequential,threads=1"),
            "fp32,gemm=sequential,threads=1");
}

}  // namespace
}  // namespace driftscope
