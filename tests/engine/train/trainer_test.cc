// RunJob against independent references: the double-precision reference
// layers (engine/reference), the SGD formula by hand, the data generator and
// the shuffle, and against itself for the determinism contract.
#include "engine/train/trainer.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/core/sha256.h"
#include "engine/data/synthetic.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "engine/reference/reference.h"
#include "engine/rng/philox.h"
#include "engine/train/shuffle.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

Profile P(const char* text) {
  absl::StatusOr<Profile> p = Profile::Parse(text);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : Profile{};
}

RunResult MustRun(const JobSpec& spec, const char* profile,
                  const RunOptions& options = {}) {
  absl::StatusOr<RunResult> r = RunJob(spec, P(profile), options);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : RunResult{};
}

std::vector<double> ToDouble(const NdArray& a) {
  std::vector<double> v(static_cast<size_t>(a.size()));
  for (int64_t i = 0; i < a.size(); ++i) v[i] = a.at(i);
  return v;
}

// Groups a run's final weights ("layer{i}_...") into reference weights.
std::vector<RefWeights> ToRef(const RunResult& r, int num_layers) {
  std::vector<RefWeights> w(num_layers);
  for (const NamedArray& a : r.final_weights) {
    const int layer = std::stoi(a.name.substr(5, a.name.find('_') - 5));
    w[layer].push_back(ToDouble(a.array));
  }
  return w;
}

// Samples [first, first + count) of an (N, ...) array, or the listed ones.
std::vector<double> Rows(const NdArray& a, const std::vector<int64_t>& rows) {
  const int64_t per = a.size() / a.shape()[0];
  std::vector<double> v;
  for (int64_t r : rows) {
    for (int64_t i = 0; i < per; ++i) v.push_back(a.at(r * per + i));
  }
  return v;
}

std::vector<int64_t> Range(int64_t first, int64_t count) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < count; ++i) v.push_back(first + i);
  return v;
}

double MaxAbsDiff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    m = std::max(m, std::fabs(a[i] - b[i]));
  }
  return m;
}

void ExpectIdentical(const RunResult& a, const RunResult& b) {
  EXPECT_TRUE(a.outputs == b.outputs);
  EXPECT_TRUE(a.losses == b.losses);
  ASSERT_EQ(a.fingerprints.size(), b.fingerprints.size());
  for (size_t i = 0; i < a.fingerprints.size(); ++i) {
    EXPECT_EQ(a.fingerprints[i].sha256, b.fingerprints[i].sha256) << i;
    EXPECT_EQ(a.fingerprints[i].sha256_f32, b.fingerprints[i].sha256_f32);
  }
  ASSERT_EQ(a.final_weights.size(), b.final_weights.size());
  for (size_t i = 0; i < a.final_weights.size(); ++i) {
    EXPECT_EQ(a.final_weights[i].name, b.final_weights[i].name);
    EXPECT_TRUE(a.final_weights[i].array == b.final_weights[i].array) << i;
  }
  EXPECT_EQ(a.spec_digest, b.spec_digest);
}

// LSTM(3, seq) → Dense(2), T=4, F=2, SGD 0.1, 10 samples in batches of 4.
JobSpec TinyJob() {
  JobSpec spec;
  spec.seed = 7;
  spec.model.timesteps = 4;
  spec.model.features = 2;
  LayerSpec lstm;
  lstm.kind = LayerKind::kLstm;
  lstm.units = 3;
  lstm.return_sequences = true;
  LayerSpec dense;
  dense.kind = LayerKind::kDense;
  dense.units = 2;
  dense.activation = Activation::kLinear;
  spec.model.layers = {lstm, dense};
  spec.optimizer.kind = OptimizerKind::kSgd;
  spec.optimizer.learning_rate = 0.1;
  spec.data.samples = 10;
  spec.data.eval_samples = 5;
  spec.training.epochs = 1;
  spec.training.batch_size = 4;
  spec.training.shuffle = false;
  return spec;
}

