#include "engine/numerics/profile.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

TEST(ProfileTest, PresetsResolveToTheirKnobs) {
  absl::StatusOr<Profile> ref = Profile::Parse("ref64");
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->precision, Precision::kFp64);
  EXPECT_EQ(ref->preset, "ref64");
  absl::StatusOr<Profile> fp32 = Profile::Parse("fp32");
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  EXPECT_EQ(fp32->precision, Precision::kFp32);
}

TEST(ProfileTest, KnobStringRoundTripsThroughToString) {
  absl::StatusOr<Profile> p = Profile::Parse("fp64,threads=3");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->threads, 3);
  EXPECT_EQ(p->ToString(), "fp64,threads=3");
  absl::StatusOr<Profile> again = Profile::Parse(p->ToString());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *p);
}

TEST(ProfileTest, UnknownPrecisionListsValidChoices) {
  absl::StatusOr<Profile> p = Profile::Parse("fp8");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("fp8"));
  EXPECT_THAT(p.status().message(), HasSubstr("ref64"));
  EXPECT_THAT(p.status().message(), HasSubstr("fp32"));
}

TEST(ProfileTest, BadKnobsAreNamed) {
  absl::StatusOr<Profile> p = Profile::Parse("fp32,colour=red");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("colour"));
  p = Profile::Parse("fp32,threads=0");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("threads"));
  p = Profile::Parse("fp32,threads=two");
  ASSERT_FALSE(p.ok());
  EXPECT_FALSE(Profile::Parse("").ok());
}

}  // namespace
}  // namespace driftscope
