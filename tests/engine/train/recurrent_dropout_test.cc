// Recurrent dropout (and input dropout with implementation 1): Keras'
// per-gate masks. The reference's gradients against finite differences,
// the engine's layers against the reference with the same masks, and whole
// training runs and first-step gradients against real Keras 3
// (tests/golden/recurrent_dropout/make_recurrent_dropout_golden.py, seed
// mode KERAS, so the masks are the ones Keras' SeedGenerators give).
#include <cmath>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/init/init_seeds.h"
#include "engine/io/npy.h"
#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "engine/reference/reference.h"
#include "engine/rng/philox.h"
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
using testing_util::Dense;
using testing_util::Flatten;
using testing_util::Lcg;
using testing_util::RandomWeights;

const std::string kDir =
    std::string(DRIFTSCOPE_SOURCE_DIR) + "/tests/golden/recurrent_dropout/";

LayerSpec Rnn(LayerKind kind, int units, double dropout, double recurrent) {
  LayerSpec l = testing_util::Rnn(kind, units, /*sequences=*/true);
  l.dropout = dropout;
  l.recurrent_dropout = recurrent;
  return l;
}

// Masks with entries 0 or 1/(1 - rate), about `rate` of them dropped.
std::vector<std::vector<double>> RandomMasks(int count, int64_t size,
                                             double rate, Lcg* rng) {
  std::vector<std::vector<double>> m(count);
  for (auto& v : m) {
    for (int64_t i = 0; i < size; ++i)
      v.push_back(rng->Next() * 0.5 + 0.5 < rate ? 0.0 : 1.0 / (1.0 - rate));
  }
  return m;
}

struct MaskedCase {
  std::string name;
  LayerSpec spec;
};

void PrintTo(const MaskedCase& c, std::ostream* os) { *os << c.name; }

std::vector<MaskedCase> MaskedCases() {
  std::vector<MaskedCase> c;
  c.push_back({"lstm", Rnn(LayerKind::kLstm, 3, 0.3, 0.4)});
  c.push_back({"lstm_recurrent_only_last", Rnn(LayerKind::kLstm, 3, 0, 0.5)});
  c.back().spec.return_sequences = false;
  c.push_back(
      {"lstm_implementation1_input_only", Rnn(LayerKind::kLstm, 3, 0.5, 0)});
  c.back().spec.implementation = 1;
  c.push_back({"gru_reset_after", Rnn(LayerKind::kGru, 3, 0.3, 0.4)});
  c.push_back({"gru_reset_before", Rnn(LayerKind::kGru, 3, 0.3, 0.4)});
  c.back().spec.reset_after = false;
  c.push_back(
      {"gru_reset_before_backwards_no_bias", Rnn(LayerKind::kGru, 2, 0, 0.5)});
  c.back().spec.reset_after = false;
  c.back().spec.go_backwards = true;
  c.back().spec.use_bias = false;
  c.push_back({"simple_rnn", Rnn(LayerKind::kSimpleRnn, 3, 0.3, 0.4)});
  c.push_back({"simple_rnn_backwards", Rnn(LayerKind::kSimpleRnn, 2, 0, 0.5)});
  c.back().spec.go_backwards = true;
  return c;
}

constexpr int kBatch = 3, kSteps = 4, kDim = 2;

RefGateMasks MasksFor(const LayerSpec& spec, Lcg* rng) {
  RefGateMasks m;
  m.input =
      RandomMasks(InputMasksPerStep(spec), kBatch * kDim, spec.dropout, rng);
  m.recurrent =
      RandomMasks(RecurrentMasksPerStep(spec), int64_t{kBatch} * spec.units,
                  spec.recurrent_dropout, rng);
  return m;
}

class GateMaskedLayerTest : public ::testing::TestWithParam<MaskedCase> {};

