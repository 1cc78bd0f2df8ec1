// RNN input dropout: the masks against TF's stateless_dropout, a training
// run against the float64 reference with the same masks, and whole training
// runs against real Keras 3 (tests/golden/dropout/make_dropout_golden.py:
// seed_mode KERAS, so the masks are the ones Keras draws from the layers'
// SeedGenerators). Tolerances as argued in tests/engine/golden/golden_util.h.
#include "engine/train/dropout.h"

#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/data/synthetic.h"
#include "engine/init/init_seeds.h"
#include "engine/io/npy.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "engine/reference/reference.h"
#include "engine/rng/philox.h"
#include "engine/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/golden/golden_util.h"
#include "tests/engine/golden/keras_first_step_golden.h"
#include "tests/engine/golden/keras_training_golden.h"
#include "tests/engine/reference/layer_test_util.h"

namespace driftscope {
namespace {

using golden::KerasCase;
using ::testing::HasSubstr;
using testing_util::Dense;

const std::string kDir =
    std::string(DRIFTSCOPE_SOURCE_DIR) + "/tests/golden/dropout/";

LayerSpec Rnn(LayerKind kind, int units, double dropout) {
  LayerSpec l = testing_util::Rnn(kind, units, /*sequences=*/true);
  l.dropout = dropout;
  return l;
}

TEST(DropoutMaskTest, IsTfStatelessDropoutOfOnes) {
  const struct {
    uint64_t g, k;
    const char* rate;
  } cases[] = {{686579304, 0, "0.3"}, {26855093, 5, "0.5"}, {7, 3, "0.25"}};
  for (const auto& c : cases) {
    absl::StatusOr<NdArray> want = ReadNpy(
        absl::StrCat(kDir, "mask_", c.g, "_", c.k, "_", c.rate, ".npy"));
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_EQ(want->size(), 35);
    std::vector<float> scratch(35), got(35);
    DrawDropoutMask<float>({c.g, c.k}, std::stod(c.rate), 35, scratch.data(),
                           got.data());
    EXPECT_EQ(0, std::memcmp(got.data(), want->raw(), 35 * sizeof(float)))
        << "seed [" << c.g << ", " << c.k << "] rate " << c.rate;
    int dropped = 0;
    for (float v : got) dropped += v == 0;
    EXPECT_GT(dropped, 0);  // the comparison is not vacuous
    EXPECT_LT(dropped, 35);
  }
}

TEST(DropoutMaskTest, SeedsFollowTheSeedMode) {
  JobSpec spec;
  spec.seed = 42;
  spec.model.layers = {Rnn(LayerKind::kLstm, 4, 0.5), Dense(1)};
  const std::vector<LayerSeeds> plain = ModelInitSeeds(spec);
  EXPECT_EQ(DropoutSeed(spec, plain[0], 0, 9),
            (SeedPair{42, streams::Dropout(0, 9)}));
  spec.seed_mode = SeedMode::kKeras;
  const std::vector<LayerSeeds> keras = ModelInitSeeds(spec);
  ASSERT_TRUE(keras[0].dropout.has_value());
  // Keras 3 after set_random_seed(42): the LSTM's third draw.
  EXPECT_EQ(*keras[0].dropout, 26855093u);
  EXPECT_EQ(DropoutSeed(spec, keras[0], 0, 9), (SeedPair{26855093, 9}));
}

// LSTM(3, dropout) -> GRU(2, dropout) -> Dense(2), SGD, 3 steps in ref64:
// every step's loss and the final weights equal plain SGD on the reference's
// gradients with the same masks, and the eval outputs are undropped.
TEST(DropoutTrainingTest, ThreeSgdStepsMatchTheReferenceWithTheSameMasks) {
  JobSpec spec;
  spec.seed = 11;
  spec.model.timesteps = 4;
  spec.model.features = 2;
  spec.model.layers = {Rnn(LayerKind::kLstm, 3, 0.4),
                       Rnn(LayerKind::kGru, 2, 0.3), Dense(2)};
  spec.optimizer.kind = OptimizerKind::kSgd;
  spec.optimizer.learning_rate = 0.1;
  spec.data.samples = 10;
  spec.data.eval_samples = 5;
  spec.training.epochs = 1;
  spec.training.batch_size = 4;
  spec.training.shuffle = false;
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  absl::StatusOr<Profile> ref64 = Profile::Parse("ref64");
  ASSERT_TRUE(ref64.ok());
  JobSpec init_only = spec;
  init_only.training.epochs = 0;
  absl::StatusOr<RunResult> start = RunJob(init_only, *ref64);
  absl::StatusOr<RunResult> run = RunJob(spec, *ref64);
  ASSERT_TRUE(start.ok() && run.ok());
  ASSERT_EQ(run->steps, 3);

  auto weights_of = [](const RunResult& r) {
    std::vector<RefWeights> w(3);
    for (const NamedArray& a : r.final_weights) {
      const int layer = a.name[5] - '0';
      w[layer].emplace_back(a.array.data<double>(),
                            a.array.data<double>() + a.array.size());
    }
    return w;
  };
  std::vector<RefWeights> w = weights_of(*start);
  absl::StatusOr<Dataset> train = GenerateDataset(spec, DataSplit::kTrain);
  ASSERT_TRUE(train.ok());
  const std::vector<LayerSeeds> seeds = ModelInitSeeds(spec);
  const ActivationShape in{true, 4, 2};
  const int widths[] = {2, 3};
  int dropped = 0;
  for (int step = 0; step < 3; ++step) {
    const int b = step < 2 ? 4 : 2;
    const int64_t per_x = 4 * 2, per_y = 4 * 2;
    std::vector<double> x, y;
    for (int64_t i = 4 * step * per_x; i < (4 * step + b) * per_x; ++i) {
      x.push_back(train->x.at(i));
    }
    for (int64_t i = 4 * step * per_y; i < (4 * step + b) * per_y; ++i) {
      y.push_back(train->y.at(i));
    }
    RefMasks masks(3);
    for (int l = 0; l < 2; ++l) {
      masks[l].resize(static_cast<size_t>(b * widths[l]));
      std::vector<float> scratch(masks[l].size());
      DrawDropoutMask<double>(DropoutSeed(spec, seeds[l], l, step),
                              spec.model.layers[l].dropout, b * widths[l],
                              scratch.data(), masks[l].data());
      for (double m : masks[l]) dropped += m == 0;
    }
    const std::vector<double> pred =
        RefModelForward(spec.model.layers, in, w, x, b, &masks);
    double loss = 0;
    std::vector<double> dy(pred.size());
    for (size_t i = 0; i < pred.size(); ++i) {
      loss += (pred[i] - y[i]) * (pred[i] - y[i]);
      dy[i] = 2 * (pred[i] - y[i]) / static_cast<double>(pred.size());
    }
    loss /= static_cast<double>(pred.size());
    EXPECT_NEAR(run->losses.at(step), loss, 1e-12 * loss) << step;
    const std::vector<RefLayerGrads> g =
        RefModelBackward(spec.model.layers, in, w, x, b, dy, &masks);
    for (size_t l = 0; l < w.size(); ++l) {
      for (size_t k = 0; k < w[l].size(); ++k) {
        for (size_t i = 0; i < w[l][k].size(); ++i) {
          w[l][k][i] -= 0.1 * g[l].dweights[k][i];
        }
      }
    }
  }
  EXPECT_GT(dropped, 0);  // the masks really dropped something
  const std::vector<RefWeights> got = weights_of(*run);
  for (size_t l = 0; l < w.size(); ++l) {
    for (size_t k = 0; k < w[l].size(); ++k) {
      for (size_t i = 0; i < w[l][k].size(); ++i) {
        EXPECT_NEAR(got[l][k][i], w[l][k][i], 1e-12) << l << " " << k;
      }
    }
  }
  // Evaluation does not drop: the outputs are the undropped forward pass.
  absl::StatusOr<Dataset> eval = GenerateDataset(spec, DataSplit::kEval);
  ASSERT_TRUE(eval.ok());
  std::vector<double> ex;
  for (int64_t i = 0; i < eval->x.size(); ++i) ex.push_back(eval->x.at(i));
  const std::vector<double> out =
      RefModelForward(spec.model.layers, in, got, ex, 5);
  ASSERT_EQ(run->outputs.size(), static_cast<int64_t>(out.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_NEAR(run->outputs.at(static_cast<int64_t>(i)), out[i], 1e-12);
  }
}

// Mirrors CASES in make_dropout_golden.py.
std::vector<KerasCase> KerasCases() {
  std::vector<KerasCase> c;
  JobSpec base = golden::KerasGoldenBaseSpec(5, 3);
  {
    JobSpec s = base;
    s.seed = 42;
    s.model.layers = {Rnn(LayerKind::kLstm, 4, 0.25),
                      Rnn(LayerKind::kGru, 3, 0.5), Dense(2)};
    c.push_back({"lstm_gru_dropout_adam_s42", s});
  }
  {
    JobSpec s = base;
    s.seed = 7;
    s.model.layers = {Rnn(LayerKind::kSimpleRnn, 4, 0.4), Dense(2)};
    s.optimizer.weight_decay = 0x1p-3;  // AdamW
    c.push_back({"simple_rnn_dropout_adamw_s7", s});
  }
  return c;
}

using KerasDropoutGoldenTest = golden::KerasTrainingGoldenTest;

TEST_P(KerasDropoutGoldenTest, TrainingMatchesKeras) {
  ExpectTrainingMatchesKeras(kDir, /*check_initial_outputs=*/false);
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasDropoutGoldenTest,
                         golden::KerasTrainingParams(KerasCases()),
                         golden::KerasCasePrecisionName());

TEST(DropoutSpecTest, BadCombinationsAreRefusedNamingTheField) {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[0].dropout = 1.0;
  EXPECT_EQ(ValidateJobSpec(spec).message(),
            "model.layers[0].dropout must be in [0, 1), got 1");
  spec = DefaultJobSpec();
  spec.model.layers.push_back(Dense(1));
  spec.model.layers.back().dropout = 0.5;
  EXPECT_THAT(std::string(ValidateJobSpec(spec).message()),
              HasSubstr("model.layers[2]: dropout and recurrent_dropout "
                        "apply to RNN layers only"));
  spec = DefaultJobSpec();
  spec.model.layers[0].dropout = 0.5;
  EXPECT_TRUE(ValidateJobSpec(spec).ok());
  EXPECT_NE(SpecDigest(spec), SpecDigest(DefaultJobSpec()));
}

}  // namespace
}  // namespace driftscope