// MSE of rows × units values, and its gradient, straight from the formula.
double Mse(const std::vector<double>& pred, const std::vector<double>& y,
           std::vector<double>* grad) {
  double sum = 0;
  const double n = static_cast<double>(pred.size());
  grad->resize(pred.size());
  for (size_t i = 0; i < pred.size(); ++i) {
    sum += (pred[i] - y[i]) * (pred[i] - y[i]);
    (*grad)[i] = 2 * (pred[i] - y[i]) / n;
  }
  return sum / n;
}

// ----- the default job: determinism, precision drift, learning -----------

class DefaultJobTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    const JobSpec spec = DefaultJobSpec();
    fp32_ = new RunResult(MustRun(spec, "fp32"));
    ref64_ = new RunResult(MustRun(spec, "ref64"));
  }
  static void TearDownTestSuite() {
    delete fp32_;
    delete ref64_;
  }
  static RunResult* fp32_;
  static RunResult* ref64_;
};
RunResult* DefaultJobTest::fp32_ = nullptr;
RunResult* DefaultJobTest::ref64_ = nullptr;

TEST_F(DefaultJobTest, ShapesCountsAndNames) {
  for (const RunResult* r : {fp32_, ref64_}) {
    EXPECT_EQ(r->steps, 3 * 32);  // 1024 / 32 per epoch
    EXPECT_EQ(r->losses.shape(), (std::vector<int64_t>{96}));
    EXPECT_EQ(r->outputs.shape(), (std::vector<int64_t>{128, 10, 32}));
    ASSERT_EQ(r->fingerprints.size(), 97u);
    EXPECT_EQ(r->fingerprints.back().step, 96);
    EXPECT_EQ(r->spec_digest, SpecDigest(DefaultJobSpec()));
    ASSERT_EQ(r->final_weights.size(), 6u);
    EXPECT_EQ(r->final_weights[3].name, "layer1_kernel");
    EXPECT_EQ(r->final_weights[3].array.shape(),
              (std::vector<int64_t>{64, 128}));
    EXPECT_TRUE(r->final_states.empty());
    EXPECT_TRUE(r->epoch_outputs.empty());
  }
  EXPECT_EQ(fp32_->outputs.dtype(), DType::kFloat32);
  EXPECT_EQ(ref64_->outputs.dtype(), DType::kFloat64);
  EXPECT_EQ(ref64_->losses.dtype(), DType::kFloat64);
  // The profile that ran, with isa=auto resolved to the level in use.
  EXPECT_EQ(ref64_->profile.rfind("fp64,", 0), 0u) << ref64_->profile;
  EXPECT_EQ(ref64_->profile.find("isa=auto"), std::string::npos);
}

TEST_F(DefaultJobTest, RerunIsBitIdenticalInBothPrecisions) {
  ExpectIdentical(*fp32_, MustRun(DefaultJobSpec(), "fp32"));
  ExpectIdentical(*ref64_, MustRun(DefaultJobSpec(), "ref64"));
}

TEST_F(DefaultJobTest, ThreadCountDoesNotChangeBits) {
  ExpectIdentical(*fp32_, MustRun(DefaultJobSpec(), "fp32,threads=2"));
}

TEST_F(DefaultJobTest, Fp32DriftsFromRef64WithinTolerance) {
  // Same initial weights: the fp64 run widens the float32 draws exactly.
  EXPECT_EQ(fp32_->fingerprints[0].sha256_f32,
            ref64_->fingerprints[0].sha256_f32);
  EXPECT_NE(fp32_->fingerprints[0].sha256, ref64_->fingerprints[0].sha256);
  // ... but float32 arithmetic moves the weights off ref64's roundings.
  EXPECT_NE(fp32_->fingerprints.back().sha256_f32,
            ref64_->fingerprints.back().sha256_f32);
  const std::vector<double> a = ToDouble(fp32_->outputs);
  const std::vector<double> r = ToDouble(ref64_->outputs);
  double num = 0, den = 0;
  int64_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - r[i]) * (a[i] - r[i]);
    den += r[i] * r[i];
    differing += a[i] != r[i];
  }
  const double rel_l2 = std::sqrt(num / den);
  std::cout << "default job, fp32 vs ref64 eval outputs: relative L2 " << rel_l2
            << ", " << differing << " of " << a.size() << " elements differ\n";
  EXPECT_LT(rel_l2, 1e-5);  // measured 2.1e-7 (g++ 12, x86-64-v3)
  EXPECT_GT(differing, 0);
}

