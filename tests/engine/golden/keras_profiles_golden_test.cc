// Every profile that only reorders float operations (GEMM reduction order,
// ISA level, activation implementation, implementation 1/2 addition order,
// thread-split reductions) must still reproduce Keras' training: float64
// ones to 1e-10, float32 ones to the float32 bound (golden_util.h). The
// profiles that deliberately lose precision (tf32, bf16, fp16, GPU-style
// approximate activations) must really move away from Keras float64 by more
// than float32 rounding does, but stay in their precision's range: a no-op knob
// or a broken one both fail. Case: tests/golden/model/train/adam_clipnorm
// (LSTM->GRU->Dense, Adam with clipnorm, 6 steps).
#include <cctype>
#include <iterator>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "engine/train/run_result.h"
#include "engine/train/trainer.h"
#include "gtest/gtest.h"
#include "tests/engine/golden/golden_util.h"

namespace driftscope {
namespace {

using golden::ExpectMatchesKeras;
using golden::GoldenDir;
using golden::Load;
using golden::MaxRel;

const char* const kWeights[] = {"layer0_kernel",
                                "layer0_recurrent_kernel",
                                "layer0_bias",
                                "layer1_kernel",
                                "layer1_recurrent_kernel",
                                "layer1_bias",
                                "layer2_kernel",
                                "layer2_bias"};

JobSpec AdamClipnormJob() {
  JobSpec spec;
  spec.model.timesteps = 5;
  spec.model.features = 3;
  LayerSpec lstm;
  lstm.kind = LayerKind::kLstm;
  lstm.units = 4;
  lstm.return_sequences = true;
  LayerSpec gru = lstm;
  gru.kind = LayerKind::kGru;
  LayerSpec dense;
  dense.kind = LayerKind::kDense;
  dense.units = 2;
  dense.activation = Activation::kLinear;
  spec.model.layers = {lstm, gru, dense};
  spec.optimizer.kind = OptimizerKind::kAdam;
  spec.optimizer.learning_rate = 0x1p-5;
  spec.optimizer.clipnorm = 0x1p-4;
  spec.loss = LossKind::kMse;
  spec.data.samples = 10;
  spec.data.eval_samples = 10;
  spec.training.epochs = 2;
  spec.training.batch_size = 4;
  spec.training.shuffle = false;
  return spec;
}

absl::StatusOr<RunResult> RunGolden(const std::string& profile_text,
                                    bool fp64_inputs) {
  absl::StatusOr<Profile> profile = Profile::Parse(profile_text);
  if (!profile.ok()) return profile.status();
  const std::string dir = GoldenDir("train", "adam_clipnorm", fp64_inputs);
  RunOptions options;
  std::vector<NdArray> init;
  for (const char* name : kWeights) init.push_back(Load(dir, name));
  options.init_weights = init;
  options.x = Load(dir, "x");
  options.y = Load(dir, "y");
  return RunJob(AdamClipnormJob(), *profile, options);
}

// The tensors compared for every profile: losses, final outputs, weights.
std::vector<std::pair<std::string, const NdArray*>> Tensors(
    const RunResult& r) {
  std::vector<std::pair<std::string, const NdArray*>> t = {
      {"losses", &r.losses}, {"final_out", &r.outputs}};
  for (size_t i = 0; i < r.final_weights.size(); ++i) {
    t.push_back({absl::StrCat("final_", r.final_weights[i].name),
                 &r.final_weights[i].array});
  }
  return t;
}

// A profile string as a gtest name: "fp32,act=gpu" -> "fp32_act_gpu".
std::string TestName(std::string profile) {
  for (char& c : profile) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return profile;
}

class ExactProfileGoldenTest : public testing::TestWithParam<std::string> {};

TEST_P(ExactProfileGoldenTest, TrainingMatchesKeras) {
  const bool fp64 = absl::StartsWith(GetParam(), "fp64");
  absl::StatusOr<RunResult> r = RunGolden(GetParam(), fp64);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->final_weights.size(), std::size(kWeights));
  const std::string dir64 = GoldenDir("train", "adam_clipnorm", true);
  const std::string dir32 = GoldenDir("train", "adam_clipnorm", false);
  for (const auto& [name, a] : Tensors(*r)) {
    if (fp64) {
      ASSERT_EQ(a->dtype(), DType::kFloat64) << name;
      ExpectMatchesKeras(GetParam(), a->data<double>(), a->size(), dir64, dir32,
                         name);
    } else {
      ASSERT_EQ(a->dtype(), DType::kFloat32) << name;
      ExpectMatchesKeras(GetParam(), a->data<float>(), a->size(), dir64, dir32,
                         name);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Keras3, ExactProfileGoldenTest,
    testing::Values("fp64,gemm=sequential", "fp64,gemm=pairwise",
                    "fp64,gemm=split-k=3", "fp64,isa=x86-64", "fp64,impl=1",
                    "fp64,threads=2,reduce=threads", "fp32-sse2", "fp32-avx2",
                    "fp32,gemm=sequential", "fp32,gemm=split-k=3",
                    "fp32,act=libm", "fp32,impl=1",
                    "fp32,threads=2,reduce=threads"),
    [](const testing::TestParamInfo<std::string>& info) {
      return TestName(info.param);
    });

struct LossyCase {
  std::string profile;
  double min_err, max_err;  // normwise vs Keras float64, worst tensor
};

void PrintTo(const LossyCase& c, std::ostream* os) { *os << c.profile; }

class LossyProfileGoldenTest : public testing::TestWithParam<LossyCase> {};

TEST_P(LossyProfileGoldenTest, DriftsByItsPrecisionOnly) {
  const LossyCase& lc = GetParam();
  absl::StatusOr<RunResult> r = RunGolden(lc.profile, false);
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string dir64 = GoldenDir("train", "adam_clipnorm", true);
  double worst = 0;
  std::string worst_name;
  for (const auto& [name, a] : Tensors(*r)) {
    const NdArray ref = Load(dir64, name);
    ASSERT_EQ(a->size(), ref.size()) << name;
    const NdArray as64 = a->AsType(DType::kFloat64);
    const double e = MaxRel(as64.data<double>(), ref, 1.0).max_rel;
    if (e > worst) {
      worst = e;
      worst_name = name;
    }
  }
  RecordProperty("worst_normwise_error", absl::StrCat(worst));
  EXPECT_GT(worst, lc.min_err) << lc.profile << " worst " << worst_name;
  EXPECT_LT(worst, lc.max_err) << lc.profile << " worst " << worst_name;
}

// Lower bounds: 10x the largest float32 error seen with exact profiles
// (1.3e-6), so the knob must really have rounded something. Upper bounds: 10
// unit roundoffs of the format (tf32 and fp16 2^-11, bf16 2^-8; act=gpu's
// tanh.approx has about 2^-11 relative error). Measured when written: tf32
// 5.0e-4, bf16 5.1e-3, fp16 5.8e-4, act=gpu 1.2e-4 (worst tensor each); a
// wrong formula gives >= 1e-1.
INSTANTIATE_TEST_SUITE_P(Keras3, LossyProfileGoldenTest,
                         testing::Values(LossyCase{"tf32", 1.3e-5, 5e-3},
                                         LossyCase{"bf16", 1.3e-5, 4e-2},
                                         LossyCase{"fp16", 1.3e-5, 5e-3},
                                         LossyCase{"fp32,act=gpu", 1.3e-5,
                                                   5e-3}),
                         [](const testing::TestParamInfo<LossyCase>& info) {
                           return TestName(info.param.profile);
                         });

}  // namespace
}  // namespace driftscope