// L = Σ dy ⊙ y: the reference's BPTT with per-gate masks equals central
// differences of its own forward pass, for every weight and input.
TEST_P(GateMaskedLayerTest, ReferenceGradientsMatchFiniteDifferences) {
  const LayerSpec& spec = GetParam().spec;
  ASSERT_TRUE(UsesGateMasks(spec));
  const ActivationShape in{true, kSteps, kDim};
  Lcg rng(17);
  RefWeights w = RandomWeights(spec, in, &rng, 0.6);
  std::vector<double> x = rng.Vec(kBatch * kSteps * kDim, 1.0);
  const RefGateMasks masks = MasksFor(spec, &rng);
  int dropped = 0;
  for (const auto& v : masks.recurrent)
    for (double e : v) dropped += e == 0;
  if (spec.recurrent_dropout > 0) {
    ASSERT_GT(dropped, 0);  // the masks really drop something
  }
  const std::vector<double> y0 =
      RefForward(spec, in, w, x, kBatch, nullptr, &masks);
  const std::vector<double> dy = rng.Vec(static_cast<int64_t>(y0.size()), 1.0);
  const RefLayerGrads g = RefBackward(spec, in, w, x, kBatch, dy, &masks);
  auto loss = [&](const RefWeights& ww, const std::vector<double>& xx) {
    const std::vector<double> y =
        RefForward(spec, in, ww, xx, kBatch, nullptr, &masks);
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += dy[i] * y[i];
    return l;
  };
  testing_util::ExpectGradientsMatchFiniteDifferences(w, x, g, loss);
}

// The engine's layer (fp64 and fp32 profiles) with the same masks as the
// reference: outputs and gradients.
TEST_P(GateMaskedLayerTest, EngineMatchesTheReferenceWithTheSameMasks) {
  const LayerSpec& spec = GetParam().spec;
  const ActivationShape in{true, kSteps, kDim};
  Lcg rng(29);
  const RefWeights w = RandomWeights(spec, in, &rng, 0.6);
  const std::vector<double> x = rng.Vec(kBatch * kSteps * kDim, 1.0);
  const RefGateMasks masks = MasksFor(spec, &rng);
  const std::vector<double> y_ref =
      RefForward(spec, in, w, x, kBatch, nullptr, &masks);
  const std::vector<double> dy =
      rng.Vec(static_cast<int64_t>(y_ref.size()), 1.0);
  const RefLayerGrads g_ref = RefBackward(spec, in, w, x, kBatch, dy, &masks);
  const std::vector<double> p_ref = Flatten(w);
  const std::vector<double> dp_ref = Flatten(g_ref.dweights);
  std::vector<double> in_masks, rec_masks;
  for (const auto& v : masks.input)
    in_masks.insert(in_masks.end(), v.begin(), v.end());
  for (const auto& v : masks.recurrent)
    rec_masks.insert(rec_masks.end(), v.begin(), v.end());
  Profile profile;
  profile.precision = Precision::kFp64;
  const Context ctx(profile);
  absl::StatusOr<std::unique_ptr<Layer<double>>> layer =
      MakeLayer<double>(spec, in, "layer");
  ASSERT_TRUE(layer.ok()) << layer.status();
  GateMasks<double> gm;
  gm.input = in_masks.empty() ? nullptr : in_masks.data();
  gm.recurrent = rec_masks.empty() ? nullptr : rec_masks.data();
  (*layer)->SetGateMasks(&gm);
  std::vector<double> y(y_ref.size()), dx(x.size()), dp(p_ref.size());
  (*layer)->Forward(ctx, p_ref.data(), x.data(), kBatch, y.data());
  (*layer)->Backward(ctx, p_ref.data(), dy.data(), dx.data(), dp.data());
  auto expect_close = [](const std::vector<double>& a,
                         const std::vector<double>& r, const char* what) {
    ASSERT_EQ(a.size(), r.size());
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_NEAR(a[i], r[i], 1e-12 * std::max(1.0, std::fabs(r[i])))
          << what << "[" << i << "]";
  };
  expect_close(y, y_ref, "y");
  expect_close(dp, dp_ref, "dparams");
  expect_close(dx, g_ref.dx, "dx");
  // Without masks (evaluation) the layer is the unmasked implementation 1.
  (*layer)->SetGateMasks(nullptr);
  (*layer)->Forward(ctx, p_ref.data(), x.data(), kBatch, y.data());
  LayerSpec plain = spec;
  plain.implementation = 1;
  expect_close(y, RefForward(plain, in, w, x, kBatch), "eval y");

  // float32: the same computation rounded to float.
  Profile p32;
  p32.precision = Precision::kFp32;
  const Context ctx32(p32);
  absl::StatusOr<std::unique_ptr<Layer<float>>> layer32 =
      MakeLayer<float>(spec, in, "layer");
  ASSERT_TRUE(layer32.ok());
  const std::vector<float> p32v(p_ref.begin(), p_ref.end()),
      x32(x.begin(), x.end()), dy32(dy.begin(), dy.end()),
      im32(in_masks.begin(), in_masks.end()),
      rm32(rec_masks.begin(), rec_masks.end());
  GateMasks<float> gm32;
  gm32.input = im32.empty() ? nullptr : im32.data();
  gm32.recurrent = rm32.empty() ? nullptr : rm32.data();
  (*layer32)->SetGateMasks(&gm32);
  std::vector<float> y32(y_ref.size()), dx32(x.size()), dp32(p_ref.size());
  (*layer32)->Forward(ctx32, p32v.data(), x32.data(), kBatch, y32.data());
  (*layer32)->Backward(ctx32, p32v.data(), dy32.data(), dx32.data(),
                       dp32.data());
  testing_util::ExpectNearEach(y32, y_ref, 1e-5, "f32 y");
  testing_util::ExpectNearEachScaled(dp32, dp_ref, 1e-4, "f32 dparams");
}

