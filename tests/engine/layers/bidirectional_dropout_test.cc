// dropout and recurrent_dropout inside keras.layers.Bidirectional: each copy
// draws its own masks. The float64 reference with masks against finite
// differences, the engine's layer against the reference, the mask streams
// (seed_mode KERAS: each copy's SeedGenerator; STREAMS: one stream per
// copy), and real Keras 3 goldens
// (tests/golden/bidirectional/make_bidirectional_golden.py, the cases with
// dropout): initial weights, the first step's gradients with Keras' masks
// and 6-step training runs.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/init/init_seeds.h"
#include "engine/io/npy.h"
#include "engine/job/job_memory.h"
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
    std::string(DRIFTSCOPE_SOURCE_DIR) + "/tests/golden/bidirectional/";

LayerSpec Bi(LayerKind kind, int units, MergeMode mode, bool sequences,
             double dropout, double recurrent_dropout) {
  LayerSpec l = testing_util::Bi(kind, units, mode, sequences);
  l.dropout = dropout;
  l.recurrent_dropout = recurrent_dropout;
  return l;
}

// The masks of one training step of a Bidirectional layer, in the engine's
// form (DirectionMasks over owned buffers) and the reference's
// (RefGateMasks: a copy's shared input mask once per gate).
struct TestMasks {
  std::array<std::vector<double>, 2> shared, input, recurrent;
  std::array<GateMasks<double>, 2> gates;
  std::array<DirectionMasks<double>, 2> engine;
  RefGateMasks ref;
};

// Random keep/drop masks (kept entries 1/(1 − rate)) for both copies.
std::unique_ptr<TestMasks> RandomMasks(const LayerSpec& l, int batch, int dim,
                                       Lcg* rng) {
  auto m = std::make_unique<TestMasks>();
  const auto draw = [&](int64_t n, double rate) {
    std::vector<double> v(static_cast<size_t>(n));
    for (double& e : v) e = rng->Next() < 2 * rate - 1 ? 0 : 1 / (1 - rate);
    return v;
  };
  const auto split = [](const std::vector<double>& all, int count,
                        int64_t size) {
    std::vector<std::vector<double>> out;
    for (int g = 0; g < count; ++g)
      out.emplace_back(all.begin() + g * size, all.begin() + (g + 1) * size);
    return out;
  };
  const int64_t in_size = int64_t{batch} * dim;
  const int64_t rec_size = int64_t{batch} * l.units;
  for (int k = 0; k < 2; ++k) {
    std::vector<std::vector<double>> ref_in, ref_rec;
    if (UsesGateMasks(l)) {
      m->input[k] = draw(InputMasksPerStep(l) * in_size, l.dropout);
      m->recurrent[k] =
          draw(RecurrentMasksPerStep(l) * rec_size, l.recurrent_dropout);
      m->gates[k].input = m->input[k].empty() ? nullptr : m->input[k].data();
      m->gates[k].recurrent =
          m->recurrent[k].empty() ? nullptr : m->recurrent[k].data();
      m->engine[k].gates = &m->gates[k];
      ref_in = split(m->input[k], InputMasksPerStep(l), in_size);
      ref_rec = split(m->recurrent[k], RecurrentMasksPerStep(l), rec_size);
    } else if (l.dropout > 0) {
      m->shared[k] = draw(in_size, l.dropout);
      m->engine[k].input = m->shared[k].data();
      ref_in.assign(GateMaskCount(l), m->shared[k]);
    }
    (k == 0 ? m->ref.input : m->ref.backward_input) = ref_in;
    (k == 0 ? m->ref.recurrent : m->ref.backward_recurrent) = ref_rec;
  }
  return m;
}

struct MaskCase {
  std::string name;
  LayerSpec spec;
};

void PrintTo(const MaskCase& c, std::ostream* os) { *os << c.name; }