TEST_F(DefaultJobTest, LossDecreasesOverEpochs) {
  for (const RunResult* r : {fp32_, ref64_}) {
    double first = 0, last = 0;
    for (int i = 0; i < 32; ++i) {
      first += r->losses.at(i);
      last += r->losses.at(64 + i);
    }
    std::cout << "mean batch loss, epoch 1: " << first / 32
              << ", epoch 3: " << last / 32 << "\n";
    EXPECT_LT(last, 0.8 * first);
  }
}

TEST_F(DefaultJobTest, FingerprintsHashTheWeightsInKerasOrder) {
  for (const RunResult* r : {fp32_, ref64_}) {
    Sha256 run, f32;
    for (const NamedArray& w : r->final_weights) {
      run.Update(w.array.raw(), w.array.nbytes());
      const NdArray narrowed = w.array.AsType(DType::kFloat32);
      f32.Update(narrowed.raw(), narrowed.nbytes());
    }
    EXPECT_EQ(r->fingerprints.back().sha256, run.HexDigest());
    EXPECT_EQ(r->fingerprints.back().sha256_f32, f32.HexDigest());
  }
  EXPECT_EQ(fp32_->fingerprints[5].sha256, fp32_->fingerprints[5].sha256_f32);
}

// ----- exactness against the reference -------------------------------------

TEST(TrainerReferenceTest, EpochsZeroOutputsAreTheReferenceForward) {
  JobSpec spec;
  spec.seed = 11;
  spec.model.timesteps = 6;
  spec.model.features = 3;
  LayerSpec lstm;
  lstm.kind = LayerKind::kLstm;
  lstm.units = 6;
  lstm.return_sequences = true;
  lstm.go_backwards = true;
  LayerSpec gru = lstm;
  gru.kind = LayerKind::kGru;
  gru.units = 5;
  gru.go_backwards = false;
  LayerSpec rnn = gru;
  rnn.kind = LayerKind::kSimpleRnn;
  rnn.units = 4;
  rnn.return_sequences = false;
  rnn.return_state = true;
  spec.model.layers = {lstm, gru, rnn};
  spec.data.eval_samples = 37;  // chunks of 16, 16 and 5
  spec.training.epochs = 0;
  spec.training.batch_size = 16;
  const RunResult r = MustRun(spec, "ref64");
  EXPECT_EQ(r.steps, 0);
  EXPECT_EQ(r.fingerprints.size(), 1u);
  ASSERT_EQ(r.outputs.shape(), (std::vector<int64_t>{37, 4}));

  absl::StatusOr<Dataset> eval = GenerateDataset(spec, DataSplit::kEval);
  ASSERT_TRUE(eval.ok());
  const std::vector<RefWeights> w = ToRef(r, 3);
  std::vector<double> act = ToDouble(eval->x);
  ActivationShape in{true, 6, 3};
  std::vector<std::vector<double>> states;
  for (int i = 0; i < 3; ++i) {
    act = RefForward(spec.model.layers[i], in, w[i], act, 37,
                     i == 2 ? &states : nullptr);
    in = RefOutputShape(spec.model.layers[i], in);
  }
  EXPECT_LE(MaxAbsDiff(ToDouble(r.outputs), act), 1e-12);
  ASSERT_EQ(r.final_states.size(), 1u);
  EXPECT_EQ(r.final_states[0].name, "state_h");
  EXPECT_LE(MaxAbsDiff(ToDouble(r.final_states[0].array), states[0]), 1e-12);
  // Cross-check the whole-stack reference too.
  EXPECT_LE(MaxAbsDiff(RefModelForward(spec.model.layers, {true, 6, 3}, w,
                                       ToDouble(eval->x), 37),
                       act),
            1e-15);
}

