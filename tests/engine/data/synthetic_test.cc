#include "engine/data/synthetic.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/core/sha256.h"
#include "engine/job/job_spec.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

Dataset Generate(const JobSpec& spec, DataSplit split = DataSplit::kTrain) {
  absl::StatusOr<Dataset> d = GenerateDataset(spec, split);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *std::move(d) : Dataset{};
}

std::string Hash(const NdArray& a) { return Sha256Hex(a.raw(), a.nbytes()); }

TEST(SinTurnsTest, MatchesLibmToDoubleRoundoff) {
  double worst = 0;
  for (int i = -20000; i <= 20000; ++i) {
    const double turns = i * 0.0123456789;
    const double want = std::sin(2 * M_PI * turns);
    worst = std::max(worst, std::fabs(SinTurns(turns) - want));
  }
  // libm's argument 2π·turns is itself rounded (|arg| ≤ 1552, ulp 2.3e-13),
  // so agreement can only be that good at the largest arguments.
  EXPECT_LT(worst, 1e-12);
  for (double t : {0.001, 0.1, 0.2, 0.3, 0.7, 0.95}) {
    EXPECT_NEAR(SinTurns(t), std::sin(2 * M_PI * t), 4e-16) << t;
  }
  EXPECT_EQ(SinTurns(0.0), 0.0);
  EXPECT_EQ(SinTurns(0.5), 0.0);
  EXPECT_EQ(SinTurns(0.25), SinTurns(0.25 + 1e6));  // exact reduction
  EXPECT_EQ(SinTurns(-0.3), -SinTurns(0.3));
  EXPECT_NEAR(SinTurns(0.25), 1.0, 2.3e-16);  // 2π·0.25 is rounded
}

TEST(SyntheticDataTest, ShapesFollowTheModelOutput) {
  JobSpec spec = DefaultJobSpec();
  Dataset d = Generate(spec);
  EXPECT_EQ(d.x.shape(), (std::vector<int64_t>{1024, 10, 1}));
  EXPECT_EQ(d.y.shape(), (std::vector<int64_t>{1024, 10, 32}));
  EXPECT_EQ(d.x.dtype(), DType::kFloat32);
  Dataset e = Generate(spec, DataSplit::kEval);
  EXPECT_EQ(e.x.shape(), (std::vector<int64_t>{128, 10, 1}));
  spec.model.layers[1].return_sequences = false;
  Dataset v = Generate(spec);
  EXPECT_EQ(v.y.shape(), (std::vector<int64_t>{1024, 32}));
  // A vector target is the sequence target at the last step; x is unchanged.
  EXPECT_EQ(v.x, d.x);
  for (int64_t n = 0; n < 1024; n += 97) {
    for (int u = 0; u < 32; ++u) {
      EXPECT_EQ(v.y.data<float>()[n * 32 + u],
                d.y.data<float>()[(n * 10 + 9) * 32 + u]);
    }
  }
}

TEST(SyntheticDataTest, BitStableAndSeeded) {
  const JobSpec spec = DefaultJobSpec();
  Dataset a = Generate(spec), b = Generate(spec);
  EXPECT_EQ(a.x, b.x);
  EXPECT_EQ(a.y, b.y);
  // Pinned: any change to the generators (or to their portability) shows up
  // here. Only +, −, ×, ÷ and floor are used, so these hold on every
  // IEEE-754 platform.
  EXPECT_EQ(Hash(a.x),
            "b22a09e5c0712b95d6b6e09e45be55829eeda48684fb9746b71b2fa63e797e2c");
  EXPECT_EQ(Hash(a.y),
            "191b62774d291e270e4e51f9c7507e97b0d9bb4d02f735efb88422a5dbb9d890");
  Dataset e = Generate(spec, DataSplit::kEval);
  EXPECT_EQ(Hash(e.x),
            "09bc731265476d021dd96559bf94eee7c3f7f3b00abcd9466418b4643c54c1e8");
  JobSpec other = spec;
  other.seed = 43;
  EXPECT_FALSE(Generate(other).x == a.x);

  JobSpec walk = spec;
  walk.data.generator = DataSpec::Generator::kRandomWalk;
  walk.model.features = 3;
  Dataset w = Generate(walk);
  EXPECT_EQ(Hash(w.x),
            "c30b1f56508a08392f0f4cb6045215f53f74f34c8e0eab55fdfa356b873ce6ee");
  EXPECT_EQ(Hash(w.y),
            "6dad9308dbe7aa21b10a3a73169a6b0fc07f067d41fe0b0acbcb1d1a852f4fdc");
  JobSpec copy = spec;
  copy.data.generator = DataSpec::Generator::kDelayedCopy;
  copy.model.features = 2;
  Dataset c = Generate(copy);
  EXPECT_EQ(Hash(c.x),
            "a52155e545dbb407bc13b21603a035c51046e9da73cc8e0f00df698cac59cdc8");
  EXPECT_EQ(Hash(c.y),
            "ac36e0f59d4990ba5f9cf42743ada4ba96b1f406c6760dc90c44c1b67b8d6854");
}