std::vector<MaskCase> MaskCases() {
  std::vector<MaskCase> c;
  c.push_back({"lstm_dropout_concat",
               Bi(LayerKind::kLstm, 3, MergeMode::kConcat, true, 0.4, 0)});
  c.push_back({"lstm_both_sum_last",
               Bi(LayerKind::kLstm, 2, MergeMode::kSum, false, 0.3, 0.4)});
  c.push_back({"gru_recurrent_mul",
               Bi(LayerKind::kGru, 3, MergeMode::kMul, true, 0, 0.5)});
  c.push_back({"gru_before_both_ave",
               Bi(LayerKind::kGru, 2, MergeMode::kAve, true, 0.3, 0.3)});
  c.back().spec.reset_after = false;
  c.push_back({"gru_dropout_concat_last",
               Bi(LayerKind::kGru, 2, MergeMode::kConcat, false, 0.5, 0)});
  c.push_back({"simple_rnn_dropout_mul",
               Bi(LayerKind::kSimpleRnn, 2, MergeMode::kMul, true, 0.4, 0)});
  c.push_back(
      {"simple_rnn_both_concat",
       Bi(LayerKind::kSimpleRnn, 3, MergeMode::kConcat, true, 0.3, 0.4)});
  c.push_back({"lstm_implementation1_dropout_ave",
               Bi(LayerKind::kLstm, 2, MergeMode::kAve, true, 0.4, 0)});
  c.back().spec.implementation = 1;
  return c;
}

constexpr int kBatch = 3, kSteps = 4, kDim = 2;

class BidirectionalDropoutLayerTest
    : public ::testing::TestWithParam<MaskCase> {};

TEST_P(BidirectionalDropoutLayerTest,
       ReferenceGradientsWithMasksMatchFiniteDifferences) {
  const LayerSpec& spec = GetParam().spec;
  const ActivationShape in{true, kSteps, kDim};
  Lcg rng(11);
  const RefWeights w = RandomWeights(spec, in, &rng, 0.6);
  const std::vector<double> x = rng.Vec(kBatch * kSteps * kDim, 1.0);
  const std::unique_ptr<TestMasks> m = RandomMasks(spec, kBatch, kDim, &rng);
  const std::vector<double> y0 =
      RefForward(spec, in, w, x, kBatch, nullptr, &m->ref);
  const std::vector<double> dy = rng.Vec(static_cast<int64_t>(y0.size()), 1.0);
  const RefLayerGrads g = RefBackward(spec, in, w, x, kBatch, dy, &m->ref);
  auto loss = [&](const RefWeights& ww, const std::vector<double>& xx) {
    const std::vector<double> y =
        RefForward(spec, in, ww, xx, kBatch, nullptr, &m->ref);
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += dy[i] * y[i];
    return l;
  };
  testing_util::ExpectGradientsMatchFiniteDifferences(w, x, g, loss);
  // The masks change the output (they are not ignored).
  const std::vector<double> plain = RefForward(spec, in, w, x, kBatch);
  double diff = 0;
  for (size_t i = 0; i < y0.size(); ++i)
    diff = std::max(diff, std::fabs(plain[i] - y0[i]));
  EXPECT_GT(diff, 1e-3);
}

