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

namespace driftscope {
namespace {

TEST(ProfileKnobsTest, EveryPresetParsesAndRoundTrips) {
  for (const std::string& name : Profile::PresetNames()) {
    absl::StatusOr<Profile> p = Profile::Parse(name);
    ASSERT_TRUE(p.ok()) << name << ": " << p.status();
    absl::StatusOr<Profile> again = Profile::Parse(p->ToString());
    ASSERT_TRUE(again.ok()) << p->ToString() << ": " << again.status();
    EXPECT_EQ(*again, *p) << name;
  }
  for (const char* name :
       {"ref64", "fp32", "fp32-sse2", "fp32-avx2", "fp32-avx512", "tf32",
        "bf16", "fp16", "fp32-nondet", "fp32-perturb"}) {
    EXPECT_TRUE(Profile::Parse(name).ok()) << name;
  }
}

TEST(ProfileKnobsTest, KnobStringSetsEveryKnob) {
  absl::StatusOr<Profile> p = Profile::Parse(
      "fp32,matmul=tf32,isa=x86-64-v3,gemm=split-k=4,act=fast,impl=1,"
      "threads=2,reduce=threads,perturb=0.25,sr=on,loss_scale=8");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->matmul, MatmulInputs::kTf32);
  EXPECT_EQ(p->isa, Isa::kX86_64_V3);
  EXPECT_EQ(p->gemm, GemmOrder::kSplitK);
  EXPECT_EQ(p->split_k, 4);
  EXPECT_EQ(p->act, ActivationImpl::kFast);
  EXPECT_EQ(p->implementation, 1);
  EXPECT_EQ(p->threads, 2);
  EXPECT_TRUE(p->thread_reduce);
  EXPECT_EQ(p->perturb, 0.25);
  EXPECT_TRUE(p->sr);
  EXPECT_EQ(p->loss_scale, 8.0);
  EXPECT_EQ(*Profile::Parse(p->ToString()), *p);
}

TEST(ProfileKnobsTest, BadValuesListTheValidOnes) {
  absl::StatusOr<Profile> p = Profile::Parse("fp32,gemm=fastest");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("gemm=fastest"));
  EXPECT_THAT(p.status().message(), HasSubstr("split-k=N"));
  p = Profile::Parse("fp32,isa=avx1024");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("x86-64-v4"));
  EXPECT_FALSE(Profile::Parse("fp32,perturb=2").ok());
  EXPECT_FALSE(Profile::Parse("fp32,gemm=split-k=1").ok());
  EXPECT_FALSE(Profile::Parse("fp64,matmul=tf32").ok());
  p = Profile::Parse("fp32,warp=9");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("valid knobs"));
}

}  // namespace
}  // namespace driftscope