TEST(TrainerReferenceTest, ThreeSgdStepsMatchReferenceGradients) {
  const JobSpec spec = TinyJob();
  JobSpec init_only = spec;
  init_only.training.epochs = 0;
  const RunResult start = MustRun(init_only, "ref64");
  const RunResult r = MustRun(spec, "ref64");
  ASSERT_EQ(r.steps, 3);  // batches of 4, 4 and the partial 2

  absl::StatusOr<Dataset> train = GenerateDataset(spec, DataSplit::kTrain);
  ASSERT_TRUE(train.ok());
  std::vector<RefWeights> w = ToRef(start, 2);
  const ActivationShape in{true, 4, 2};
  for (int step = 0; step < 3; ++step) {
    const std::vector<int64_t> rows = Range(4 * step, step < 2 ? 4 : 2);
    const int b = static_cast<int>(rows.size());
    const std::vector<double> x = Rows(train->x, rows);
    const std::vector<double> y = Rows(train->y, rows);
    const std::vector<double> pred =
        RefModelForward(spec.model.layers, in, w, x, b);
    std::vector<double> dy;
    const double loss = Mse(pred, y, &dy);
    EXPECT_NEAR(r.losses.at(step), loss, 1e-12 * loss) << step;
    const std::vector<RefLayerGrads> g =
        RefModelBackward(spec.model.layers, in, w, x, b, dy);
    for (size_t l = 0; l < w.size(); ++l) {
      for (size_t k = 0; k < w[l].size(); ++k) {
        for (size_t i = 0; i < w[l][k].size(); ++i) {
          w[l][k][i] -= 0.1 * g[l].dweights[k][i];
        }
      }
    }
  }
  const std::vector<RefWeights> got = ToRef(r, 2);
  for (size_t l = 0; l < w.size(); ++l) {
    for (size_t k = 0; k < w[l].size(); ++k) {
      EXPECT_LE(MaxAbsDiff(got[l][k], w[l][k]), 1e-12) << l << " " << k;
    }
  }
  // The update really moved the weights (the test cannot pass vacuously).
  EXPECT_GT(MaxAbsDiff(got[0][0], ToRef(start, 2)[0][0]), 1e-4);
}

// The step-1 loss is recorded before the update, on the epoch's first batch.
double FirstBatchLoss(const JobSpec& spec, const std::vector<int64_t>& rows) {
  JobSpec init_only = spec;
  init_only.training.epochs = 0;
  const RunResult start = MustRun(init_only, "ref64");
  absl::StatusOr<Dataset> train = GenerateDataset(spec, DataSplit::kTrain);
  EXPECT_TRUE(train.ok());
  std::vector<double> dy;
  return Mse(
      RefModelForward(spec.model.layers, {true, 4, 2}, ToRef(start, 2),
                      Rows(train->x, rows), static_cast<int>(rows.size())),
      Rows(train->y, rows), &dy);
}

TEST(TrainerReferenceTest, ShuffleDecidesTheBatchOrder) {
  JobSpec spec = TinyJob();
  const RunResult plain = MustRun(spec, "ref64");
  const double in_order = FirstBatchLoss(spec, Range(0, 4));
  EXPECT_NEAR(plain.losses.at(0), in_order, 1e-12 * in_order);

  spec.training.shuffle = true;
  const RunResult shuffled = MustRun(spec, "ref64");
  PhiloxStream rng(spec.seed, streams::kShuffle);
  std::vector<int64_t> order(10);
  EpochOrder(true, &rng, &order);
  const double permuted =
      FirstBatchLoss(spec, {order[0], order[1], order[2], order[3]});
  EXPECT_NEAR(shuffled.losses.at(0), permuted, 1e-12 * permuted);
  EXPECT_GT(std::fabs(permuted - in_order), 1e-6);
}