TEST_P(BidirectionalDropoutLayerTest, EngineWithMasksMatchesTheReference) {
  const LayerSpec& spec = GetParam().spec;
  const ActivationShape in{true, kSteps, kDim};
  Lcg rng(17);
  const RefWeights w = RandomWeights(spec, in, &rng, 0.6);
  const std::vector<double> x = rng.Vec(kBatch * kSteps * kDim, 1.0);
  const std::unique_ptr<TestMasks> m = RandomMasks(spec, kBatch, kDim, &rng);
  const std::vector<double> y_ref =
      RefForward(spec, in, w, x, kBatch, nullptr, &m->ref);
  const std::vector<double> dy =
      rng.Vec(static_cast<int64_t>(y_ref.size()), 1.0);
  const RefLayerGrads g = RefBackward(spec, in, w, x, kBatch, dy, &m->ref);
  const std::vector<double> p = Flatten(w), dp_ref = Flatten(g.dweights);
  Profile profile;
  profile.precision = Precision::kFp64;
  const Context ctx(profile);
  absl::StatusOr<std::unique_ptr<Layer<double>>> layer =
      MakeLayer<double>(spec, in, "layer");
  ASSERT_TRUE(layer.ok()) << layer.status();
  ASSERT_EQ((*layer)->num_params(), static_cast<int64_t>(p.size()));
  std::vector<double> y(y_ref.size()), dx(x.size()), dp(p.size());
  (*layer)->SetDirectionMasks(m->engine.data());
  (*layer)->Forward(ctx, p.data(), x.data(), kBatch, y.data());
  (*layer)->Backward(ctx, p.data(), dy.data(), dx.data(), dp.data());
  testing_util::ExpectNearEach(y, y_ref, 1e-12, "y");
  testing_util::ExpectNearEachScaled(dp, dp_ref, 1e-12, "dparams");
  testing_util::ExpectNearEachScaled(dx, g.dx, 1e-12, "dx");
  // Evaluation (no masks) afterwards: the unmasked reference.
  (*layer)->SetDirectionMasks(nullptr);
  (*layer)->Forward(ctx, p.data(), x.data(), kBatch, y.data());
  const std::vector<double> plain = RefForward(spec, in, w, x, kBatch);
  testing_util::ExpectNearEach(y, plain, 1e-12, "eval y");

  // fp32 with the same masks.
  const auto to_f = [](const std::vector<double>& v) {
    return std::vector<float>(v.begin(), v.end());
  };
  std::array<std::vector<float>, 2> shared, input, recurrent;
  std::array<GateMasks<float>, 2> gates;
  std::array<DirectionMasks<float>, 2> masks32;
  for (int k = 0; k < 2; ++k) {
    shared[k] = to_f(m->shared[k]);
    input[k] = to_f(m->input[k]);
    recurrent[k] = to_f(m->recurrent[k]);
    gates[k].input = input[k].empty() ? nullptr : input[k].data();
    gates[k].recurrent = recurrent[k].empty() ? nullptr : recurrent[k].data();
    masks32[k].input = shared[k].empty() ? nullptr : shared[k].data();
    masks32[k].gates = m->engine[k].gates != nullptr ? &gates[k] : nullptr;
  }
  Profile p32;
  p32.precision = Precision::kFp32;
  const Context ctx32(p32);
  absl::StatusOr<std::unique_ptr<Layer<float>>> layer32 =
      MakeLayer<float>(spec, in, "layer");
  ASSERT_TRUE(layer32.ok());
  const std::vector<float> pf = to_f(p), xf = to_f(x), dyf = to_f(dy);
  std::vector<float> yf(y.size()), dxf(x.size()), dpf(p.size());
  (*layer32)->SetDirectionMasks(masks32.data());
  (*layer32)->Forward(ctx32, pf.data(), xf.data(), kBatch, yf.data());
  (*layer32)->Backward(ctx32, pf.data(), dyf.data(), dxf.data(), dpf.data());
  testing_util::ExpectNearEach(yf, y_ref, 1e-5, "f32 y");
  testing_util::ExpectNearEachScaled(dpf, dp_ref, 1e-4, "f32 dparams");
  testing_util::ExpectNearEachScaled(dxf, g.dx, 1e-4, "f32 dx");
}

INSTANTIATE_TEST_SUITE_P(AllKinds, BidirectionalDropoutLayerTest,
                         ::testing::ValuesIn(MaskCases()),
                         [](const auto& info) { return info.param.name; });

