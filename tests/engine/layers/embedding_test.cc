// keras.layers.Embedding: the reference's gradients against finite
// differences (with mask_zero's timestep mask too), the engine's layer and
// model against the reference (fp64 and fp32), the spec's checks, the
// TOKENS generator, supplied token ids, the device refusal, and real Keras 3
// goldens (tests/golden/embedding/make_embedding_golden.py): initial weights
// of seed_mode KERAS, outputs, first-step gradients and 6-step training
// runs, mask_zero=True included.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/data/synthetic.h"
#include "engine/io/npy.h"
#include "engine/job/job_memory.h"
#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"
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
    std::string(DRIFTSCOPE_SOURCE_DIR) + "/tests/golden/embedding/";

// Token ids (as values) with repeats, so that a row's gradient sums several
// positions.
std::vector<double> Ids(int n, int vocab, uint64_t seed) {
  Lcg rng(seed);
  std::vector<double> x(static_cast<size_t>(n));
  for (double& v : x) {
    v = std::floor((rng.Next(1.0) + 1.0) / 2.0 * vocab);
    if (v >= vocab) v = vocab - 1;
  }
  return x;
}

constexpr int kBatch = 3, kSteps = 4, kVocab = 5;

TEST(EmbeddingReferenceTest, GradientsOfAStackMatchFiniteDifferences) {
  const std::vector<LayerSpec> layers = {
      EmbeddingLayerSpec(kVocab, 3), Rnn(LayerKind::kLstm, 3, true), Dense(2)};
  const ActivationShape in{true, kSteps, 1};
  Lcg rng(11);
  const std::vector<RefWeights> w =
      testing_util::RandomModelWeights(layers, in, &rng, 0.6);
  const std::vector<double> x = Ids(kBatch * kSteps, kVocab, 3);
  ASSERT_LT(std::set<double>(x.begin(), x.end()).size(), x.size())
      << "the ids must repeat";
  const std::vector<double> y0 = RefModelForward(layers, in, w, x, kBatch);
  const std::vector<double> dy = rng.Vec(static_cast<int64_t>(y0.size()), 1.0);
  const std::vector<RefLayerGrads> g =
      RefModelBackward(layers, in, w, x, kBatch, dy);
  auto loss = [&](const std::vector<RefWeights>& ww) {
    const std::vector<double> y = RefModelForward(layers, in, ww, x, kBatch);
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += dy[i] * y[i];
    return l;
  };
  testing_util::ExpectModelGradientsMatchFiniteDifferences(w, g, loss, "");
  // A row no id selects gets no gradient.
  for (int id = 0; id < kVocab; ++id) {
    if (std::count(x.begin(), x.end(), static_cast<double>(id)) > 0) continue;
    for (int u = 0; u < 3; ++u) EXPECT_EQ(g[0].dweights[0][id * 3 + u], 0.0);
  }
}

// Ids with zeros in them (left- and right-padded, one 0 inside, one sample
// all zeros), kBatch + 1 samples of kSteps.
std::vector<double> PaddedIds() {
  return {3, 1, 4, 0,   //
          0, 0, 2, 2,   //
          0, 0, 0, 0,   //
          1, 0, 3, 1};  //
}