INSTANTIATE_TEST_SUITE_P(AllKinds, GateMaskedLayerTest,
                         ::testing::ValuesIn(MaskedCases()),
                         [](const auto& info) { return info.param.name; });

TEST(RecurrentDropoutMaskTest, CountersFollowKerasDrawOrder) {
  JobSpec spec;
  spec.seed = 42;
  spec.seed_mode = SeedMode::kKeras;
  spec.model.layers = {Rnn(LayerKind::kLstm, 4, 0.25, 0.3),
                       Rnn(LayerKind::kGru, 3, 0, 0.4),
                       Rnn(LayerKind::kSimpleRnn, 2, 0.1, 0.2), Dense(1)};
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  EXPECT_EQ(InputMasksPerStep(spec.model.layers[0]), 4);
  EXPECT_EQ(RecurrentMasksPerStep(spec.model.layers[0]), 4);
  EXPECT_EQ(InputMasksPerStep(spec.model.layers[1]), 0);
  EXPECT_EQ(RecurrentMasksPerStep(spec.model.layers[1]), 3);
  EXPECT_EQ(InputMasksPerStep(spec.model.layers[2]), 1);
  EXPECT_EQ(RecurrentMasksPerStep(spec.model.layers[2]), 1);
  const std::vector<LayerSeeds> seeds = ModelInitSeeds(spec);
  const int batch = 2;
  DropoutMasks<double> masks(spec, seeds, batch);
  masks.Draw(3, batch);
  // Layer 0, step 3: 8 masks per step; the recurrent mask of gate f (the
  // 6th draw) uses Keras' SeedGenerator state [g, 3·8 + 5].
  const GateMasks<double>* gm = masks.gate_masks(0);
  ASSERT_NE(gm, nullptr);
  ASSERT_EQ(masks.mask(0), nullptr);  // no shared input mask
  std::vector<float> scratch(batch * 4);
  std::vector<double> want(batch * 4);
  DrawDropoutMask<double>({*seeds[0].dropout, 3 * 8 + 5}, 0.3, batch * 4,
                          scratch.data(), want.data());
  EXPECT_EQ(0, std::memcmp(gm->recurrent + 1 * batch * 4, want.data(),
                           want.size() * sizeof(double)));
  ASSERT_NE(masks.gate_masks(1), nullptr);
  EXPECT_EQ(masks.gate_masks(1)->input, nullptr);
  EXPECT_EQ(masks.gate_masks(3), nullptr);
  // STREAMS: the same counters in the layer's dropout stream.
  spec.seed_mode = SeedMode::kStreams;
  EXPECT_EQ(DropoutSeed(spec, ModelInitSeeds(spec)[0], 0, 3 * 8 + 5),
            (SeedPair{42, streams::Dropout(0, 29)}));
}

