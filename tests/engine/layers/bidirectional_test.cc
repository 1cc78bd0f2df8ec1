// keras.layers.Bidirectional: the reference's gradients against finite
// differences, the engine's layer against the reference for every merge
// mode, and real Keras 3 goldens
// (tests/golden/bidirectional/make_bidirectional_golden.py): initial
// weights of seed_mode KERAS, outputs, first-step gradients and 6-step
// training runs.
#include <cmath>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/io/npy.h"
#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "engine/reference/reference.h"
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
using testing_util::Dense;
using testing_util::Flatten;
using testing_util::Lcg;
using testing_util::RandomWeights;

const std::string kDir =
    std::string(DRIFTSCOPE_SOURCE_DIR) + "/tests/golden/bidirectional/";

struct BiCase {
  std::string name;
  LayerSpec spec;
};

void PrintTo(const BiCase& c, std::ostream* os) { *os << c.name; }

std::vector<BiCase> BiCases() {
  std::vector<BiCase> c;
  c.push_back(
      {"lstm_concat", Bi(LayerKind::kLstm, 3, MergeMode::kConcat, true)});
  c.push_back(
      {"lstm_sum_last", Bi(LayerKind::kLstm, 3, MergeMode::kSum, false)});
  c.push_back({"gru_mul", Bi(LayerKind::kGru, 3, MergeMode::kMul, true)});
  c.push_back({"gru_before_ave_no_bias",
               Bi(LayerKind::kGru, 2, MergeMode::kAve, true)});
  c.back().spec.reset_after = false;
  c.back().spec.use_bias = false;
  c.push_back({"simple_rnn_concat_last",
               Bi(LayerKind::kSimpleRnn, 3, MergeMode::kConcat, false)});
  c.push_back(
      {"simple_rnn_mul", Bi(LayerKind::kSimpleRnn, 2, MergeMode::kMul, true)});
  return c;
}

constexpr int kBatch = 3, kSteps = 4, kDim = 2;

class BidirectionalLayerTest : public ::testing::TestWithParam<BiCase> {};

TEST_P(BidirectionalLayerTest, ReferenceGradientsMatchFiniteDifferences) {
  const LayerSpec& spec = GetParam().spec;
  const ActivationShape in{true, kSteps, kDim};
  Lcg rng(5);
  RefWeights w = RandomWeights(spec, in, &rng, 0.6);
  ASSERT_EQ(w.size() % 2, 0u);
  std::vector<double> x = rng.Vec(kBatch * kSteps * kDim, 1.0);
  const std::vector<double> y0 = RefForward(spec, in, w, x, kBatch);
  const ActivationShape out = RefOutputShape(spec, in);
  ASSERT_EQ(static_cast<int64_t>(y0.size()), kBatch * out.per_sample());
  const std::vector<double> dy = rng.Vec(static_cast<int64_t>(y0.size()), 1.0);
  const RefLayerGrads g = RefBackward(spec, in, w, x, kBatch, dy);
  auto loss = [&](const RefWeights& ww, const std::vector<double>& xx) {
    const std::vector<double> y = RefForward(spec, in, ww, xx, kBatch);
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += dy[i] * y[i];
    return l;
  };
  testing_util::ExpectGradientsMatchFiniteDifferences(w, x, g, loss);
}