// Embedding(mask_zero) -> LSTM(return_sequences) -> Dense: the mask is
// id != 0, the reference's gradients (mask included) match finite
// differences, and row 0 (selected only at skipped steps) gets no gradient.
TEST(EmbeddingReferenceTest, MaskZeroGradientsMatchFiniteDifferences) {
  LayerSpec e = EmbeddingLayerSpec(kVocab, 3);
  e.mask_zero = true;
  for (bool sequences : {true, false}) {
    const std::vector<LayerSpec> layers = {
        e, Rnn(LayerKind::kLstm, 3, sequences), Dense(2)};
    const int batch = kBatch + 1;
    const ActivationShape in{true, kSteps, 1};
    Lcg rng(21);
    const std::vector<RefWeights> w =
        testing_util::RandomModelWeights(layers, in, &rng, 0.6);
    const std::vector<double> x = PaddedIds();
    const std::vector<uint8_t> keep = RefMaskZeroKeep(x);
    for (size_t r = 0; r < x.size(); ++r) ASSERT_EQ(keep[r], x[r] != 0 ? 1 : 0);
    const std::vector<double> y0 =
        RefModelForward(layers, in, w, x, batch, nullptr, nullptr, &keep);
    // Unlike Masking, the mask does change the result: without it, the
    // padded steps would feed row 0 into the LSTM.
    EXPECT_NE(y0, RefModelForward(layers, in, w, x, batch));
    const std::vector<double> dy =
        rng.Vec(static_cast<int64_t>(y0.size()), 1.0);
    const std::vector<RefLayerGrads> g =
        RefModelBackward(layers, in, w, x, batch, dy, nullptr, nullptr, &keep);
    auto loss = [&](const std::vector<RefWeights>& ww) {
      const std::vector<double> y =
          RefModelForward(layers, in, ww, x, batch, nullptr, nullptr, &keep);
      double l = 0;
      for (size_t i = 0; i < y.size(); ++i) l += dy[i] * y[i];
      return l;
    };
    testing_util::ExpectModelGradientsMatchFiniteDifferences(
        w, g, loss, sequences ? "sequences 1 " : "sequences 0 ");
    for (int u = 0; u < 3; ++u) EXPECT_EQ(g[0].dweights[0][u], 0.0) << u;
  }
}

// The engine's model with mask_zero against the reference model, fp64:
// its mask is id != 0, it reaches the output (for the masked loss), and
// the outputs and every weight's gradient match.
TEST(EmbeddingModelTest, MaskZeroModelMatchesTheReference) {
  ModelSpec m;
  m.timesteps = kSteps;
  m.features = 1;
  m.layers = {EmbeddingLayerSpec(kVocab, 3), Rnn(LayerKind::kGru, 3, true),
              Rnn(LayerKind::kSimpleRnn, 2, true), Dense(2)};
  m.layers[0].mask_zero = true;
  const int batch = kBatch + 1;
  const ActivationShape in{true, kSteps, 1};
  Lcg rng(5);
  const std::vector<RefWeights> w =
      testing_util::RandomModelWeights(m.layers, in, &rng, 0.6);
  const std::vector<double> x = PaddedIds();
  const std::vector<uint8_t> keep = RefMaskZeroKeep(x);
  const std::vector<double> y_ref =
      RefModelForward(m.layers, in, w, x, batch, nullptr, nullptr, &keep);
  const std::vector<double> dy =
      rng.Vec(static_cast<int64_t>(y_ref.size()), 1.0);
  const std::vector<RefLayerGrads> g =
      RefModelBackward(m.layers, in, w, x, batch, dy, nullptr, nullptr, &keep);

  absl::StatusOr<std::unique_ptr<Model<double>>> model =
      Model<double>::Create(m, batch);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<double> dp_ref;
  {
    size_t j = 0;
    for (size_t l = 0; l < w.size(); ++l) {
      for (size_t k = 0; k < w[l].size(); ++k, ++j) {
        const ModelWeight& mw = (*model)->weights()[j];
        ASSERT_EQ(mw.size, static_cast<int64_t>(w[l][k].size())) << mw.name;
        std::copy(w[l][k].begin(), w[l][k].end(),
                  (*model)->params() + mw.offset);
      }
    }
  }
  Profile profile;
  profile.precision = Precision::kFp64;
  const Context ctx(profile);
  const double* y = (*model)->Forward(ctx, x.data(), batch);
  ASSERT_NE((*model)->output_mask(), nullptr);
  EXPECT_EQ(std::vector<uint8_t>((*model)->output_mask(),
                                 (*model)->output_mask() + keep.size()),
            keep);
  for (size_t i = 0; i < y_ref.size(); ++i)
    EXPECT_NEAR(y[i], y_ref[i], 1e-13) << "y[" << i << "]";
  (*model)->Backward(ctx, dy.data());
  size_t j = 0;
  for (size_t l = 0; l < w.size(); ++l) {
    for (size_t k = 0; k < w[l].size(); ++k, ++j) {
      const ModelWeight& mw = (*model)->weights()[j];
      for (int64_t i = 0; i < mw.size; ++i)
        EXPECT_NEAR((*model)->grads()[mw.offset + i], g[l].dweights[k][i],
                    1e-12 * std::max(1.0, std::fabs(g[l].dweights[k][i])))
            << mw.name << "[" << i << "]";
    }
  }
  for (int u = 0; u < 3; ++u) EXPECT_EQ((*model)->grads()[u], 0.0) << u;
}