// Mirrors CASES in make_recurrent_dropout_golden.py.
std::vector<KerasCase> KerasCases() {
  std::vector<KerasCase> c;
  JobSpec base = golden::KerasGoldenBaseSpec(5, 3);
  {
    JobSpec s = base;
    s.seed = 42;
    s.model.layers = {Rnn(LayerKind::kLstm, 4, 0.25, 0.3),
                      Rnn(LayerKind::kGru, 3, 0, 0.4), Dense(2)};
    c.push_back({"lstm_gru_recurrent_dropout_adam_s42", s});
  }
  {
    JobSpec s = base;
    s.seed = 7;
    LayerSpec gru = Rnn(LayerKind::kGru, 3, 0.2, 0.5);
    gru.reset_after = false;
    LayerSpec srnn = Rnn(LayerKind::kSimpleRnn, 4, 0.1, 0.3);
    srnn.go_backwards = true;
    s.model.layers = {gru, srnn, Dense(2)};
    s.optimizer.weight_decay = 0x1p-3;  // AdamW
    c.push_back({"gru_before_simple_rnn_recurrent_dropout_adamw_s7", s});
  }
  {
    JobSpec s = base;
    s.seed = 3;
    LayerSpec lstm = Rnn(LayerKind::kLstm, 3, 0.3, 0);
    lstm.implementation = 1;
    lstm.return_sequences = false;
    s.model.layers = {lstm, Dense(2)};
    s.optimizer.kind = OptimizerKind::kSgd;
    s.optimizer.learning_rate = 0x1p-3;
    c.push_back({"lstm_implementation1_dropout_sgd_s3", s});
  }
  return c;
}

using KerasRecurrentDropoutGoldenTest = golden::KerasTrainingGoldenTest;

TEST_P(KerasRecurrentDropoutGoldenTest, TrainingMatchesKeras) {
  ExpectTrainingMatchesKeras(kDir, /*check_initial_outputs=*/false);
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasRecurrentDropoutGoldenTest,
                         golden::KerasTrainingParams(KerasCases()),
                         golden::KerasCasePrecisionName());

class KerasRecurrentDropoutGradientTest
    : public ::testing::TestWithParam<KerasCase> {};

// The first training step's gradients (its masks drawn as Keras' fit()
// draws them) from the engine's model and from the float64 reference, both
// against Keras float64's GradientTape.
TEST_P(KerasRecurrentDropoutGradientTest, FirstStepGradientsMatchKeras) {
  const KerasCase& tc = GetParam();
  golden::FirstStepGolden s;
  ASSERT_NO_FATAL_FAILURE(
      golden::LoadFirstStep(tc.name, kDir + tc.name + "/f64/", tc.spec, &s));
  const int batch = s.batch;
  DropoutMasks<double> masks(tc.spec, ModelInitSeeds(tc.spec), batch);
  masks.Draw(0, batch);
  const double* pred = s.model->Forward(*s.ctx, s.xb.data(), batch, &masks);
  const std::vector<double> dy =
      golden::MseGradient(s, pred, golden::FirstBatchOutputs(s));
  s.model->Backward(*s.ctx, dy.data());
  golden::ExpectEngineGradientsMatchKeras(s);

  // The reference with the same masks, as the independent check.
  RefMasks shared(tc.spec.model.layers.size());
  std::vector<RefGateMasks> gates(tc.spec.model.layers.size());
  int width = tc.spec.model.features;
  for (size_t i = 0; i < tc.spec.model.layers.size(); ++i) {
    const LayerSpec& l = tc.spec.model.layers[i];
    const int li = static_cast<int>(i);
    if (masks.mask(li) != nullptr)
      shared[i].assign(masks.mask(li), masks.mask(li) + batch * width);
    if (const GateMasks<double>* gm = masks.gate_masks(li)) {
      for (int g = 0; g < InputMasksPerStep(l); ++g)
        gates[i].input.emplace_back(gm->input + g * batch * width,
                                    gm->input + (g + 1) * batch * width);
      for (int g = 0; g < RecurrentMasksPerStep(l); ++g)
        gates[i].recurrent.emplace_back(
            gm->recurrent + g * batch * l.units,
            gm->recurrent + (g + 1) * batch * l.units);
    }
    width = l.units;
  }
  golden::ExpectReferenceGradientsMatchKeras(
      s, RefModelBackward(tc.spec.model.layers, s.input_shape, s.ref_weights,
                          s.xb, batch, dy, &shared, &gates));
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasRecurrentDropoutGradientTest,
                         ::testing::ValuesIn(KerasCases()),
                         golden::KerasCaseName());

