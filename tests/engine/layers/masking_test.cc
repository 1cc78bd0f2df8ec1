// keras.layers.Masking and the timestep mask: the reference's gradients
// against finite differences with a mask, the engine's layers (plain,
// per-gate-mask, Bidirectional; both directions) against the reference, the
// masked loss against its definition, what a skipped step does to the state,
// the spec checks, and real Keras 3 goldens
// (tests/golden/masking/make_masking_golden.py): outputs, first-step
// gradients and 6-step training runs on padded sequences.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "engine/data/synthetic.h"
#include "engine/io/npy.h"
#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"
#include "engine/layers/timestep_mask.h"
#include "engine/loss/loss.h"
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
using testing_util::Dense;
using testing_util::Flatten;
using testing_util::Lcg;
using testing_util::RandomWeights;
using testing_util::Rnn;

const std::string kDir =
    std::string(DRIFTSCOPE_SOURCE_DIR) + "/tests/golden/masking/";

constexpr int kBatch = 4, kSteps = 5, kDim = 2;

// Sample 0 uses every step, 1 is right-padded (3 steps), 2 is fully padded,
// 3 is left-padded with a padded step in the middle.
const std::vector<uint8_t>& Keep() {
  static const std::vector<uint8_t> keep = {1, 1, 1, 1, 1,  //
                                            1, 1, 1, 0, 0,  //
                                            0, 0, 0, 0, 0,  //
                                            0, 1, 1, 0, 1};
  return keep;
}

struct MaskCase {
  std::string name;
  LayerSpec spec;
  bool gate_masks = false;  // per-gate dropout masks (recurrent_dropout)
};

void PrintTo(const MaskCase& c, std::ostream* os) { *os << c.name; }

std::vector<MaskCase> MaskCases() {
  std::vector<MaskCase> c;
  c.push_back({"lstm_seq", Rnn(LayerKind::kLstm, 3, true)});
  c.push_back({"lstm_last", Rnn(LayerKind::kLstm, 3, false)});
  c.push_back({"lstm_backwards_seq", Rnn(LayerKind::kLstm, 2, true)});
  c.back().spec.go_backwards = true;
  c.push_back({"lstm_impl1_backwards_last", Rnn(LayerKind::kLstm, 2, false)});
  c.back().spec.go_backwards = true;
  c.back().spec.implementation = 1;
  c.push_back({"gru_seq", Rnn(LayerKind::kGru, 3, true)});
  c.push_back({"gru_before_backwards_last", Rnn(LayerKind::kGru, 3, false)});
  c.back().spec.reset_after = false;
  c.back().spec.go_backwards = true;
  c.push_back({"simple_rnn_seq", Rnn(LayerKind::kSimpleRnn, 3, true)});
  c.push_back(
      {"simple_rnn_backwards_last", Rnn(LayerKind::kSimpleRnn, 2, false)});
  c.back().spec.go_backwards = true;
  // Keras' Bidirectional sets zero_output_for_mask = return_sequences.
  c.push_back(
      {"bidirectional_lstm_concat_seq", Rnn(LayerKind::kLstm, 2, true)});
  c.back().spec.bidirectional = true;
  c.push_back({"bidirectional_gru_sum_last", Rnn(LayerKind::kGru, 2, false)});
  c.back().spec.bidirectional = true;
  c.back().spec.merge_mode = MergeMode::kSum;
  c.push_back({"bidirectional_simple_rnn_mul_seq",
               Rnn(LayerKind::kSimpleRnn, 2, true)});
  c.back().spec.bidirectional = true;
  c.back().spec.merge_mode = MergeMode::kMul;
  // The per-gate-mask layer (engine/layers/gate_masked_rnn.cc).
  for (LayerKind kind :
       {LayerKind::kLstm, LayerKind::kGru, LayerKind::kSimpleRnn}) {
    for (bool back : {false, true}) {
      LayerSpec s = Rnn(kind, 3, !back);
      s.dropout = 0.25;
      s.recurrent_dropout = 0.25;
      s.go_backwards = back;
      c.push_back({std::string("gate_masked_") + LayerJsonKey(kind) +
                       (back ? "_backwards_last" : "_seq"),
                   s, true});
    }
  }
  LayerSpec gru_before = Rnn(LayerKind::kGru, 2, true);
  gru_before.reset_after = false;
  gru_before.recurrent_dropout = 0.25;
  c.push_back({"gate_masked_gru_before_seq", gru_before, true});
  return c;
}