TEST(EmbeddingLayerTest, EngineMatchesTheReference) {
  const LayerSpec spec = EmbeddingLayerSpec(kVocab, 4);
  const ActivationShape in{true, kSteps, 1};
  Lcg rng(8);
  const RefWeights w = RandomWeights(spec, in, &rng, 0.6);
  const std::vector<double> x = Ids(kBatch * kSteps, kVocab, 9);
  const std::vector<double> y_ref = RefForward(spec, in, w, x, kBatch);
  ASSERT_EQ(y_ref.size(), static_cast<size_t>(kBatch * kSteps * 4));
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
  ASSERT_EQ((*layer)->weights().size(), 1u);
  EXPECT_EQ((*layer)->weights()[0].name, "embeddings");
  EXPECT_EQ((*layer)->weights()[0].shape, (std::vector<int64_t>{kVocab, 4}));
  ASSERT_EQ((*layer)->num_params(), static_cast<int64_t>(p.size()));
  EXPECT_EQ((*layer)->output_shape().dim, 4);
  EXPECT_EQ((*layer)->output_shape().timesteps, kSteps);
  std::vector<double> y(y_ref.size()), dx(x.size(), 7.0), dp(p.size(), 7.0);
  (*layer)->Forward(ctx, p.data(), x.data(), kBatch, y.data());
  (*layer)->Backward(ctx, p.data(), dy.data(), dx.data(), dp.data());
  // A gather is exact, and the scatter-add sums in the reference's order.
  EXPECT_EQ(y, y_ref);
  EXPECT_EQ(dp, dp_ref);
  EXPECT_EQ(dx, std::vector<double>(x.size(), 0.0));

  Profile p32;
  p32.precision = Precision::kFp32;
  const Context ctx32(p32);
  absl::StatusOr<std::unique_ptr<Layer<float>>> layer32 =
      MakeLayer<float>(spec, in, "layer");
  ASSERT_TRUE(layer32.ok());
  const std::vector<float> pf(p.begin(), p.end()), xf(x.begin(), x.end()),
      dyf(dy.begin(), dy.end());
  std::vector<float> yf(y.size()), dpf(p.size());
  (*layer32)->Forward(ctx32, pf.data(), xf.data(), kBatch, yf.data());
  (*layer32)->Backward(ctx32, pf.data(), dyf.data(), nullptr, dpf.data());
  for (size_t i = 0; i < yf.size(); ++i)
    EXPECT_EQ(yf[i], static_cast<float>(y_ref[i])) << "f32 y[" << i << "]";
  testing_util::ExpectNearEachScaled(dpf, dp_ref, 1e-5, "f32 dparams");
}

TEST(EmbeddingLayerTest, MakeLayerRefusesAnInputThatIsNotOneIdPerStep) {
  absl::StatusOr<std::unique_ptr<Layer<double>>> layer = MakeLayer<double>(
      EmbeddingLayerSpec(5, 2), ActivationShape{true, 4, 3}, "model.layers[0]");
  ASSERT_FALSE(layer.ok());
  EXPECT_THAT(layer.status().message(), HasSubstr("model.layers[0]"));
}

// The smallest valid embedding job on TOKENS data.
JobSpec TokenJob() {
  JobSpec spec;
  spec.model.timesteps = 6;
  spec.model.features = 1;
  spec.model.layers = {EmbeddingLayerSpec(11, 3), Rnn(LayerKind::kGru, 4, true),
                       Dense(3)};
  spec.data.generator = DataSpec::Generator::kTokens;
  spec.data.samples = 64;
  spec.data.eval_samples = 8;
  spec.training.epochs = 2;
  spec.training.batch_size = 16;
  return spec;
}