// ----- the loop's bookkeeping ---------------------------------------------

TEST(TrainerLoopTest, PartialLastBatchCountsAsAStep) {
  JobSpec spec = TinyJob();
  spec.data.samples = 100;
  spec.training.batch_size = 32;
  spec.training.epochs = 2;
  std::vector<ProgressEvent> events;
  RunOptions options;
  options.on_progress = [&](const ProgressEvent& e) { events.push_back(e); };
  const RunResult r = MustRun(spec, "fp32", options);
  EXPECT_EQ(r.steps, 8);
  EXPECT_EQ(r.losses.size(), 8);
  EXPECT_EQ(r.fingerprints.size(), 9u);
  ASSERT_EQ(events.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(events[i].step, i + 1);
    EXPECT_EQ(events[i].epoch, i / 4);
    EXPECT_EQ(events[i].total_steps, 8);
    EXPECT_EQ(events[i].loss, r.losses.at(i));
  }
  // Every step changes the weights.
  for (int i = 1; i < 9; ++i) {
    EXPECT_NE(r.fingerprints[i].sha256, r.fingerprints[i - 1].sha256);
  }
}

TEST(TrainerLoopTest, EpochOutputsAndEvalChunking) {
  JobSpec spec = TinyJob();
  spec.training.epochs = 2;
  spec.training.capture_epoch_outputs = true;
  spec.data.eval_samples = 9;  // chunks of 4, 4, 1
  const RunResult r = MustRun(spec, "fp32");
  ASSERT_EQ(r.epoch_outputs.size(), 2u);
  EXPECT_TRUE(r.epoch_outputs[1] == r.outputs);
  EXPECT_FALSE(r.epoch_outputs[0] == r.outputs);
  // A bigger eval set starts with the same samples; the common chunks give
  // the same bits.
  spec.data.eval_samples = 13;
  const RunResult bigger = MustRun(spec, "fp32");
  const int64_t per = 4 * 2;
  for (int64_t i = 0; i < 8 * per; ++i) {
    ASSERT_EQ(r.outputs.data<float>()[i], bigger.outputs.data<float>()[i]);
  }
}

TEST(TrainerLoopTest, CancelStopsBeforeTheNextStep) {
  std::atomic<bool> cancel{true};
  RunOptions options;
  options.cancel = &cancel;
  absl::StatusOr<RunResult> r = RunJob(TinyJob(), P("fp32"), options);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);

  cancel = false;
  int seen = 0;
  options.on_progress = [&](const ProgressEvent& e) {
    seen = static_cast<int>(e.step);
    if (e.step == 2) cancel = true;
  };
  r = RunJob(TinyJob(), P("fp32"), options);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(seen, 2);
}

TEST(TrainerLoopTest, ConcurrentRunsAreIndependent) {
  JobSpec spec = TinyJob();
  spec.training.epochs = 3;
  const RunResult alone = MustRun(spec, "fp32");
  RunResult a, b;
  std::thread t1([&] { a = MustRun(spec, "fp32"); });
  std::thread t2([&] { b = MustRun(spec, "fp32,threads=2"); });
  t1.join();
  t2.join();
  ExpectIdentical(alone, a);
  ExpectIdentical(alone, b);
}

// ----- profile knobs the trainer owns -------------------------------------