// Per-gate masks with values 0 or 1/(1 - 0.25), the same in both layouts.
struct Masks {
  RefGateMasks ref;
  std::vector<double> input, recurrent;
};
Masks MakeGateMasks(const LayerSpec& spec, Lcg* rng) {
  Masks m;
  const int in_n = InputMasksPerStep(spec), rec_n = RecurrentMasksPerStep(spec);
  auto draw = [&](int count, int width, std::vector<double>* flat,
                  std::vector<std::vector<double>>* per_gate) {
    for (int g = 0; g < count; ++g) {
      std::vector<double> v(static_cast<size_t>(kBatch) * width);
      for (double& e : v) e = rng->Next() < -0.5 ? 0.0 : 1.0 / 0.75;
      flat->insert(flat->end(), v.begin(), v.end());
      per_gate->push_back(v);
    }
  };
  draw(in_n, kDim, &m.input, &m.ref.input);
  draw(rec_n, spec.units, &m.recurrent, &m.ref.recurrent);
  return m;
}

class MaskedLayerTest : public ::testing::TestWithParam<MaskCase> {};

TEST_P(MaskedLayerTest, ReferenceGradientsMatchFiniteDifferences) {
  const MaskCase& tc = GetParam();
  const ActivationShape in{true, kSteps, kDim};
  Lcg rng(11);
  const RefWeights w = RandomWeights(tc.spec, in, &rng, 0.6);
  const std::vector<double> x = rng.Vec(kBatch * kSteps * kDim, 1.0);
  const Masks masks = MakeGateMasks(tc.spec, &rng);
  const RefGateMasks* gm = tc.gate_masks ? &masks.ref : nullptr;
  const std::vector<double> y0 =
      RefForward(tc.spec, in, w, x, kBatch, nullptr, gm, &Keep());
  const std::vector<double> dy = rng.Vec(static_cast<int64_t>(y0.size()), 1.0);
  const RefLayerGrads g =
      RefBackward(tc.spec, in, w, x, kBatch, dy, gm, &Keep());
  auto loss = [&](const RefWeights& ww, const std::vector<double>& xx) {
    const std::vector<double> y =
        RefForward(tc.spec, in, ww, xx, kBatch, nullptr, gm, &Keep());
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += dy[i] * y[i];
    return l;
  };
  testing_util::ExpectGradientsMatchFiniteDifferences(w, x, g, loss);
  // A skipped step's input reaches nothing.
  for (int b = 0; b < kBatch; ++b) {
    for (int t = 0; t < kSteps; ++t) {
      if (Keep()[b * kSteps + t] != 0) continue;
      for (int d = 0; d < kDim; ++d) {
        EXPECT_EQ(g.dx[(b * kSteps + t) * kDim + d], 0.0) << b << "," << t;
      }
    }
  }
}

template <typename T>
void RunEngineLayer(const MaskCase& tc, Precision precision,
                    const std::vector<double>& p, const std::vector<double>& x,
                    const std::vector<double>& dy, const Masks& masks,
                    std::vector<double>* y, std::vector<double>* dx,
                    std::vector<double>* dp) {
  const ActivationShape in{true, kSteps, kDim};
  Profile profile;
  profile.precision = precision;
  const Context ctx(profile);
  absl::StatusOr<std::unique_ptr<Layer<T>>> layer =
      MakeLayer<T>(tc.spec, in, "layer");
  ASSERT_TRUE(layer.ok()) << layer.status();
  ASSERT_EQ((*layer)->num_params(), static_cast<int64_t>(p.size()));
  const std::vector<T> pt(p.begin(), p.end()), xt(x.begin(), x.end()),
      dyt(dy.begin(), dy.end()), mi(masks.input.begin(), masks.input.end()),
      mr(masks.recurrent.begin(), masks.recurrent.end());
  GateMasks<T> gm;
  gm.input = mi.empty() ? nullptr : mi.data();
  gm.recurrent = mr.empty() ? nullptr : mr.data();
  std::vector<T> yt(dy.size()), dxt(x.size()), dpt(p.size());
  (*layer)->SetGateMasks(tc.gate_masks ? &gm : nullptr);
  (*layer)->SetTimestepMask(Keep().data());
  (*layer)->Forward(ctx, pt.data(), xt.data(), kBatch, yt.data());
  (*layer)->Backward(ctx, pt.data(), dyt.data(), dxt.data(), dpt.data());
  y->assign(yt.begin(), yt.end());
  dx->assign(dxt.begin(), dxt.end());
  dp->assign(dpt.begin(), dpt.end());
}

