// keras.layers.Bidirectional(merge_mode=None) as the last layer: two Keras
// outputs (forward, backward), kept side by side on the last axis, the loss
// the sum of the two outputs' losses. The loss against an independent
// double computation and finite differences, the spec rules, and real
// Keras 3 goldens (tests/golden/bidirectional/make_bidirectional_golden.py,
// the merge_mode None cases): forward, first-step gradients, 6-step
// training runs.
#include <cmath>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/init/init_seeds.h"
#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"
#include "engine/loss/loss.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "engine/reference/reference.h"
#include "engine/train/dropout.h"
#include "engine/train/model.h"
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
using testing_util::Bi;
using testing_util::Lcg;

const std::string kDir =
    std::string(DRIFTSCOPE_SOURCE_DIR) + "/tests/golden/bidirectional/";

// Keras' MSE / MAE of one output (rows × width, mean over the last axis,
// then over rows), written out independently of engine/loss.
double OneLoss(LossKind kind, const std::vector<double>& p,
               const std::vector<double>& y, int64_t rows, int stride, int col0,
               int width) {
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double row = 0;
    for (int j = 0; j < width; ++j) {
      const double e = y[r * stride + col0 + j] - p[r * stride + col0 + j];
      row += kind == LossKind::kMse ? e * e : std::fabs(e);
    }
    total += row / width;
  }
  return total / static_cast<double>(rows);
}

TEST(BidirectionalNoneLossTest, TwoOutputsAddTheirLossesAndGradients) {
  const int64_t rows = 6;
  const int width = 3, dim = 2 * width;
  Lcg rng(3);
  const std::vector<double> p = rng.Vec(rows * dim, 1.0);
  const std::vector<double> y = rng.Vec(rows * dim, 1.0);
  for (LossKind kind : {LossKind::kMse, LossKind::kMae}) {
    const double want = OneLoss(kind, p, y, rows, dim, 0, width) +
                        OneLoss(kind, p, y, rows, dim, width, width);
    const double got = LossForward<double>(kind, p.data(), y.data(), rows, dim,
                                           /*outputs=*/2);
    EXPECT_NEAR(got, want, 1e-15);
    // Not the one-output loss of the concatenation (half of it).
    EXPECT_NEAR(LossForward<double>(kind, p.data(), y.data(), rows, dim),
                want / 2, 1e-15);
    std::vector<double> d(p.size());
    LossBackward<double>(kind, p.data(), y.data(), rows, dim, d.data(), 2);
    for (size_t i = 0; i < p.size(); ++i) {
      std::vector<double> pp = p, pm = p;
      pp[i] += 1e-6;
      pm[i] -= 1e-6;
      const double fd =
          (LossForward<double>(kind, pp.data(), y.data(), rows, dim, 2) -
           LossForward<double>(kind, pm.data(), y.data(), rows, dim, 2)) /
          2e-6;
      EXPECT_NEAR(d[i], fd, 1e-8) << i;
    }
  }
}

TEST(BidirectionalNoneSpecTest, LastLayerOnlyAndTheOutputIsBothSideBySide) {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[1].bidirectional = true;
  spec.model.layers[1].merge_mode = MergeMode::kNone;
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  EXPECT_EQ(ModelOutputUnits(spec.model), 64);
  EXPECT_EQ(ModelOutputCount(spec.model), 2);
  EXPECT_THAT(CanonicalText(spec), HasSubstr("none"));
  JobSpec concat = spec;
  concat.model.layers[1].merge_mode = MergeMode::kConcat;
  EXPECT_EQ(ModelOutputCount(concat.model), 1);
  EXPECT_NE(SpecDigest(spec), SpecDigest(concat));

  JobSpec inner = DefaultJobSpec();
  inner.model.layers[0].bidirectional = true;
  inner.model.layers[0].merge_mode = MergeMode::kNone;
  EXPECT_EQ(ValidateJobSpec(inner).message(),
            "model.layers[0].merge_mode none gives two outputs (forward and "
            "backward) and is only supported on the last layer, but "
            "model.layers[1] comes after it; remove that layer or use "
            "concat, sum, mul or ave");
  JobSpec state = spec;
  state.model.layers[1].return_state = true;
  EXPECT_THAT(std::string(ValidateJobSpec(state).message()),
              HasSubstr("return_state in a bidirectional layer is not "
                        "supported yet"));
}