// Each copy's masks come from its own stream: in seed mode KERAS its own
// SeedGenerator word (the forward copy's, then the backward copy's draw),
// in STREAMS [seed, streams::Dropout(layer, c)] for the forward copy and
// [seed, streams::BackwardDropout(layer, c)] for the backward one.
TEST(BidirectionalDropoutMaskTest, EachCopyDrawsFromItsOwnStream) {
  JobSpec spec;
  spec.seed = 42;
  spec.seed_mode = SeedMode::kKeras;
  spec.model.timesteps = 5;
  spec.model.features = 3;
  spec.model.layers = {
      Bi(LayerKind::kLstm, 4, MergeMode::kConcat, true, 0.25, 0.1),
      Bi(LayerKind::kGru, 3, MergeMode::kSum, true, 0.2, 0), Dense(2)};
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  const std::vector<LayerSeeds> seeds = ModelInitSeeds(spec);
  // The SeedGenerator words the golden generator read from Keras
  // (manifest.json, lstm_dropouts_concat_gru_dropout_sum_adam_s42).
  ASSERT_TRUE(seeds[0].dropout && seeds[0].backward_dropout);
  EXPECT_EQ(*seeds[0].dropout, 262950629u);
  EXPECT_EQ(*seeds[0].backward_dropout, 790779947u);
  EXPECT_EQ(*seeds[1].dropout, 93349857u);
  EXPECT_EQ(*seeds[1].backward_dropout, 34126397u);
  EXPECT_FALSE(seeds[2].backward_dropout.has_value());

  const int batch = 2;
  for (SeedMode mode : {SeedMode::kKeras, SeedMode::kStreams}) {
    spec.seed_mode = mode;
    const std::vector<LayerSeeds> s = ModelInitSeeds(spec);
    DropoutMasks<double> masks(spec, s, batch);
    ASSERT_TRUE(masks.any());
    masks.Draw(3, batch);
    // The layers' own slots stay empty: the copies hold the masks.
    EXPECT_EQ(masks.mask(0), nullptr);
    EXPECT_EQ(masks.gate_masks(0), nullptr);
    EXPECT_EQ(masks.mask(1), nullptr);
    EXPECT_EQ(masks.direction_masks(2), nullptr);
    const DirectionMasks<double>* lstm = masks.direction_masks(0);
    const DirectionMasks<double>* gru = masks.direction_masks(1);
    ASSERT_NE(lstm, nullptr);
    ASSERT_NE(gru, nullptr);
    // LSTM: 4 input + 4 recurrent masks per step, per-gate; the backward
    // copy's recurrent mask of gate c (the 7th draw) at step 3.
    ASSERT_NE(lstm[1].gates, nullptr);
    EXPECT_EQ(lstm[1].input, nullptr);
    const SeedPair want_seed =
        mode == SeedMode::kKeras
            ? SeedPair{790779947, 3 * 8 + 6}
            : SeedPair{42, streams::BackwardDropout(0, 3 * 8 + 6)};
    EXPECT_EQ(DropoutSeed(spec, s[0], 0, 3 * 8 + 6, /*backward=*/true),
              want_seed);
    std::vector<float> scratch(batch * 4);
    std::vector<double> want(batch * 4);
    DrawDropoutMask<double>(want_seed, 0.1, batch * 4, scratch.data(),
                            want.data());
    EXPECT_EQ(0, std::memcmp(lstm[1].gates->recurrent + 2 * batch * 4,
                             want.data(), want.size() * sizeof(double)));
    // GRU (implementation 2, dropout only): one shared input mask per copy,
    // (batch, 8) for the concatenated input; the two copies differ.
    ASSERT_NE(gru[0].input, nullptr);
    ASSERT_NE(gru[1].input, nullptr);
    EXPECT_EQ(gru[0].gates, nullptr);
    const SeedPair fwd_seed = DropoutSeed(spec, s[1], 1, 3);
    const SeedPair want_fwd = mode == SeedMode::kKeras
                                  ? SeedPair{93349857, 3}
                                  : SeedPair{42, streams::Dropout(1, 3)};
    EXPECT_EQ(fwd_seed, want_fwd);
    std::vector<float> u(batch * 8);
    std::vector<double> want_gru(batch * 8);
    DrawDropoutMask<double>(fwd_seed, 0.2, batch * 8, u.data(),
                            want_gru.data());
    EXPECT_EQ(0, std::memcmp(gru[0].input, want_gru.data(),
                             want_gru.size() * sizeof(double)));
    EXPECT_NE(0, std::memcmp(gru[0].input, gru[1].input,
                             want_gru.size() * sizeof(double)));
  }
  // The backward streams meet no forward one.
  EXPECT_NE(streams::BackwardDropout(0, 5), streams::Dropout(0, 5));
  EXPECT_NE(streams::BackwardDropout(1, 0), streams::Dropout(1, 0));
}