TEST_P(MaskedLayerTest, EngineMatchesTheReference) {
  const MaskCase& tc = GetParam();
  const ActivationShape in{true, kSteps, kDim};
  Lcg rng(8);
  const RefWeights w = RandomWeights(tc.spec, in, &rng, 0.6);
  const std::vector<double> x = rng.Vec(kBatch * kSteps * kDim, 1.0);
  const Masks masks = MakeGateMasks(tc.spec, &rng);
  const RefGateMasks* gm = tc.gate_masks ? &masks.ref : nullptr;
  const std::vector<double> y_ref =
      RefForward(tc.spec, in, w, x, kBatch, nullptr, gm, &Keep());
  const std::vector<double> dy =
      rng.Vec(static_cast<int64_t>(y_ref.size()), 1.0);
  const RefLayerGrads g =
      RefBackward(tc.spec, in, w, x, kBatch, dy, gm, &Keep());
  const std::vector<double> p = Flatten(w), dp_ref = Flatten(g.dweights);
  std::vector<double> y, dx, dp;
  RunEngineLayer<double>(tc, Precision::kFp64, p, x, dy, masks, &y, &dx, &dp);
  ASSERT_EQ(y.size(), y_ref.size());
  testing_util::ExpectNearEach(y, y_ref, 1e-12, "y");
  testing_util::ExpectNearEachScaled(dp, dp_ref, 1e-12, "dparams");
  testing_util::ExpectNearEachScaled(dx, g.dx, 1e-12, "dx");
  RunEngineLayer<float>(tc, Precision::kFp32, p, x, dy, masks, &y, &dx, &dp);
  testing_util::ExpectNearEach(y, y_ref, 1e-5, "f32 y");
  testing_util::ExpectNearEachScaled(dp, dp_ref, 1e-4, "f32 dparams");
}

INSTANTIATE_TEST_SUITE_P(AllLayers, MaskedLayerTest,
                         ::testing::ValuesIn(MaskCases()),
                         [](const auto& info) { return info.param.name; });

// Independent of the reference: a right-padded sample ends in the state of
// its unpadded prefix, its padded steps repeat the last output, and a fully
// padded sample outputs zeros (the initial state).
TEST(MaskedLayerStateTest, PaddedStepsKeepTheStateOfTheUnpaddedPrefix) {
  for (LayerKind kind :
       {LayerKind::kLstm, LayerKind::kGru, LayerKind::kSimpleRnn}) {
    const LayerSpec spec = Rnn(kind, 3, true);
    Lcg rng(3);
    const ActivationShape full{true, kSteps, kDim};
    const std::vector<double> p = Flatten(RandomWeights(spec, full, &rng, 0.6));
    const std::vector<double> x = rng.Vec(kBatch * kSteps * kDim, 1.0);
    Profile profile;
    profile.precision = Precision::kFp64;
    const Context ctx(profile);
    auto layer = MakeLayer<double>(spec, full, "layer");
    ASSERT_TRUE(layer.ok());
    std::vector<double> y(kBatch * kSteps * 3);
    (*layer)->SetTimestepMask(Keep().data());
    (*layer)->Forward(ctx, p.data(), x.data(), kBatch, y.data());
    // Sample 1 keeps 3 steps: the same layer over those 3 steps alone.
    const ActivationShape prefix{true, 3, kDim};
    auto short_layer = MakeLayer<double>(spec, prefix, "layer");
    ASSERT_TRUE(short_layer.ok());
    const std::vector<double> x1(x.begin() + kSteps * kDim,
                                 x.begin() + kSteps * kDim + 3 * kDim);
    std::vector<double> y1(3 * 3);
    (*short_layer)->Forward(ctx, p.data(), x1.data(), 1, y1.data());
    for (int t = 0; t < kSteps; ++t) {
      for (int u = 0; u < 3; ++u) {
        const double got = y[(kSteps + t) * 3 + u];
        EXPECT_NEAR(got, y1[std::min(t, 2) * 3 + u], 1e-14)
            << LayerKindName(kind) << " t=" << t;
        if (t > 2) {
          EXPECT_EQ(got, y[(kSteps + 2) * 3 + u]);
        }
      }
    }
    for (int i = 0; i < kSteps * 3; ++i)
      EXPECT_EQ(y[2 * kSteps * 3 + i], 0.0) << LayerKindName(kind);
  }
}