TEST(TrainerProfileTest, PerturbFlipsOneUlpOfASeededFraction) {
  JobSpec spec = TinyJob();
  spec.training.epochs = 0;
  const RunResult plain = MustRun(spec, "fp32");
  const RunResult perturbed = MustRun(spec, "fp32,perturb=0.25");
  EXPECT_NE(perturbed.fingerprints[0].sha256, plain.fingerprints[0].sha256);
  EXPECT_TRUE(MustRun(spec, "fp32,perturb=0.25").final_weights[0].array ==
              perturbed.final_weights[0].array);
  int64_t flipped = 0, total = 0;
  for (size_t k = 0; k < plain.final_weights.size(); ++k) {
    const NdArray& a = plain.final_weights[k].array;
    const NdArray& b = perturbed.final_weights[k].array;
    for (int64_t i = 0; i < a.size(); ++i, ++total) {
      uint32_t x, y;
      std::memcpy(&x, a.data<float>() + i, 4);
      std::memcpy(&y, b.data<float>() + i, 4);
      EXPECT_TRUE(x == y || (x ^ y) == 1u) << i;
      flipped += x != y;
    }
  }
  // 74 weights, p = 0.25: expect ~18; 4 to 34 is beyond ±4 sigma.
  EXPECT_GE(flipped, 4);
  EXPECT_LE(flipped, 34);
  EXPECT_GT(total, 60);
}

TEST(TrainerProfileTest, PowerOfTwoLossScaleIsExact) {
  // Scaling dloss by 2^10 and the gradients back is exact in binary floating
  // point (no overflow here), so the bits must not change.
  ExpectIdentical(MustRun(TinyJob(), "fp32"),
                  MustRun(TinyJob(), "fp32,loss_scale=1024"));
}

TEST(TrainerProfileTest, ForcedImplementationKeepsTheSpecDigest) {
  const RunResult two = MustRun(TinyJob(), "fp64");
  const RunResult one = MustRun(TinyJob(), "fp64,impl=1");
  EXPECT_EQ(one.spec_digest, two.spec_digest);
  EXPECT_NE(one.profile, two.profile);
  // Same math in double: 1e-16-level differences at most.
  EXPECT_LE(MaxAbsDiff(ToDouble(one.outputs), ToDouble(two.outputs)), 1e-13);
}

// ----- imported weights and supplied data ---------------------------------

std::vector<NdArray> Arrays(const RunResult& r) {
  std::vector<NdArray> v;
  for (const NamedArray& w : r.final_weights) v.push_back(w.array);
  return v;
}

TEST(TrainerImportTest, InitWeightsRoundTrip) {
  JobSpec spec = TinyJob();
  JobSpec init_only = spec;
  init_only.training.epochs = 0;
  const RunResult start = MustRun(init_only, "fp32");
  const RunResult plain = MustRun(spec, "fp32");

  RunOptions options;
  options.init_weights = Arrays(start);
  spec.seed = 99;  // the import, not the seed, decides the weights
  RunResult imported = MustRun(spec, "fp32", options);
  EXPECT_EQ(imported.fingerprints[0].sha256, start.fingerprints[0].sha256);
  // float64 arrays of the same values are rounded back exactly.
  std::vector<NdArray> wide;
  for (const NdArray& a : Arrays(start))
    wide.push_back(a.AsType(DType::kFloat64));
  options.init_weights = wide;
  imported = MustRun(spec, "fp32", options);
  EXPECT_EQ(imported.fingerprints[0].sha256, start.fingerprints[0].sha256);
  spec.seed = 7;
  imported = MustRun(spec, "fp32", options);
  ExpectIdentical(plain, imported);
}