// Device profiles refuse Bidirectional layers, merge_mode none included.
TEST(BidirectionalNoneSpecTest, DeviceProfilesRefuseIt) {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[0].units = 8;
  spec.model.layers[1].units = 4;
  spec.model.layers[1].bidirectional = true;
  spec.model.layers[1].merge_mode = MergeMode::kNone;
  spec.data.samples = 16;
  spec.data.eval_samples = 4;
  spec.training.epochs = 1;
  absl::StatusOr<RunResult> r = RunJob(spec, *Profile::Parse("cuda-det-emu"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("model.layers[1].bidirectional"));
  absl::StatusOr<RunResult> cpu = RunJob(spec, *Profile::Parse("fp32"));
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_EQ(cpu->outputs.shape(), (std::vector<int64_t>{4, 10, 8}));
}

// The layer computes what concat computes (the layout is the same); the
// reference's gradients against finite differences, the engine's against
// the reference.
TEST(BidirectionalNoneLayerTest, EngineAndReferenceAgree) {
  const LayerSpec spec = Bi(LayerKind::kGru, 3, MergeMode::kNone, true);
  const ActivationShape in{true, 4, 2};
  const int batch = 2;
  Lcg rng(9);
  const RefWeights w = testing_util::RandomWeights(spec, in, &rng, 0.6);
  const std::vector<double> x = rng.Vec(batch * 4 * 2, 1.0);
  const std::vector<double> y_ref = RefForward(spec, in, w, x, batch);
  ASSERT_EQ(y_ref.size(), static_cast<size_t>(batch * 4 * 6));
  const std::vector<double> dy =
      rng.Vec(static_cast<int64_t>(y_ref.size()), 1.0);
  const RefLayerGrads g = RefBackward(spec, in, w, x, batch, dy);
  testing_util::ExpectGradientsMatchFiniteDifferences(
      w, x, g, [&](const RefWeights& ww, const std::vector<double>& xx) {
        const std::vector<double> y = RefForward(spec, in, ww, xx, batch);
        double l = 0;
        for (size_t i = 0; i < y.size(); ++i) l += dy[i] * y[i];
        return l;
      });
  const std::vector<double> p = testing_util::Flatten(w);
  const std::vector<double> dp_ref = testing_util::Flatten(g.dweights);
  Profile profile;
  profile.precision = Precision::kFp64;
  const Context ctx(profile);
  absl::StatusOr<std::unique_ptr<Layer<double>>> layer =
      MakeLayer<double>(spec, in, "layer");
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ((*layer)->output_shape().dim, 6);
  std::vector<double> y(y_ref.size()), dx(x.size()), dp(p.size());
  (*layer)->Forward(ctx, p.data(), x.data(), batch, y.data());
  (*layer)->Backward(ctx, p.data(), dy.data(), dx.data(), dp.data());
  testing_util::ExpectNearEach(y, y_ref, 1e-12, "y");
  testing_util::ExpectNearEachScaled(dp, dp_ref, 1e-12, "dparams");
  for (size_t i = 0; i < dx.size(); ++i)
    EXPECT_NEAR(dx[i], g.dx[i], 1e-12 * std::max(1.0, std::fabs(g.dx[i])));
}

// Mirrors the merge_mode None cases of make_bidirectional_golden.py.
std::vector<KerasCase> KerasCases() {
  std::vector<KerasCase> c;
  JobSpec base = golden::KerasGoldenBaseSpec(5, 3);
  {
    JobSpec s = base;
    s.seed = 11;
    s.model.layers = {Bi(LayerKind::kLstm, 3, MergeMode::kConcat, true),
                      Bi(LayerKind::kGru, 2, MergeMode::kNone, true)};
    c.push_back({"lstm_concat_gru_none_adam_s11", s});
  }
  {
    JobSpec s = base;
    s.seed = 5;
    LayerSpec lstm = Bi(LayerKind::kLstm, 2, MergeMode::kNone, false);
    lstm.dropout = 0.25;
    s.model.layers = {lstm};
    s.optimizer.kind = OptimizerKind::kSgd;
    s.optimizer.learning_rate = 0x1p-3;
    c.push_back({"lstm_dropout_none_last_sgd_s5", s});
  }
  return c;
}

using KerasBidirectionalNoneGoldenTest = golden::KerasTrainingGoldenTest;

TEST_P(KerasBidirectionalNoneGoldenTest, TrainingMatchesKeras) {
  ExpectTrainingMatchesKeras(kDir, /*check_initial_outputs=*/true);
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasBidirectionalNoneGoldenTest,
                         golden::KerasTrainingParams(KerasCases()),
                         golden::KerasCasePrecisionName());

class KerasBidirectionalNoneModelTest
    : public ::testing::TestWithParam<KerasCase> {};

// The first step's gradients (loss = the two outputs' MSE added) from the
// engine's model and the reference, against Keras float64's GradientTape.
TEST_P(KerasBidirectionalNoneModelTest, FirstStepGradientsMatchKeras) {
  const KerasCase& tc = GetParam();
  golden::FirstStepGolden s;
  ASSERT_NO_FATAL_FAILURE(
      golden::LoadFirstStep(tc.name, kDir + tc.name + "/f64/", tc.spec, &s));
  DropoutMasks<double> masks(tc.spec, ModelInitSeeds(tc.spec), s.batch);
  masks.Draw(0, s.batch);
  const double* pred = s.model->Forward(*s.ctx, s.xb.data(), s.batch, &masks);
  // Each output's MSE gradient: 2 (p − y) / (rows · units of one output).
  const int units = ModelOutputUnits(tc.spec.model);
  const int64_t rows = golden::FirstBatchOutputs(s) / units;
  const std::vector<double> dy = golden::MseGradient(s, pred, rows * units / 2);
  s.model->Backward(*s.ctx, dy.data());
  // The reference with the same masks (a shared mask once per gate).
  for (size_t i = 0; i < tc.spec.model.layers.size(); ++i) {
    const DirectionMasks<double>* dm =
        masks.direction_masks(static_cast<int>(i));
    for (int k = 0; dm != nullptr && k < 2; ++k)
      ASSERT_EQ(dm[k].gates, nullptr);  // the cases use shared masks only
  }
  const std::vector<RefGateMasks> gates =
      golden::RefDirectionGateMasks(tc.spec, masks, s.batch);
  golden::ExpectFirstStepGradientsMatchKeras(
      s, RefModelBackward(tc.spec.model.layers, s.input_shape, s.ref_weights,
                          s.xb, s.batch, dy, nullptr, &gates));
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasBidirectionalNoneModelTest,
                         ::testing::ValuesIn(KerasCases()),
                         golden::KerasCaseName());

}  // namespace
}  // namespace driftscope