// Keras' apply_mask with sum_over_batch_size: the mean over the kept rows;
// 0 (and a zero gradient) when every row is skipped.
TEST(MaskedLossTest, AveragesOverTheKeptStepsAndIsZeroWhenNoneIsKept) {
  const int rows = 6, dim = 2;
  Lcg rng(2);
  const std::vector<double> pred = rng.Vec(rows * dim, 1.0);
  const std::vector<double> target = rng.Vec(rows * dim, 1.0);
  const std::vector<uint8_t> keep = {1, 0, 1, 1, 0, 0};
  for (LossKind kind : {LossKind::kMse, LossKind::kMae}) {
    double want = 0;
    for (int r = 0; r < rows; ++r) {
      if (!keep[r]) continue;
      double row = 0;
      for (int j = 0; j < dim; ++j) {
        const double e = pred[r * dim + j] - target[r * dim + j];
        row += kind == LossKind::kMse ? e * e : std::fabs(e);
      }
      want += row / dim;
    }
    want /= 3;
    EXPECT_NEAR(LossForward<double>(kind, pred.data(), target.data(), rows, dim,
                                    1, keep.data()),
                want, 1e-15);
    std::vector<double> g(rows * dim);
    LossBackward<double>(kind, pred.data(), target.data(), rows, dim, g.data(),
                         1, keep.data());
    const double h = 1e-6;
    for (int i = 0; i < rows * dim; ++i) {
      std::vector<double> pp = pred, pm = pred;
      pp[i] += h;
      pm[i] -= h;
      const double fd = (LossForward<double>(kind, pp.data(), target.data(),
                                             rows, dim, 1, keep.data()) -
                         LossForward<double>(kind, pm.data(), target.data(),
                                             rows, dim, 1, keep.data())) /
                        (2 * h);
      EXPECT_NEAR(g[i], fd, 1e-8) << i;
      if (!keep[i / dim]) {
        EXPECT_EQ(g[i], 0.0) << i;
      }
    }
    const std::vector<uint8_t> none(rows, 0);
    EXPECT_EQ(LossForward<double>(kind, pred.data(), target.data(), rows, dim,
                                  1, none.data()),
              0.0);
    LossBackward<double>(kind, pred.data(), target.data(), rows, dim, g.data(),
                         1, none.data());
    for (double v : g) EXPECT_EQ(v, 0.0);
  }
}