TEST(TrainerImportTest, InitWeightsErrorsNameTheWeight) {
  const JobSpec spec = DefaultJobSpec();
  JobSpec init_only = spec;
  init_only.training.epochs = 0;
  init_only.data.samples = 1;
  init_only.data.eval_samples = 1;
  std::vector<NdArray> w = Arrays(MustRun(init_only, "fp32"));
  ASSERT_EQ(w.size(), 6u);

  RunOptions options;
  options.init_weights = std::vector<NdArray>(w.begin(), w.end() - 1);
  absl::StatusOr<RunResult> r = RunJob(spec, P("fp32"), options);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "init weights: expected 6 arrays (layer0_kernel, "
            "layer0_recurrent_kernel, layer0_bias, layer1_kernel, "
            "layer1_recurrent_kernel, layer1_bias), got 5");

  std::vector<NdArray> bad = w;
  bad[3] = NdArray(DType::kFloat32, {3, 4});
  options.init_weights = bad;
  r = RunJob(spec, P("fp32"), options);
  EXPECT_EQ(r.status().message(),
            "init weights: layer1_kernel has shape (3, 4), expected (64, 128)");

  bad = w;
  bad[2].data<float>()[5] = std::nanf("");
  options.init_weights = bad;
  r = RunJob(spec, P("fp32"), options);
  EXPECT_EQ(r.status().message(),
            "init weights: layer0_bias has a non-finite value (nan) at flat "
            "index 5");
}

TEST(TrainerImportTest, SuppliedDataReplacesTheGenerator) {
  const JobSpec spec = TinyJob();
  absl::StatusOr<Dataset> train = GenerateDataset(spec, DataSplit::kTrain);
  absl::StatusOr<Dataset> eval = GenerateDataset(spec, DataSplit::kEval);
  ASSERT_TRUE(train.ok() && eval.ok());
  RunOptions options;
  options.x = train->x.AsType(DType::kFloat64);
  options.y = train->y;
  options.eval_x = eval->x;
  ExpectIdentical(MustRun(spec, "ref64"), MustRun(spec, "ref64", options));
  // eval_x defaults to x.
  options.eval_x.reset();
  EXPECT_EQ(MustRun(spec, "fp32", options).outputs.shape(),
            (std::vector<int64_t>{10, 4, 2}));
}

void ExpectDataError(const RunOptions& options, const std::string& message) {
  absl::StatusOr<RunResult> r = RunJob(DefaultJobSpec(), P("fp32"), options);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), message);
}

TEST(TrainerImportTest, SuppliedDataErrorsNameTheFlag) {
  RunOptions o;
  o.x = NdArray(DType::kFloat32, {5, 12, 1});
  o.y = NdArray(DType::kFloat32, {5, 12, 32});
  ExpectDataError(o, "--x has timesteps 12 but model.input.timesteps is 10");
  o.x = NdArray(DType::kFloat32, {5, 10});
  ExpectDataError(o,
                  "--x must have rank 3 (samples, timesteps, features), got "
                  "shape (5, 10)");
  o.x = NdArray(DType::kFloat32, {0, 10, 1});
  ExpectDataError(o, "--x has 0 samples; at least 1 is needed");
  o.x = NdArray(DType::kFloat32, {5, 10, 1});
  o.y = NdArray(DType::kFloat32, {5, 10, 3});
  ExpectDataError(o,
                  "--y has shape (5, 10, 3) but the model output for 5 "
                  "samples is (5, 10, 32)");
  o.y = NdArray(DType::kFloat32, {5, 10, 32});
  o.x->data<float>()[3] = std::nanf("");
  ExpectDataError(o, "--x has a non-finite value (nan) at flat index 3");
  o.x = NdArray(DType::kFloat32, {5, 10, 1});
  o.eval_x = NdArray(DType::kFloat64, {2, 10, 2});
  ExpectDataError(o, "--eval-x has features 2 but model.input.features is 1");
  o.eval_x.reset();
  o.y.reset();
  ExpectDataError(o, "--y is required when --x is given");
}

TEST(TrainerImportTest, InvalidSpecIsRejectedBeforeWork) {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[1].units = 0;
  absl::StatusOr<RunResult> r = RunJob(spec, P("fp32"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "model.layers[1].units must be in [1, 4096], got 0");
  spec = DefaultJobSpec();
  spec.optimizer.learning_rate = std::nan("");
  EXPECT_EQ(RunJob(spec, P("ref64")).status().message(),
            "optimizer.learning_rate must be a finite number > 0, got nan");
}

}  // namespace
}  // namespace driftscope