TEST(SyntheticDataTest, SineTargetsAreNextStepComponents) {
  JobSpec spec = DefaultJobSpec();
  spec.data.samples = 64;
  spec.data.noise = 0;
  Dataset d = Generate(spec);
  const float* x = d.x.data<float>();
  const float* y = d.y.data<float>();
  for (int n = 0; n < 64; ++n) {
    for (int t = 0; t < 10; ++t) {
      const float* yt = y + (n * 10 + t) * 32;
      // Without noise, unit 0 at t is exactly the input at t+1.
      if (t + 1 < 10) {
        EXPECT_EQ(yt[0], x[n * 10 + t + 1]);
      }
      // Unit 0 = slow (unit 1) + fast (unit 2) component.
      EXPECT_NEAR(yt[0], double{yt[1]} + yt[2], 2e-7);
      EXPECT_GE(std::fabs(yt[1]), 0.0f);
      EXPECT_LE(std::fabs(yt[1]), 1.0f);
      EXPECT_LE(std::fabs(yt[2]), 0.5f);
      EXPECT_EQ(yt[3], yt[0]);  // F = 1: every third unit repeats
    }
  }
  // Noise: x − clean has mean ≈ 0 and sd ≈ noise (Irwin–Hall 12).
  JobSpec noisy = spec;
  noisy.data.noise = 0.05;
  noisy.data.samples = 2000;
  spec.data.samples = 2000;
  Dataset clean = Generate(spec), with = Generate(noisy);
  double sum = 0, sum2 = 0;
  const int64_t count = clean.x.size();
  for (int64_t i = 0; i < count; ++i) {
    const double e = double{with.x.data<float>()[i]} - clean.x.data<float>()[i];
    sum += e;
    sum2 += e * e;
  }
  const double mean = sum / count, sd = std::sqrt(sum2 / count - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.002);  // 5 standard errors
  EXPECT_NEAR(sd, 0.05, 0.002);
}

TEST(SyntheticDataTest, DelayedCopyAndRandomWalkTargets) {
  JobSpec spec = DefaultJobSpec();
  spec.data.samples = 20;
  spec.model.features = 2;
  spec.model.layers[1].units = 8;
  spec.data.generator = DataSpec::Generator::kDelayedCopy;
  spec.data.delay = 1;
  Dataset c = Generate(spec);
  for (int n = 0; n < 20; ++n) {
    for (int t = 0; t < 10; ++t) {
      for (int u = 0; u < 8; ++u) {
        const int f = u % 2, d = 1 + (u / 2) % 4;
        const float got = c.y.data<float>()[(n * 10 + t) * 8 + u];
        const float want =
            t >= d ? c.x.data<float>()[(n * 10 + t - d) * 2 + f] : 0.0f;
        EXPECT_EQ(got, want);
        EXPECT_GE(c.x.data<float>()[(n * 10 + t) * 2 + f], -1.0f);
        EXPECT_LT(c.x.data<float>()[(n * 10 + t) * 2 + f], 1.0f);
      }
    }
  }
  spec.data.generator = DataSpec::Generator::kRandomWalk;
  Dataset w = Generate(spec);
  const float* x = w.x.data<float>();
  for (int n = 0; n < 20; ++n) {
    for (int t = 0; t < 10; ++t) {
      const float* yt = w.y.data<float>() + (n * 10 + t) * 8;
      EXPECT_EQ(yt[0], x[(n * 10 + t) * 2]);  // window 1: the input itself
      if (t >= 1) {                           // unit 2: feature 0, window 2
        EXPECT_EQ(yt[2], static_cast<float>((double{x[(n * 10 + t - 1) * 2]} +
                                             x[(n * 10 + t) * 2]) /
                                            2));
      }
    }
  }
}

TEST(SyntheticDataTest, RejectsBadFields) {
  JobSpec spec = DefaultJobSpec();
  spec.data.generator = DataSpec::Generator::kDelayedCopy;
  spec.data.delay = 10;
  EXPECT_EQ(GenerateDataset(spec, DataSplit::kTrain).status().message(),
            "data.synthetic.delay must be in [0, 9], got 10");
  spec = DefaultJobSpec();
  spec.data.eval_samples = 0;
  EXPECT_EQ(GenerateDataset(spec, DataSplit::kEval).status().message(),
            "data.synthetic.eval_samples must be at least 1, got 0");
}

}  // namespace
}  // namespace driftscope