// The model: Masking's zeros, the mask through a stack (Dense keeps it, an
// RNN without return_sequences ends it), against the reference model.
TEST(MaskedModelTest, StackMatchesTheReferenceModel) {
  ModelSpec m;
  m.timesteps = kSteps;
  m.features = kDim;
  m.mask_value = 0.5;
  LayerSpec bi = Rnn(LayerKind::kGru, 2, true);
  bi.bidirectional = true;
  m.layers = {Rnn(LayerKind::kLstm, 3, true), Dense(2), bi,
              Rnn(LayerKind::kSimpleRnn, 2, false), Dense(1)};
  const ActivationShape in{true, kSteps, kDim};
  Lcg rng(21);
  std::vector<double> x = rng.Vec(kBatch * kSteps * kDim, 1.0);
  for (size_t r = 0; r < Keep().size(); ++r)
    if (!Keep()[r])
      for (int d = 0; d < kDim; ++d) x[r * kDim + d] = 0.5;
  // A kept step may hold mask_value in some features.
  x[0] = 0.5;
  const std::vector<uint8_t> keep =
      RefMaskingKeep(x, kBatch, kSteps, kDim, 0.5);
  EXPECT_EQ(keep, Keep());
  absl::StatusOr<std::unique_ptr<Model<double>>> model =
      Model<double>::Create(m, kBatch);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<RefWeights> w =
      testing_util::RandomModelWeights(m.layers, in, &rng, 0.6);
  const std::vector<double> p = [&] {
    std::vector<double> all;
    for (const RefWeights& lw : w) {
      const std::vector<double> f = Flatten(lw);
      all.insert(all.end(), f.begin(), f.end());
    }
    return all;
  }();
  ASSERT_EQ((*model)->num_params(), static_cast<int64_t>(p.size()));
  std::copy(p.begin(), p.end(), (*model)->params());
  Profile profile;
  profile.precision = Precision::kFp64;
  const Context ctx(profile);
  const double* y = (*model)->Forward(ctx, x.data(), kBatch);
  const std::vector<double> y_ref =
      RefModelForward(m.layers, in, w, x, kBatch, nullptr, nullptr, &keep);
  ASSERT_EQ(y_ref.size(), static_cast<size_t>(kBatch));
  for (int i = 0; i < kBatch; ++i) EXPECT_NEAR(y[i], y_ref[i], 1e-12) << i;
  // The output is a vector: the mask ended at the SimpleRNN.
  EXPECT_EQ((*model)->output_mask(), nullptr);
  const std::vector<double> dy = rng.Vec(kBatch, 1.0);
  (*model)->Backward(ctx, dy.data());
  const std::vector<RefLayerGrads> g =
      RefModelBackward(m.layers, in, w, x, kBatch, dy, nullptr, nullptr, &keep);
  std::vector<double> dp_ref;
  for (const RefLayerGrads& lg : g) {
    const std::vector<double> f = Flatten(lg.dweights);
    dp_ref.insert(dp_ref.end(), f.begin(), f.end());
  }
  for (size_t i = 0; i < dp_ref.size(); ++i)
    EXPECT_NEAR((*model)->grads()[i], dp_ref[i],
                1e-12 * std::max(1.0, std::fabs(dp_ref[i])))
        << i;
  // Without the SimpleRNN the output is a sequence and carries the mask.
  ModelSpec seq = m;
  seq.layers = {Rnn(LayerKind::kLstm, 3, true), Dense(2)};
  absl::StatusOr<std::unique_ptr<Model<double>>> seq_model =
      Model<double>::Create(seq, kBatch);
  ASSERT_TRUE(seq_model.ok());
  (*seq_model)->Forward(ctx, x.data(), kBatch);
  ASSERT_NE((*seq_model)->output_mask(), nullptr);
  EXPECT_EQ(std::vector<uint8_t>((*seq_model)->output_mask(),
                                 (*seq_model)->output_mask() + keep.size()),
            keep);
}

TEST(MaskingSpecTest, CheckedAndInTheDigestOnlyWhenSet) {
  JobSpec spec = DefaultJobSpec();
  const std::string plain = SpecDigest(spec);
  spec.model.mask_value = 0.0;
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  EXPECT_NE(SpecDigest(spec), plain);
  EXPECT_THAT(CanonicalText(spec), HasSubstr("model.mask_value"));
  EXPECT_THAT(CanonicalText(DefaultJobSpec()),
              ::testing::Not(HasSubstr("mask_value")));
  spec.model.mask_value = std::nan("");
  EXPECT_THAT(std::string(ValidateJobSpec(spec).message()),
              HasSubstr("model.layers[0].masking.mask_value must be finite"));
}