TEST_P(BidirectionalLayerTest, EngineMatchesTheReference) {
  const LayerSpec& spec = GetParam().spec;
  const ActivationShape in{true, kSteps, kDim};
  Lcg rng(8);
  const RefWeights w = RandomWeights(spec, in, &rng, 0.6);
  const std::vector<double> x = rng.Vec(kBatch * kSteps * kDim, 1.0);
  const std::vector<double> y_ref = RefForward(spec, in, w, x, kBatch);
  const std::vector<double> dy =
      rng.Vec(static_cast<int64_t>(y_ref.size()), 1.0);
  const RefLayerGrads g = RefBackward(spec, in, w, x, kBatch, dy);
  const std::vector<double> p = Flatten(w), dp_ref = Flatten(g.dweights);
  Profile profile;
  profile.precision = Precision::kFp64;
  const Context ctx(profile);
  absl::StatusOr<std::unique_ptr<Layer<double>>> layer =
      MakeLayer<double>(spec, in, "layer");
  ASSERT_TRUE(layer.ok()) << layer.status();
  ASSERT_EQ((*layer)->num_params(), static_cast<int64_t>(p.size()));
  ASSERT_EQ((*layer)->weights().front().name, "forward_kernel");
  ASSERT_EQ((*layer)->weights().back().name,
            spec.use_bias ? "backward_bias" : "backward_recurrent_kernel");
  std::vector<double> y(y_ref.size()), dx(x.size()), dp(p.size());
  (*layer)->Forward(ctx, p.data(), x.data(), kBatch, y.data());
  (*layer)->Backward(ctx, p.data(), dy.data(), dx.data(), dp.data());
  testing_util::ExpectNearEach(y, y_ref, 1e-12, "y");
  testing_util::ExpectNearEachScaled(dp, dp_ref, 1e-12, "dparams");
  testing_util::ExpectNearEachScaled(dx, g.dx, 1e-12, "dx");

  Profile p32;
  p32.precision = Precision::kFp32;
  const Context ctx32(p32);
  absl::StatusOr<std::unique_ptr<Layer<float>>> layer32 =
      MakeLayer<float>(spec, in, "layer");
  ASSERT_TRUE(layer32.ok());
  const std::vector<float> pf(p.begin(), p.end()), xf(x.begin(), x.end()),
      dyf(dy.begin(), dy.end());
  std::vector<float> yf(y.size()), dxf(x.size()), dpf(p.size());
  (*layer32)->Forward(ctx32, pf.data(), xf.data(), kBatch, yf.data());
  (*layer32)->Backward(ctx32, pf.data(), dyf.data(), dxf.data(), dpf.data());
  testing_util::ExpectNearEach(yf, y_ref, 1e-5, "f32 y");
  testing_util::ExpectNearEachScaled(dpf, dp_ref, 1e-4, "f32 dparams");
}

INSTANTIATE_TEST_SUITE_P(AllModes, BidirectionalLayerTest,
                         ::testing::ValuesIn(BiCases()),
                         [](const auto& info) { return info.param.name; });

// Mirrors CASES in make_bidirectional_golden.py.
std::vector<KerasCase> KerasCases() {
  std::vector<KerasCase> c;
  JobSpec base = golden::KerasGoldenBaseSpec(5, 3);
  {
    JobSpec s = base;
    s.seed = 42;
    s.model.layers = {Bi(LayerKind::kLstm, 4, MergeMode::kConcat, true),
                      Bi(LayerKind::kGru, 3, MergeMode::kSum, true), Dense(2)};
    c.push_back({"lstm_concat_gru_sum_adam_s42", s});
  }
  {
    JobSpec s = base;
    s.seed = 7;
    LayerSpec srnn = Bi(LayerKind::kSimpleRnn, 3, MergeMode::kMul, true);
    LayerSpec gru = Bi(LayerKind::kGru, 3, MergeMode::kAve, false);
    gru.reset_after = false;
    s.model.layers = {srnn, gru, Dense(2)};
    s.optimizer.kind = OptimizerKind::kSgd;
    s.optimizer.learning_rate = 0x1p-3;
    c.push_back({"simple_rnn_mul_gru_before_ave_sgd_s7", s});
  }
  return c;
}

using KerasBidirectionalGoldenTest = golden::KerasTrainingGoldenTest;

TEST_P(KerasBidirectionalGoldenTest, TrainingMatchesKeras) {
  ExpectTrainingMatchesKeras(kDir, /*check_initial_outputs=*/true);
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasBidirectionalGoldenTest,
                         golden::KerasTrainingParams(KerasCases()),
                         golden::KerasCasePrecisionName());

class KerasBidirectionalModelTest : public ::testing::TestWithParam<KerasCase> {
};