TEST(EmbeddingSpecTest, BadSpecsAreRefusedNamingTheField) {
  ASSERT_TRUE(ValidateJobSpec(TokenJob()).ok()) << ValidateJobSpec(TokenJob());
  struct Bad {
    std::string field;
    JobSpec spec;
  };
  std::vector<Bad> bad;
  {
    JobSpec s = TokenJob();
    s.model.layers.insert(s.model.layers.begin() + 1, s.model.layers[0]);
    bad.push_back({"model.layers[1]: embedding must be the first layer", s});
  }
  {
    JobSpec s = TokenJob();
    s.model.features = 2;
    bad.push_back({"model.features must be 1", s});
  }
  {
    JobSpec s = TokenJob();
    s.model.layers[0].mask_zero = true;
    s.model.mask_value = 0.0;
    bad.push_back({"a Masking layer and an embedding with mask_zero", s});
  }
  {
    JobSpec s = TokenJob();
    s.model.layers[0].input_dim = 0;
    bad.push_back({"model.layers[0].input_dim must be in [1, 16777216]", s});
  }
  {
    JobSpec s = TokenJob();
    s.model.layers[0].units = 0;
    bad.push_back({"model.layers[0].output_dim must be in [1, 4096]", s});
  }
  {
    JobSpec s = TokenJob();
    s.model.layers[0].dropout = 0.5;
    bad.push_back({"do not apply to an embedding", s});
  }
  {
    JobSpec s = DefaultJobSpec();
    s.data.generator = DataSpec::Generator::kTokens;
    bad.push_back({"tokens needs an embedding", s});
  }
  {
    JobSpec s = TokenJob();
    s.optimizer.clipvalue = 0.5;
    bad.push_back({"optimizer.clipvalue with an embedding layer", s});
  }
  {
    JobSpec s = TokenJob();
    s.optimizer.global_clipnorm = 0.5;
    bad.push_back({"optimizer.global_clipnorm with an embedding layer", s});
  }
  for (const Bad& b : bad) {
    const absl::Status s = ValidateJobSpec(b.spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << b.field;
    EXPECT_THAT(s.message(), HasSubstr(b.field));
  }
  // An embedding model on a generator of real values fails before training.
  JobSpec sine = TokenJob();
  sine.data.generator = DataSpec::Generator::kSine;
  absl::StatusOr<RunResult> r = RunJob(sine, *Profile::Parse("fp32"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("must be TOKENS"));
}

TEST(EmbeddingSpecTest, InputDimAndMaskZeroAreInTheDigest) {
  const JobSpec a = TokenJob();
  JobSpec b = a;
  b.model.layers[0].input_dim = 12;
  EXPECT_NE(SpecDigest(a), SpecDigest(b));
  EXPECT_THAT(CanonicalText(a), HasSubstr("model.layers[0].input_dim=11"));
  EXPECT_THAT(CanonicalText(DefaultJobSpec()),
              ::testing::Not(HasSubstr("input_dim")));
}

TEST(EmbeddingSpecTest, MemoryAdmissionCountsTheTable) {
  JobSpec small = TokenJob();
  JobSpec large = small;
  large.model.layers[0].input_dim = 1 << 20;
  const Profile fp32 = *Profile::Parse("fp32");
  const JobMemory a = EstimateJobMemory(small, fp32, 64, 8);
  const JobMemory b = EstimateJobMemory(large, fp32, 64, 8);
  // The table and its gradient (and final copy), and Adam's two moments,
  // in float32: (2^20 - 11) · 3 values more in each.
  const double extra = 4.0 * ((1 << 20) - 11) * 3;
  EXPECT_GE(static_cast<double>(b.weights - a.weights), 2 * extra);
  EXPECT_GE(static_cast<double>(b.optimizer - a.optimizer), 2 * extra);
  EXPECT_GT(b.total(), a.total());
  // mask_zero's timestep mask costs memory too.
  JobSpec masked = small;
  masked.model.layers[0].mask_zero = true;
  EXPECT_GT(EstimateJobMemory(masked, fp32, 64, 8).total(), a.total());
}

TEST(TokensGeneratorTest, IdsAreIntegersInRangeAndTargetsFollowThem) {
  const JobSpec spec = TokenJob();
  absl::StatusOr<Dataset> d = GenerateDataset(spec, DataSplit::kTrain);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->x.shape(), (std::vector<int64_t>{64, 6, 1}));
  ASSERT_EQ(d->y.shape(), (std::vector<int64_t>{64, 6, 3}));
  std::set<int> seen;
  const int V = spec.model.layers[0].input_dim;
  for (int64_t n = 0; n < 64; ++n) {
    for (int t = 0; t < 6; ++t) {
      const double id = d->x.at(n * 6 + t);
      ASSERT_EQ(id, std::floor(id));
      ASSERT_GE(id, 0);
      ASSERT_LT(id, V);
      seen.insert(static_cast<int>(id));
      // Unit u: the mean of 2·id/(V−1) − 1 over the last 1 + u mod 4 ids.
      for (int u = 0; u < 3; ++u) {
        const int first = std::max(0, t - u);
        double sum = 0;
        for (int j = first; j <= t; ++j)
          sum += 2.0 * d->x.at(n * 6 + j) / (V - 1) - 1.0;
        EXPECT_EQ(d->y.at((n * 6 + t) * 3 + u),
                  static_cast<float>(sum / (t - first + 1)))
            << n << "," << t << "," << u;
      }
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(V));
  absl::StatusOr<Dataset> again = GenerateDataset(spec, DataSplit::kTrain);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(0, std::memcmp(again->x.raw(), d->x.raw(), d->x.size() * 4));
  absl::StatusOr<Dataset> eval = GenerateDataset(spec, DataSplit::kEval);
  ASSERT_TRUE(eval.ok());
  EXPECT_NE(0, std::memcmp(eval->x.raw(), d->x.raw(), eval->x.size() * 4));
}

TEST(TokensGeneratorTest, TrainingOnTokensLowersTheLoss) {
  JobSpec spec = TokenJob();
  spec.training.epochs = 20;
  spec.optimizer.learning_rate = 0.01;
  absl::StatusOr<RunResult> r = RunJob(spec, *Profile::Parse("fp32"));
  ASSERT_TRUE(r.ok()) << r.status();
  const int64_t steps = r->losses.size();
  double first = 0, last = 0;
  for (int i = 0; i < 4; ++i) {
    first += r->losses.at(i);
    last += r->losses.at(steps - 1 - i);
  }
  EXPECT_LT(last, 0.5 * first);
  // fp32 runs are bit-reproducible.
  absl::StatusOr<RunResult> again = RunJob(spec, *Profile::Parse("fp32"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->fingerprints.back().sha256, r->fingerprints.back().sha256);
}

// With mask_zero, TOKENS' id 0 (drawn like any other id) is padding: the
// run's first loss is the masked one, the mean squared error over the
// steps whose id is not 0 of the initial model's outputs.
TEST(TokensGeneratorTest, MaskZeroTreatsDrawnZerosAsPadding) {
  JobSpec spec = TokenJob();
  spec.model.layers[0].mask_zero = true;
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  spec.training.shuffle = false;
  spec.training.epochs = 1;
  const Profile fp64 = *Profile::Parse("fp64");
  absl::StatusOr<Dataset> d = GenerateDataset(spec, DataSplit::kTrain);
  ASSERT_TRUE(d.ok()) << d.status();
  const int batch = spec.training.batch_size, steps = spec.model.timesteps;
  const int units = ModelOutputUnits(spec.model);
  std::vector<double> x(static_cast<size_t>(batch) * steps);
  int zeros = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = d->x.at(static_cast<int64_t>(i));
    zeros += x[i] == 0 ? 1 : 0;
  }
  ASSERT_GT(zeros, 0) << "the first batch draws no id 0";
  absl::StatusOr<RunResult> r = RunJob(spec, fp64);
  ASSERT_TRUE(r.ok()) << r.status();
  // The same initial weights, through the float64 reference.
  JobSpec init = spec;
  init.training.epochs = 0;
  absl::StatusOr<RunResult> r0 = RunJob(init, fp64);
  ASSERT_TRUE(r0.ok()) << r0.status();
  std::vector<RefWeights> w(spec.model.layers.size());
  absl::StatusOr<std::unique_ptr<Model<double>>> probe =
      Model<double>::Create(spec.model, batch);
  ASSERT_TRUE(probe.ok());
  for (size_t j = 0; j < r0->final_weights.size(); ++j) {
    const NdArray& a = r0->final_weights[j].array;
    std::vector<double> v(static_cast<size_t>(a.size()));
    for (int64_t i = 0; i < a.size(); ++i) v[i] = a.at(i);
    w[(*probe)->weights()[j].layer].push_back(v);
  }
  const std::vector<uint8_t> keep = RefMaskZeroKeep(x);
  const std::vector<double> pred =
      RefModelForward(spec.model.layers, ActivationShape{true, steps, 1}, w, x,
                      batch, nullptr, nullptr, &keep);
  double sum = 0;
  int kept = 0;
  for (size_t row = 0; row < keep.size(); ++row) {
    if (!keep[row]) continue;
    ++kept;
    double e = 0;
    for (int u = 0; u < units; ++u) {
      const double diff = pred[row * units + u] - d->y.at(row * units + u);
      e += diff * diff;
    }
    sum += e / units;
  }
  EXPECT_NEAR(r->losses.at(0), sum / kept, 1e-12);
}

TEST(EmbeddingDataTest, SuppliedIdOutOfRangeIsRefusedNamingSampleAndStep) {
  const JobSpec spec = TokenJob();
  RunOptions options;
  NdArray x(DType::kFloat32, {2, 6, 1});
  NdArray y(DType::kFloat32, {2, 6, 3});
  for (int64_t i = 0; i < x.size(); ++i) x.data<float>()[i] = i % 11;
  x.data<float>()[1 * 6 + 4] = 11;  // sample 1, timestep 4
  options.x = x;
  options.y = y;
  absl::StatusOr<RunResult> r = RunJob(spec, *Profile::Parse("fp32"), options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("--x: sample 1, timestep 4: token id 11 is not an "
                        "integer in [0, 11)"));
  x.data<float>()[1 * 6 + 4] = 2.5f;
  options.x = x;
  r = RunJob(spec, *Profile::Parse("fp32"), options);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("token id 2.5"));
  x.data<float>()[1 * 6 + 4] = 3;
  options.x = x;
  r = RunJob(spec, *Profile::Parse("fp32"), options);
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST(EmbeddingDeviceTest, DeviceProfilesRefuseEmbeddingNamingTheField) {
  absl::StatusOr<Profile> emu = Profile::Parse("cuda-det-emu");
  ASSERT_TRUE(emu.ok()) << emu.status();
  absl::StatusOr<RunResult> r = RunJob(TokenJob(), *emu);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model.layers[0].embedding"));
}

// Mirrors CASES in make_embedding_golden.py.
std::vector<KerasCase> KerasCases() {
  std::vector<KerasCase> c;
  JobSpec base = golden::KerasGoldenBaseSpec(5, 1);
  base.data.generator = DataSpec::Generator::kTokens;
  {
    JobSpec s = base;
    s.seed = 42;
    s.model.layers = {EmbeddingLayerSpec(30, 3), Rnn(LayerKind::kLstm, 4, true),
                      Dense(2)};
    s.optimizer.kind = OptimizerKind::kAdam;
    s.optimizer.learning_rate = 0x1p-5;
    c.push_back({"embedding_lstm_dense_adam_s42", s});
  }
  {
    JobSpec s = base;
    s.seed = 7;
    LayerSpec e = EmbeddingLayerSpec(9, 2);
    e.kernel_initializer.kind = InitializerSpec::Kind::kRandomNormal;
    e.kernel_initializer.mean = 0.0;
    e.kernel_initializer.stddev = 0.5;
    s.model.layers = {e, Rnn(LayerKind::kGru, 3, false), Dense(2)};
    s.optimizer.kind = OptimizerKind::kSgd;
    s.optimizer.learning_rate = 0x1p-3;
    c.push_back({"embedding_normal_gru_last_sgd_s7", s});
  }
  {
    JobSpec s = base;
    s.seed = 3;
    s.model.layers = {EmbeddingLayerSpec(6, 3),
                      Rnn(LayerKind::kSimpleRnn, 3, true), Dense(1)};
    s.optimizer.kind = OptimizerKind::kRmsprop;
    s.optimizer.learning_rate = 0x1p-4;
    s.optimizer.clipnorm = 0.05;
    c.push_back({"embedding_simple_rnn_rmsprop_clipnorm_s3", s});
  }
  {
    JobSpec s = base;
    s.seed = 21;
    LayerSpec e = EmbeddingLayerSpec(12, 3);
    e.mask_zero = true;
    s.model.layers = {e, Rnn(LayerKind::kLstm, 4, true), Dense(2)};
    s.optimizer.kind = OptimizerKind::kAdam;
    s.optimizer.learning_rate = 0x1p-5;
    c.push_back({"embedding_mask_zero_lstm_dense_adam_s21", s});
  }
  return c;
}

using KerasEmbeddingGoldenTest = golden::KerasTrainingGoldenTest;

// Keras' optimizers get the embedding's gradient as IndexedSlices, one row
// per token occurrence: the updates use the rows' sum, except that Adam's
// and RMSprop's second moments add the squares of the rows, and clipnorm
// takes the norm of the rows (Optimizer::SetOccurrenceSquares). Adam still
// moves rows absent from a batch, from their moments (manifest.json
// records it). The ids repeat within the batches, so a dense treatment of
// the squares fails these cases.
TEST_P(KerasEmbeddingGoldenTest, TrainingMatchesKeras) {
  ExpectTrainingMatchesKeras(kDir, /*check_initial_outputs=*/true);
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasEmbeddingGoldenTest,
                         golden::KerasTrainingParams(KerasCases()),
                         golden::KerasCasePrecisionName());

class KerasEmbeddingModelTest : public ::testing::TestWithParam<KerasCase> {};

// seed_mode KERAS: the embedding table Keras draws (its initializer's draw
// comes first, before the next layer's), bit for bit; the RNN's orthogonal
// kernel within float32 rounding (docs/keras.md).
TEST_P(KerasEmbeddingModelTest, KerasSeedModeGivesKerasInitialWeights) {
  const KerasCase& tc = GetParam();
  RunResult run;
  int exact = 0;
  ASSERT_NO_FATAL_FAILURE(golden::ExpectKerasSeedModeWeights(
      kDir + tc.name + "/f32/", tc.spec, /*bit_exact_except_recurrent=*/true,
      /*same_shapes=*/true, &run, &exact));
  EXPECT_EQ(run.final_weights[0].name, "layer0_embeddings");
}

// The first step's gradients of the engine's model and of the reference,
// against Keras float64's GradientTape (the embedding's made dense).
TEST_P(KerasEmbeddingModelTest, FirstStepGradientsMatchKeras) {
  const KerasCase& tc = GetParam();
  golden::FirstStepGolden s;
  ASSERT_NO_FATAL_FAILURE(
      golden::LoadFirstStep(tc.name, kDir + tc.name + "/f64/", tc.spec, &s));
  const double* pred = s.model->Forward(*s.ctx, s.xb.data(), s.batch);
  std::vector<double> dy(static_cast<size_t>(golden::FirstBatchOutputs(s)));
  const bool mask_zero = tc.spec.model.layers[0].mask_zero;
  const std::vector<uint8_t> keep = RefMaskZeroKeep(s.xb);
  if (mask_zero) {  // Keras' masked loss: the mean over the kept steps
    ASSERT_NE(s.model->output_mask(), nullptr);
    EXPECT_EQ(std::vector<uint8_t>(s.model->output_mask(),
                                   s.model->output_mask() + keep.size()),
              keep);
    LossBackward<double>(LossKind::kMse, pred, s.y.data<double>(),
                         int64_t{s.batch} * tc.spec.model.timesteps,
                         ModelOutputUnits(tc.spec.model), dy.data(), 1,
                         s.model->output_mask());
  } else {
    dy = golden::MseGradient(s, pred, golden::FirstBatchOutputs(s));
  }
  s.model->Backward(*s.ctx, dy.data());
  golden::ExpectFirstStepGradientsMatchKeras(
      s, RefModelBackward(tc.spec.model.layers, s.input_shape, s.ref_weights,
                          s.xb, s.batch, dy, nullptr, nullptr,
                          mask_zero ? &keep : nullptr));
}

INSTANTIATE_TEST_SUITE_P(Keras315, KerasEmbeddingModelTest,
                         ::testing::ValuesIn(KerasCases()),
                         golden::KerasCaseName());

}  // namespace
}  // namespace driftscope