// Device profiles refuse a masked model, naming the field, before any work.
TEST(MaskingSpecTest, DeviceProfilesRefuseMasking) {
  JobSpec spec = DefaultJobSpec();
  spec.model.mask_value = 0.0;
  spec.data.samples = 8;
  spec.data.eval_samples = 4;
  spec.training.epochs = 1;
  absl::StatusOr<Profile> emu = Profile::Parse("cuda-det-emu");
  ASSERT_TRUE(emu.ok()) << emu.status();
  absl::StatusOr<RunResult> r = RunJob(spec, *emu);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("model.layers[0].masking"));
}

// Synthetic padding: tails of seeded, different lengths hold mask_value
// (so the mask sees them), up to whole samples; a padded job trains in fp32
// and fp64 to nearly the same losses, and its digest names the padding.
TEST(MaskingDataTest, PaddedSyntheticDataHaveSeededTailsOfMaskValue) {
  JobSpec spec = DefaultJobSpec();
  spec.model.timesteps = 6;
  spec.model.features = 2;
  spec.model.mask_value = -0.5;
  spec.data.samples = 64;
  spec.data.eval_samples = 16;
  spec.data.pad_tail_max = 6;
  spec.training.epochs = 1;
  spec.training.batch_size = 16;
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  absl::StatusOr<Dataset> d = GenerateDataset(spec, DataSplit::kTrain);
  ASSERT_TRUE(d.ok()) << d.status();
  std::vector<int> count(7, 0);
  for (int n = 0; n < 64; ++n) {
    int padded = 0;
    for (int t = 0; t < 6; ++t) {
      const bool pad = d->x.at((n * 6 + t) * 2) == -0.5f &&
                       d->x.at((n * 6 + t) * 2 + 1) == -0.5f;
      if (pad) ++padded;
      // Padding is a tail: once padded, padded to the end.
      if (t > 0 && !pad) {
        EXPECT_FALSE(d->x.at((n * 6 + t - 1) * 2) == -0.5f &&
                     d->x.at((n * 6 + t - 1) * 2 + 1) == -0.5f)
            << n;
      }
    }
    ++count[padded];
  }
  int lengths = 0;
  for (int c : count) lengths += c > 0;
  EXPECT_GE(lengths, 5);   // 64 draws from 7 lengths
  EXPECT_GT(count[6], 0);  // some sample is all padding
  absl::StatusOr<Dataset> again = GenerateDataset(spec, DataSplit::kTrain);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(0, std::memcmp(again->x.raw(), d->x.raw(), 64 * 12 * 4));
  JobSpec unpadded = spec;
  unpadded.data.pad_tail_max = 0;
  EXPECT_NE(SpecDigest(spec), SpecDigest(unpadded));

  absl::StatusOr<RunResult> r64 = RunJob(spec, *Profile::Parse("fp64"));
  absl::StatusOr<RunResult> r32 = RunJob(spec, *Profile::Parse("fp32"));
  ASSERT_TRUE(r64.ok()) << r64.status();
  ASSERT_TRUE(r32.ok()) << r32.status();
  for (int64_t i = 0; i < r64->losses.size(); ++i) {
    EXPECT_TRUE(std::isfinite(r64->losses.at(i)));
    EXPECT_NEAR(r32->losses.at(i), r64->losses.at(i), 1e-5);
  }

  JobSpec no_mask = spec;
  no_mask.model.mask_value.reset();
  EXPECT_THAT(std::string(ValidateJobSpec(no_mask).message()),
              HasSubstr("data.synthetic.pad_tail_max pads with the Masking "
                        "layer's mask_value"));
  JobSpec not_float = spec;
  not_float.model.mask_value = 0.1;
  EXPECT_THAT(std::string(ValidateJobSpec(not_float).message()),
              HasSubstr("mask_value must be a float32 value"));
  JobSpec too_long = spec;
  too_long.data.pad_tail_max = 7;
  EXPECT_THAT(std::string(ValidateJobSpec(too_long).message()),
              HasSubstr("data.synthetic.pad_tail_max"));
}

// ----------------------------------------------------------- Keras goldens

LayerSpec Bi(LayerSpec l, MergeMode mode) {
  l.bidirectional = true;
  l.merge_mode = mode;
  return l;
}