TEST(RecurrentDropoutSpecTest, BadValuesAreRefusedNamingTheField) {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[1].recurrent_dropout = 1.0;
  EXPECT_EQ(ValidateJobSpec(spec).message(),
            "model.layers[1].recurrent_dropout must be in [0, 1), got 1");
  spec.model.layers[1].recurrent_dropout = -0.1;
  EXPECT_THAT(std::string(ValidateJobSpec(spec).message()),
              HasSubstr("model.layers[1].recurrent_dropout must be in"));
  spec = DefaultJobSpec();
  spec.model.layers.push_back(Dense(1));
  spec.model.layers.back().recurrent_dropout = 0.5;
  EXPECT_THAT(std::string(ValidateJobSpec(spec).message()),
              HasSubstr("model.layers[2]: dropout and recurrent_dropout "
                        "apply to RNN layers only"));
  spec = DefaultJobSpec();
  spec.model.layers[0].recurrent_dropout = 0.25;
  EXPECT_TRUE(ValidateJobSpec(spec).ok());
  EXPECT_NE(SpecDigest(spec), SpecDigest(DefaultJobSpec()));
  EXPECT_THAT(CanonicalText(spec), HasSubstr("recurrent_dropout"));
  EXPECT_THAT(CanonicalText(DefaultJobSpec()),
              ::testing::Not(HasSubstr("recurrent_dropout")));
}

TEST(RecurrentDropoutTrainingTest, MasksChangeTrainingAndRunsRepeatBitForBit) {
  JobSpec spec;
  spec.seed = 5;
  spec.model.timesteps = 6;
  spec.model.features = 2;
  spec.model.layers = {Rnn(LayerKind::kGru, 4, 0, 0.5), Dense(1)};
  spec.data.samples = 32;
  spec.data.eval_samples = 8;
  spec.training.epochs = 1;
  spec.training.batch_size = 8;
  absl::StatusOr<Profile> fp32 = Profile::Parse("fp32");
  ASSERT_TRUE(fp32.ok());
  absl::StatusOr<RunResult> a = RunJob(spec, *fp32);
  absl::StatusOr<RunResult> b = RunJob(spec, *fp32);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  ASSERT_EQ(a->outputs.size(), b->outputs.size());
  EXPECT_EQ(0, std::memcmp(a->outputs.raw(), b->outputs.raw(),
                           a->outputs.size() * sizeof(float)));
  JobSpec plain = spec;
  plain.model.layers[0].recurrent_dropout = 0;
  plain.model.layers[0].implementation = 1;
  absl::StatusOr<RunResult> c = RunJob(plain, *fp32);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(0, std::memcmp(a->outputs.raw(), c->outputs.raw(),
                           a->outputs.size() * sizeof(float)));
}

}  // namespace
}  // namespace driftscope
