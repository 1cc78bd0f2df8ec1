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

namespace driftscope {
namespace {

TEST(ProfileDeviceTest, CpuProfilesKeepTheirCanonicalStrings) {
  // Digests and reports depend on these: the device knob appears only when
  // it is not cpu.
  EXPECT_EQ(Profile::Parse("fp32")->ToString(), "fp32,threads=1");
  EXPECT_EQ(Profile::Parse("fp32,device=cpu")->ToString(), "fp32,threads=1");
  EXPECT_EQ(Profile::Parse("ref64")->ToString(), "fp64,threads=1");
  EXPECT_EQ(Profile::Parse("fp32-nondet")->ToString(),
            "fp32,threads=2,nondet=on");
  EXPECT_EQ(Profile::Parse("fp32")->device, Device::kCpu);
}

TEST(ProfileDeviceTest, GpuPresetsResolveToWhatTheyMirror) {
  struct Want {
    const char* preset;
    const char* canonical;
  };
  for (const Want& w :
       {Want{"cuda", "fp32,device=cuda:0"},
        Want{"cuda-tf32", "fp32,device=cuda:0,matmul=tf32"},
        Want{"cuda-cudnn", "fp32,device=cuda:0,matmul=tf32,rnn=cudnn"},
        Want{"cuda-det", "fp32,device=cuda:0,gemm=ordered-fma"},
        Want{"cuda-nondet", "fp32,device=cuda:0,nondet=on"},
        Want{"cuda-det-emu", "fp32,device=cuda-emu"}}) {
    absl::StatusOr<Profile> p = Profile::Parse(w.preset);
    ASSERT_TRUE(p.ok()) << w.preset << ": " << p.status();
    EXPECT_EQ(p->ToString(), w.canonical) << w.preset;
    EXPECT_EQ(*Profile::Parse(p->ToString()), *p) << w.preset;
    EXPECT_FALSE(Profile::PresetDescription(w.preset).empty()) << w.preset;
  }
  const Profile det = *Profile::Parse("cuda-det");
  EXPECT_EQ(det.device, Device::kCuda);
  EXPECT_EQ(det.device_gemm, DeviceGemm::kOrderedFma);
  EXPECT_TRUE(det.deterministic());
  EXPECT_FALSE(Profile::Parse("cuda-nondet")->deterministic());
  const Profile emu = *Profile::Parse("cuda-det-emu");
  EXPECT_EQ(emu.device, Device::kCudaEmu);
  EXPECT_EQ(emu.device_gemm, DeviceGemm::kOrderedFma);
  EXPECT_EQ(Profile::Parse("cuda-cudnn")->rnn, DeviceRnn::kCudnn);
  // The GPU presets are the ones that need a device; the emulation is not.
  const std::vector<std::string> gpu = Profile::GpuPresetNames();
  EXPECT_EQ(gpu, (std::vector<std::string>{"cuda", "cuda-tf32", "cuda-cudnn",
                                           "cuda-det", "cuda-nondet"}));
}

TEST(ProfileDeviceTest, DeviceKnobsComposeInAnyOrder) {
  absl::StatusOr<Profile> p = Profile::Parse("fp32,device=cuda:1,matmul=tf32");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->device_index, 1);
  EXPECT_EQ(p->device_gemm, DeviceGemm::kCublas);
  EXPECT_EQ(p->ToString(), "fp32,device=cuda:1,matmul=tf32");
  absl::StatusOr<Profile> q =
      Profile::Parse("fp32,gemm=ordered-fma,impl=1,device=cuda:3,perturb=0.5");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->ToString(),
            "fp32,device=cuda:3,gemm=ordered-fma,impl=1,perturb=0.5");
  EXPECT_EQ(*Profile::Parse(q->ToString()), *q);
  EXPECT_EQ(Profile::Parse("fp32,device=cuda")->device_index, 0);
  EXPECT_EQ(*Profile::Parse("fp32,device=cuda-emu,gemm=ordered-fma"),
            *Profile::Parse("cuda-det-emu"));
}

TEST(ProfileDeviceTest, InvalidCombinationsNameTheKnob) {
  struct Bad {
    const char* text;
    const char* names;
  };
  for (const Bad& b : {
           Bad{"fp32,rnn=cudnn", "rnn=cudnn"},
           Bad{"fp32,gemm=cublas", "gemm=cublas"},
           Bad{"fp64,device=cuda", "fp32"},
           Bad{"bf16,device=cuda", "fp32"},
           Bad{"fp16,device=cuda-emu", "fp32"},
           Bad{"fp32,device=cuda,isa=x86-64-v3", "isa="},
           Bad{"fp32,device=cuda,gemm=sequential", "gemm=sequential"},
           Bad{"fp32,device=cuda,act=libm", "act="},
           Bad{"fp32,device=cuda,threads=4", "threads="},
           Bad{"fp32,device=cuda,sr=on", "sr="},
           Bad{"fp32,device=cuda-emu,gemm=cublas", "gemm=cublas"},
           Bad{"fp32,device=cuda-emu,rnn=cudnn", "rnn=cudnn"},
           Bad{"fp32,device=cuda-emu,nondet=on", "nondet=on"},
           Bad{"fp32,device=gpu", "device=gpu"},
           Bad{"fp32,device=cuda:x", "cuda:N"},
           Bad{"fp32,device=cuda,rnn=fast", "rnn=fast"},
       }) {
    absl::StatusOr<Profile> p = Profile::Parse(b.text);
    ASSERT_FALSE(p.ok()) << b.text;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << b.text;
    EXPECT_THAT(p.status().message(), HasSubstr(b.names)) << b.text;
  }
}

}  // namespace
}  // namespace driftscope