// Mirrors CASES in make_masking_golden.py.
std::vector<KerasCase> KerasCases() {
  std::vector<KerasCase> c;
  JobSpec base = golden::KerasGoldenBaseSpec(6, 3);
  base.model.mask_value = 0.0;
  {
    JobSpec s = base;
    s.seed = 42;
    s.model.layers = {Rnn(LayerKind::kLstm, 4, true), Dense(2)};
    c.push_back({"lstm_seq_dense_adam_s42", s});
  }
  {
    JobSpec s = base;
    s.seed = 7;
    s.model.layers = {Rnn(LayerKind::kGru, 3, false), Dense(2)};
    s.optimizer.kind = OptimizerKind::kSgd;
    s.optimizer.learning_rate = 0x1p-3;
    c.push_back({"gru_last_dense_sgd_s7", s});
  }
  {
    JobSpec s = base;
    s.seed = 3;
    s.model.mask_value = -1.0;
    LayerSpec rnn = Rnn(LayerKind::kSimpleRnn, 3, true);
    rnn.go_backwards = true;
    s.model.layers = {rnn, Dense(2)};
    c.push_back({"simple_rnn_backwards_seq_adam_s3", s});
  }
  {
    JobSpec s = base;
    s.seed = 11;
    LayerSpec gru = Rnn(LayerKind::kGru, 2, false);
    gru.reset_after = false;
    s.model.layers = {Bi(Rnn(LayerKind::kLstm, 3, true), MergeMode::kConcat),
                      Bi(gru, MergeMode::kSum), Dense(2)};
    c.push_back({"bidirectional_lstm_gru_before_adam_s11", s});
  }
  {
    JobSpec s = base;
    s.seed = 5;
    LayerSpec out = Dense(2);
    out.activation = Activation::kTanh;
    s.model.layers = {Rnn(LayerKind::kLstm, 4, true),
                      Rnn(LayerKind::kGru, 3, true), out};
    c.push_back({"stacked_lstm_gru_dense_empty_batch_adam_s5", s});
  }
  return c;
}

using KerasMaskingGoldenTest = golden::KerasTrainingGoldenTest;

TEST_P(KerasMaskingGoldenTest, TrainingMatchesKeras) {
  ExpectTrainingMatchesKeras(kDir, /*check_initial_outputs=*/true);
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasMaskingGoldenTest,
                         golden::KerasTrainingParams(KerasCases()),
                         golden::KerasCasePrecisionName());

class KerasMaskingModelTest : public ::testing::TestWithParam<KerasCase> {};

// The first step's gradients (masked loss included) of the engine's model
// and of the reference, against Keras float64's GradientTape.
TEST_P(KerasMaskingModelTest, FirstStepGradientsMatchKeras) {
  const KerasCase& tc = GetParam();
  golden::FirstStepGolden s;
  ASSERT_NO_FATAL_FAILURE(
      golden::LoadFirstStep(tc.name, kDir + tc.name + "/f64/", tc.spec, &s));
  const double* pred = s.model->Forward(*s.ctx, s.xb.data(), s.batch);
  const bool sequence = ModelOutputIsSequence(tc.spec.model);
  const int units = ModelOutputUnits(tc.spec.model);
  const int64_t rows =
      sequence ? int64_t{s.batch} * tc.spec.model.timesteps : s.batch;
  std::vector<double> dy(static_cast<size_t>(golden::FirstBatchOutputs(s)));
  LossBackward<double>(LossKind::kMse, pred, s.y.data<double>(), rows, units,
                       dy.data(), 1, s.model->output_mask());
  s.model->Backward(*s.ctx, dy.data());
  const std::vector<uint8_t> keep =
      RefMaskingKeep(s.xb, s.batch, tc.spec.model.timesteps,
                     tc.spec.model.features, *tc.spec.model.mask_value);
  golden::ExpectFirstStepGradientsMatchKeras(
      s, RefModelBackward(tc.spec.model.layers, s.input_shape, s.ref_weights,
                          s.xb, s.batch, dy, nullptr, nullptr, &keep));
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasMaskingModelTest,
                         ::testing::ValuesIn(KerasCases()),
                         golden::KerasCaseName());

}  // namespace
}  // namespace driftscope