// Mirrors the cases with dropout in make_bidirectional_golden.py.
std::vector<KerasCase> KerasCases() {
  std::vector<KerasCase> c;
  JobSpec base = golden::KerasGoldenBaseSpec(5, 3);
  {
    JobSpec s = base;
    s.seed = 42;
    s.model.layers = {
        Bi(LayerKind::kLstm, 4, MergeMode::kConcat, true, 0.25, 0.1),
        Bi(LayerKind::kGru, 3, MergeMode::kSum, true, 0.2, 0), Dense(2)};
    c.push_back({"lstm_dropouts_concat_gru_dropout_sum_adam_s42", s});
  }
  {
    JobSpec s = base;
    s.seed = 7;
    LayerSpec gru = Bi(LayerKind::kGru, 3, MergeMode::kMul, true, 0, 0.3);
    gru.reset_after = false;
    s.model.layers = {
        Bi(LayerKind::kSimpleRnn, 3, MergeMode::kAve, true, 0.3, 0), gru,
        Bi(LayerKind::kLstm, 2, MergeMode::kConcat, false, 0.2, 0), Dense(2)};
    s.optimizer.kind = OptimizerKind::kSgd;
    s.optimizer.learning_rate = 0x1p-3;
    c.push_back(
        {"simple_rnn_dropout_ave_gru_recurrent_mul_lstm_dropout_sgd_s7", s});
  }
  return c;
}

using KerasBidirectionalDropoutGoldenTest = golden::KerasTrainingGoldenTest;

// 6 steps of training with Keras' masks (seed_mode KERAS): fp64 within
// 1e-10 of Keras float64 (float32 uniforms on both sides), fp32 within the
// float32 tolerance; the outputs before training (no dropout) too.
TEST_P(KerasBidirectionalDropoutGoldenTest, TrainingMatchesKeras) {
  ExpectTrainingMatchesKeras(kDir, /*check_initial_outputs=*/true);
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasBidirectionalDropoutGoldenTest,
                         golden::KerasTrainingParams(KerasCases()),
                         golden::KerasCasePrecisionName());

class KerasBidirectionalDropoutModelTest
    : public ::testing::TestWithParam<KerasCase> {};

// Initial weights of seed mode KERAS with dropout in the copies: the
// dropout rate draws nothing extra (every RNN cell makes its SeedGenerator
// anyway), so the weights are Keras' (orthogonal ones to float32 rounding).
TEST_P(KerasBidirectionalDropoutModelTest, KerasSeedModeGivesKerasWeights) {
  const KerasCase& tc = GetParam();
  RunResult run;
  int exact = 0;
  golden::ExpectKerasSeedModeWeights(kDir + tc.name + "/f32/", tc.spec,
                                     /*bit_exact_except_recurrent=*/false,
                                     /*same_shapes=*/false, &run, &exact);
}

// The first training step's gradients with the masks of training step 0,
// from the engine's model and from the float64 reference, against Keras
// float64's GradientTape.
TEST_P(KerasBidirectionalDropoutModelTest, FirstStepGradientsMatchKeras) {
  const KerasCase& tc = GetParam();
  golden::FirstStepGolden s;
  ASSERT_NO_FATAL_FAILURE(
      golden::LoadFirstStep(tc.name, kDir + tc.name + "/f64/", tc.spec, &s));
  DropoutMasks<double> masks(tc.spec, ModelInitSeeds(tc.spec), s.batch);
  masks.Draw(0, s.batch);
  const double* pred = s.model->Forward(*s.ctx, s.xb.data(), s.batch, &masks);
  const std::vector<double> dy =
      golden::MseGradient(s, pred, golden::FirstBatchOutputs(s));
  s.model->Backward(*s.ctx, dy.data());
  // The same masks for the reference: a copy's shared mask once per gate.
  const std::vector<RefGateMasks> gates =
      golden::RefDirectionGateMasks(tc.spec, masks, s.batch);
  golden::ExpectFirstStepGradientsMatchKeras(
      s, RefModelBackward(tc.spec.model.layers, s.input_shape, s.ref_weights,
                          s.xb, s.batch, dy, nullptr, &gates));
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasBidirectionalDropoutModelTest,
                         ::testing::ValuesIn(KerasCases()),
                         golden::KerasCaseName());

