// End-to-end comparison with Keras 3 training: RunJob on the golden data
// and initial weights (LSTM(4,seq) -> GRU(4,seq) -> Dense(2), 10 samples,
// batch 4 so the last batch is partial, 2 epochs, no shuffle = 6 steps) for
// every optimizer and clipping mode, MSE and MAE. Compares the batch loss of
// every step, the final weights and the final model's outputs with Keras'
// explicit training loop (which the golden script checks against model.fit).
// Tolerances are argued in golden_util.h.
#include <ostream>
#include <string>
#include <vector>

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

constexpr int kSamples = 10, kTimesteps = 5, kFeatures = 3, kUnits = 4;
constexpr int kBatch = 4, kEpochs = 2, kSteps = 6;

struct TrainCase {
  std::string name;  // directory under tests/golden/model/train/
  OptimizerSpec optimizer;
  LossKind loss;
};

// Mirrors TRAIN_CASES in make_model_golden.py.
std::vector<TrainCase> Cases() {
  std::vector<TrainCase> c;
  {
    OptimizerSpec o;
    o.kind = OptimizerKind::kAdam;
    o.learning_rate = 0x1p-5;
    o.clipnorm = 0x1p-4;
    c.push_back({"adam_clipnorm", o, LossKind::kMse});
  }
  {
    OptimizerSpec o;
    o.kind = OptimizerKind::kAdam;
    o.learning_rate = 0x1p-5;
    o.amsgrad = true;
    o.global_clipnorm = 0x1p-3;
    c.push_back({"adam_amsgrad_global_clipnorm", o, LossKind::kMse});
  }
  {
    OptimizerSpec o;
    o.kind = OptimizerKind::kSgd;
    o.learning_rate = 0x1p-3;
    o.momentum = 0.9;
    o.nesterov = true;
    o.clipvalue = 0x1p-6;
    c.push_back({"sgd_nesterov_clipvalue", o, LossKind::kMse});
  }
  {
    OptimizerSpec o;
    o.kind = OptimizerKind::kRmsprop;
    o.learning_rate = 0x1p-6;
    o.rho = 0.9;
    o.momentum = 0.5;
    o.centered = true;
    o.clipnorm = 0x1p-4;
    c.push_back({"rmsprop_centered_clipnorm_mae", o, LossKind::kMae});
  }
  {
    OptimizerSpec o;
    o.kind = OptimizerKind::kAdam;
    o.learning_rate = 0x1p-6;
    o.global_clipnorm = 0x1p-4;
    c.push_back({"adam_mae_global_clipnorm", o, LossKind::kMae});
  }
  return c;
}

JobSpec StackJob(const TrainCase& tc) {
  JobSpec spec;
  spec.seed = 1;  // unused: weights and data are supplied
  spec.model.timesteps = kTimesteps;
  spec.model.features = kFeatures;
  LayerSpec lstm;
  lstm.kind = LayerKind::kLstm;
  lstm.units = kUnits;
  lstm.return_sequences = true;
  LayerSpec gru = lstm;
  gru.kind = LayerKind::kGru;
  LayerSpec dense;
  dense.kind = LayerKind::kDense;
  dense.units = 2;
  dense.activation = Activation::kLinear;
  spec.model.layers = {lstm, gru, dense};
  spec.optimizer = tc.optimizer;
  spec.loss = tc.loss;
  spec.data.samples = kSamples;
  spec.data.eval_samples = kSamples;
  spec.training.epochs = kEpochs;
  spec.training.batch_size = kBatch;
  spec.training.shuffle = false;
  return spec;
}

const char* const kWeightNames[3][3] = {
    {"layer0_kernel", "layer0_recurrent_kernel", "layer0_bias"},
    {"layer1_kernel", "layer1_recurrent_kernel", "layer1_bias"},
    {"layer2_kernel", "layer2_bias", nullptr},
};

struct Param {
  TrainCase tc;
  bool fp64;
};

// Keeps gtest from printing the parameter as raw bytes.
void PrintTo(const Param& p, std::ostream* os) {
  *os << p.tc.name << (p.fp64 ? " float64" : " float32");
}

std::string ParamName(const testing::TestParamInfo<Param>& info) {
  return info.param.tc.name + (info.param.fp64 ? "_f64" : "_f32");
}

class KerasTrainGoldenTest : public testing::TestWithParam<Param> {};

template <typename T>
void ExpectArrayMatches(const std::string& what, const NdArray& a,
                        const std::string& dir64, const std::string& dir32,
                        const std::string& name) {
  ASSERT_EQ(a.dtype(), DTypeOf<T>()) << what << " " << name;
  ExpectMatchesKeras(what, a.data<T>(), a.size(), dir64, dir32, name);
}

TEST_P(KerasTrainGoldenTest, LossesAndFinalWeightsMatchKeras) {
  const TrainCase& tc = GetParam().tc;
  const bool fp64 = GetParam().fp64;
  const std::string dir64 = GoldenDir("train", tc.name, true);
  const std::string dir32 = GoldenDir("train", tc.name, false);
  const std::string& dir = fp64 ? dir64 : dir32;

  RunOptions options;
  std::vector<NdArray> init;
  for (const auto& layer : kWeightNames) {
    for (const char* name : layer) {
      if (name != nullptr) init.push_back(Load(dir, name));
    }
  }
  options.init_weights = init;
  options.x = Load(dir, "x");
  options.y = Load(dir, "y");
  options.eval_x = options.x;
  absl::StatusOr<Profile> profile = Profile::Parse(fp64 ? "fp64" : "fp32");
  ASSERT_TRUE(profile.ok()) << profile.status();

  absl::StatusOr<RunResult> result = RunJob(StackJob(tc), *profile, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, kSteps);
  ASSERT_EQ(result->losses.size(), kSteps);
  const std::string what = ParamName({GetParam(), 0});
  const auto check = [&](const NdArray& a, const std::string& name) {
    if (fp64) {
      ExpectArrayMatches<double>(what, a, dir64, dir32, name);
    } else {
      ExpectArrayMatches<float>(what, a, dir64, dir32, name);
    }
  };
  check(result->losses, "losses");
  check(result->outputs, "final_out");

  ASSERT_EQ(result->final_weights.size(), init.size());
  size_t k = 0;
  for (const auto& layer : kWeightNames) {
    for (const char* name : layer) {
      if (name == nullptr) continue;
      const NamedArray& w = result->final_weights[k++];
      EXPECT_EQ(w.name, name);
      check(w.array, absl::StrCat("final_", name));
    }
  }
}

std::vector<Param> AllParams() {
  std::vector<Param> p;
  for (const TrainCase& c : Cases()) {
    p.push_back({c, true});
    p.push_back({c, false});
  }
  return p;
}

INSTANTIATE_TEST_SUITE_P(Keras3, KerasTrainGoldenTest,
                         testing::ValuesIn(AllParams()), ParamName);

}  // namespace
}  // namespace driftscope
