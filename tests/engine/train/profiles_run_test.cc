// Issue "Profiles", acceptance at the level of whole runs: every profile is
// bit-reproducible except nondet; drift against ref64 is ordered by
// precision; ISA levels give different bits, each close to ref64; the thread
// count changes nothing unless asked to; perturb changes the initial weights.
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/cpu/kernel_table.h"
#include "engine/drift/array_drift.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

JobSpec SmallJob() {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[0].units = 16;
  spec.model.layers[1].units = 8;
  spec.data.samples = 128;
  spec.data.eval_samples = 32;
  spec.training.epochs = 2;
  return spec;
}

RunResult RunProfile(const JobSpec& spec, const std::string& profile) {
  absl::StatusOr<Profile> p = Profile::Parse(profile);
  EXPECT_TRUE(p.ok()) << p.status();
  absl::StatusOr<RunResult> r = RunJob(spec, *p);
  EXPECT_TRUE(r.ok()) << profile << ": " << r.status();
  return r.ok() ? *std::move(r) : RunResult{};
}

bool Identical(const RunResult& a, const RunResult& b) {
  if (!(a.outputs == b.outputs) || !(a.losses == b.losses)) return false;
  if (a.fingerprints.size() != b.fingerprints.size()) return false;
  for (size_t i = 0; i < a.fingerprints.size(); ++i) {
    if (a.fingerprints[i].sha256 != b.fingerprints[i].sha256) return false;
  }
  return true;
}

double RelL2(const RunResult& a, const RunResult& ref) {
  DriftOptions o;
  o.per_timestep = false;
  absl::StatusOr<ArrayDrift> d = CompareArrays(a.outputs, ref.outputs, o);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? d->overall.rel_l2 : NAN;
}

TEST(ProfilesRunTest, EveryDeterministicPresetIsBitReproducible) {
  const JobSpec spec = SmallJob();
  for (const std::string& preset : Profile::PresetNames()) {
    const Profile p = *Profile::Parse(preset);
    if (!Context::Check(p).ok()) continue;  // a level this CPU lacks
    if (p.nondet) continue;
    const RunResult a = RunProfile(spec, preset), b = RunProfile(spec, preset);
    EXPECT_TRUE(Identical(a, b)) << preset;
  }
  for (const char* knobs :
       {"fp32,gemm=sequential", "fp32,gemm=pairwise", "fp32,gemm=split-k=3",
        "fp32,act=libm", "fp32,act=gpu", "fp32,impl=1", "fp32,sr=on",
        "fp32,threads=2,reduce=threads"}) {
    EXPECT_TRUE(Identical(RunProfile(spec, knobs), RunProfile(spec, knobs)))
        << knobs;
  }
}

TEST(ProfilesRunTest, NondetDiffersFromRunToRun) {
  const JobSpec spec = SmallJob();
  const RunResult a = RunProfile(spec, "fp32-nondet"),
                  b = RunProfile(spec, "fp32-nondet");
  EXPECT_FALSE(Identical(a, b));
  // Still the same computation up to rounding.
  EXPECT_LT(RelL2(a, b), 1e-4);
}

TEST(ProfilesRunTest, DriftAgainstRef64IsOrderedByPrecision) {
  const JobSpec spec = DefaultJobSpec();
  const RunResult ref = RunProfile(spec, "ref64");
  const double fp32 = RelL2(RunProfile(spec, "fp32"), ref);
  const double tf32 = RelL2(RunProfile(spec, "tf32"), ref);
  const double bf16 = RelL2(RunProfile(spec, "bf16"), ref);
  std::printf("default job, rel L2 vs ref64: fp32 %.3g, tf32 %.3g, bf16 %.3g\n",
              fp32, tf32, bf16);
  EXPECT_GT(fp32, 0.0);
  EXPECT_GT(tf32, fp32);
  EXPECT_GT(bf16, tf32);
  EXPECT_LT(fp32, 1e-5);
  EXPECT_LT(bf16, 0.05);
}

TEST(ProfilesRunTest, IsaLevelsDifferBitwiseAndAgreeWithRef64) {
  const JobSpec spec = SmallJob();
  const RunResult ref = RunProfile(spec, "ref64");
  std::vector<std::pair<std::string, RunResult>> runs;
  for (const char* level : {"fp32-sse2", "fp32-avx2", "fp32-avx512"}) {
    if (!Context::Check(*Profile::Parse(level)).ok()) continue;
    runs.emplace_back(level, RunProfile(spec, level));
  }
  if (runs.size() < 2) GTEST_SKIP() << "this CPU has only the x86-64 level";
  for (const auto& [name, r] : runs) {
    const double d = RelL2(r, ref);
    std::printf("%s vs ref64: rel L2 %.3g\n", name.c_str(), d);
    EXPECT_LT(d, 1e-5) << name;
  }
  // SSE2 (no FMA) against the FMA levels: the kernels really differ.
  EXPECT_FALSE(runs[0].second.outputs == runs[1].second.outputs);
}

TEST(ProfilesRunTest, ThreadCountChangesBitsOnlyWhenAskedTo) {
  const JobSpec spec = SmallJob();
  const RunResult one = RunProfile(spec, "fp32,threads=1");
  EXPECT_TRUE(Identical(one, RunProfile(spec, "fp32,threads=2")));
  EXPECT_TRUE(Identical(one, RunProfile(spec, "fp32,threads=3")));
  EXPECT_FALSE(
      Identical(one, RunProfile(spec, "fp32,threads=2,reduce=threads")));
}

TEST(ProfilesRunTest, PerturbChangesTheInitialWeightsOnlyWhenAboveZero) {
  const JobSpec spec = SmallJob();
  const RunResult plain = RunProfile(spec, "fp32");
  const RunResult zero = RunProfile(spec, "fp32,perturb=0");
  const RunResult some = RunProfile(spec, "fp32-perturb");
  EXPECT_TRUE(Identical(plain, zero));
  EXPECT_NE(plain.fingerprints[0].sha256, some.fingerprints[0].sha256);
}

TEST(ProfilesRunTest, TheProfileThatRanIsReported) {
  const RunResult r = RunProfile(SmallJob(), "fp32");
  // isa=auto is resolved to the level that ran.
  EXPECT_EQ(r.profile.find("isa=auto"), std::string::npos) << r.profile;
  EXPECT_NE(
      r.profile.find(absl::StrCat("isa=", IsaName(ResolveIsa(Isa::kAuto)))),
      std::string::npos)
      << r.profile;
}

}  // namespace
}  // namespace driftscope