// seed_mode KERAS: the initial weights Keras gives the same model after
// set_random_seed (the wrapped layer's draws, then the forward copy's, then
// the backward copy's): glorot kernels bit for bit, orthogonal recurrent
// kernels within float32 rounding (docs/keras.md).
TEST_P(KerasBidirectionalModelTest, KerasSeedModeGivesKerasInitialWeights) {
  const KerasCase& tc = GetParam();
  RunResult run;
  int exact = 0;
  ASSERT_NO_FATAL_FAILURE(golden::ExpectKerasSeedModeWeights(
      kDir + tc.name + "/f32/", tc.spec, /*bit_exact_except_recurrent=*/true,
      /*same_shapes=*/false, &run, &exact));
  EXPECT_GT(exact, 0);
}

// The first step's gradients of the engine's model and of the reference,
// against Keras float64's GradientTape.
TEST_P(KerasBidirectionalModelTest, FirstStepGradientsMatchKeras) {
  const KerasCase& tc = GetParam();
  golden::FirstStepGolden s;
  ASSERT_NO_FATAL_FAILURE(
      golden::LoadFirstStep(tc.name, kDir + tc.name + "/f64/", tc.spec, &s));
  const double* pred = s.model->Forward(*s.ctx, s.xb.data(), s.batch);
  const std::vector<double> dy =
      golden::MseGradient(s, pred, golden::FirstBatchOutputs(s));
  s.model->Backward(*s.ctx, dy.data());
  golden::ExpectFirstStepGradientsMatchKeras(
      s, RefModelBackward(tc.spec.model.layers, s.input_shape, s.ref_weights,
                          s.xb, s.batch, dy));
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasBidirectionalModelTest,
                         ::testing::ValuesIn(KerasCases()),
                         golden::KerasCaseName());

TEST(BidirectionalSpecTest, BadCombinationsAreRefusedNamingTheField) {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[0].bidirectional = true;
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  EXPECT_EQ(ModelOutputUnits(spec.model), 32);
  spec.model.layers[1].bidirectional = true;
  EXPECT_EQ(ModelOutputUnits(spec.model), 64);
  spec.model.layers[1].merge_mode = MergeMode::kAve;
  EXPECT_EQ(ModelOutputUnits(spec.model), 32);
  EXPECT_NE(SpecDigest(spec), SpecDigest(DefaultJobSpec()));
  EXPECT_THAT(CanonicalText(spec), HasSubstr("bidirectional"));
  EXPECT_THAT(CanonicalText(DefaultJobSpec()),
              ::testing::Not(HasSubstr("bidirectional")));

  JobSpec dense = DefaultJobSpec();
  dense.model.layers.push_back(Dense(1));
  dense.model.layers.back().bidirectional = true;
  EXPECT_THAT(std::string(ValidateJobSpec(dense).message()),
              HasSubstr("model.layers[2]: bidirectional wraps LSTM, GRU or "
                        "SimpleRNN only"));
  JobSpec back = DefaultJobSpec();
  back.model.layers[0].bidirectional = true;
  back.model.layers[0].go_backwards = true;
  EXPECT_THAT(std::string(ValidateJobSpec(back).message()),
              HasSubstr("model.layers[0].go_backwards must be false in a "
                        "bidirectional layer"));
  JobSpec state = DefaultJobSpec();
  state.model.layers[1].bidirectional = true;
  state.model.layers[1].return_state = true;
  EXPECT_THAT(std::string(ValidateJobSpec(state).message()),
              HasSubstr("model.layers[1]: return_state in a bidirectional "
                        "layer is not supported yet"));
}

// The next layer's input width is the merged width: 2·units after concat.
TEST(BidirectionalSpecTest, ConcatDoublesTheNextLayersInput) {
  ModelSpec m;
  m.timesteps = 3;
  m.features = 2;
  m.layers = {Bi(LayerKind::kGru, 4, MergeMode::kConcat, true), Dense(1)};
  absl::StatusOr<std::unique_ptr<Model<float>>> model =
      Model<float>::Create(m, 2);
  ASSERT_TRUE(model.ok());
  EXPECT_EQ((*model)->layer(1).input_shape().dim, 8);
  EXPECT_EQ((*model)->weights()[6].name, "layer1_kernel");
  EXPECT_EQ((*model)->weights()[6].shape, (std::vector<int64_t>{8, 1}));
}

}  // namespace
}  // namespace driftscope