TEST(BidirectionalDropoutSpecTest, DropoutInsideIsValidAndPartOfTheDigest) {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[0].bidirectional = true;
  const std::string plain = SpecDigest(spec);
  spec.model.layers[0].dropout = 0.2;
  spec.model.layers[0].recurrent_dropout = 0.1;
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  EXPECT_NE(SpecDigest(spec), plain);
  spec.model.layers[0].dropout = 1.0;
  EXPECT_EQ(ValidateJobSpec(spec).message(),
            "model.layers[0].dropout must be in [0, 1), got 1");
}

// Device profiles do not run Bidirectional layers, with or without
// dropout: refused naming the layer, while the CPU runs the job.
TEST(BidirectionalDropoutSpecTest, DeviceProfilesRefuseIt) {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[0].units = 8;
  spec.model.layers[1].units = 4;
  spec.model.layers[1].bidirectional = true;
  spec.model.layers[1].dropout = 0.25;
  spec.model.layers[1].recurrent_dropout = 0.1;
  spec.data.samples = 16;
  spec.data.eval_samples = 4;
  spec.training.epochs = 1;
  absl::StatusOr<RunResult> r = RunJob(spec, *Profile::Parse("cuda-det-emu"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model.layers[1].bidirectional"));
  EXPECT_THAT(r.status().message(), HasSubstr("does not support"));
  EXPECT_TRUE(RunJob(spec, *Profile::Parse("fp32")).ok());
}

// Training with dropout inside a Bidirectional layer: bit-identical on a
// rerun, different from the same job without dropout, and the two copies'
// masks are both in play (STREAMS: another seed changes the result).
TEST(BidirectionalDropoutTrainingTest, RunsRepeatBitForBitAndMasksMatter) {
  JobSpec spec;
  spec.seed = 5;
  spec.model.timesteps = 6;
  spec.model.features = 2;
  spec.model.layers = {
      Bi(LayerKind::kLstm, 4, MergeMode::kConcat, true, 0.3, 0.2), Dense(1)};
  spec.data.samples = 32;
  spec.data.eval_samples = 8;
  spec.training.epochs = 1;
  spec.training.batch_size = 8;
  const Profile fp32 = *Profile::Parse("fp32");
  absl::StatusOr<RunResult> a = RunJob(spec, fp32);
  absl::StatusOr<RunResult> b = RunJob(spec, fp32);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  ASSERT_EQ(a->outputs.size(), b->outputs.size());
  EXPECT_EQ(0, std::memcmp(a->outputs.raw(), b->outputs.raw(),
                           a->outputs.size() * sizeof(float)));
  JobSpec plain = spec;
  plain.model.layers[0].dropout = 0;
  plain.model.layers[0].recurrent_dropout = 0;
  plain.model.layers[0].implementation = 1;
  absl::StatusOr<RunResult> c = RunJob(plain, fp32);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(0, std::memcmp(a->outputs.raw(), c->outputs.raw(),
                           a->outputs.size() * sizeof(float)));
}

// Memory admission counts both copies' masks and masked inputs.
TEST(BidirectionalDropoutSpecTest, MemoryEstimateCountsTheMasks) {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[0].bidirectional = true;
  const Profile fp32 = *Profile::Parse("fp32");
  const auto bytes = [&](const JobSpec& s) {
    return EstimateJobMemory(s, fp32, 1024, 128).activations;
  };
  const int64_t plain = bytes(spec);
  spec.model.layers[0].dropout = 0.2;
  const int64_t shared = bytes(spec);
  spec.model.layers[0].recurrent_dropout = 0.1;
  const int64_t gated = bytes(spec);
  // Two copies, each: the masked input (batch·T·F values) and its mask.
  EXPECT_GE(shared - plain, 2 * 4 * 32 * (10 + 2));
  EXPECT_GT(gated, shared);
}

}  // namespace
}  // namespace driftscope
