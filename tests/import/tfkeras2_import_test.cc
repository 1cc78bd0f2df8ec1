// `driftscope import` on `.h5` (and one `.keras`) files written by a real
// Keras 2 (tf_keras 2.21.0,
// tests/golden/keras_import/make_tfkeras2_goldens.py): each file imported, its
// weights read bit for bit, and the imported model's float64 forward pass,
// first-step gradients (engine and float64 reference) and 6-step training
// compared with what Keras 2 computed from the same file; and the Keras 2 files
// import must refuse.
#include <fstream>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/import/keras_import.h"
#include "engine/io/npy.h"
#include "engine/loss/loss.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "engine/reference/reference.h"
#include "engine/train/model.h"
#include "engine/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/golden/golden_util.h"
#include "tests/engine/golden/keras_training_golden.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

std::string CaseDir(const std::string& name) {
  return absl::StrCat(DRIFTSCOPE_SOURCE_DIR, "/tests/golden/keras_import/tfk2_",
                      name, "/");
}

std::string Golden(const std::string& file) {
  return absl::StrCat(DRIFTSCOPE_SOURCE_DIR, "/tests/golden/keras_import/",
                      file);
}

struct Keras2Case {
  std::string name;
  int weights;  // get_weights() arrays
  std::string file = "model.h5";
};

void PrintTo(const Keras2Case& c, std::ostream* os) { *os << c.name; }

std::vector<Keras2Case> Cases() {
  return {{"seq_lstm_dense", 5}, {"func_gru_rnn", 11},
          {"seq_bidir", 14},     {"seq_impl1", 8},
          {"uncompiled", 5},     {"legacy_adam", 5},
          {"legacy_sgd", 5},     {"keras_format", 14, "model.keras"},
          {"rmsprop", 5},        {"adamw", 5}};
}

class TfKeras2ImportTest : public ::testing::TestWithParam<Keras2Case> {
 protected:
  void SetUp() override {
    dir_ = CaseDir(GetParam().name);
    absl::StatusOr<ImportedModel> m = ImportKerasModel(dir_ + GetParam().file);
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = *std::move(m);
    x_ = golden::Load(dir_, "x");
    y_ = golden::Load(dir_, "y");
  }

  // The imported model with the file's weights, for `batch` samples.
  std::unique_ptr<Model<double>> LoadedModel(int batch) {
    absl::StatusOr<std::unique_ptr<Model<double>>> model =
        Model<double>::Create(model_.spec.model, batch);
    EXPECT_TRUE(model.ok()) << model.status();
    if (!model.ok()) return nullptr;
    const std::vector<ModelWeight>& mw = (*model)->weights();
    EXPECT_EQ(mw.size(), model_.init_weights.size());
    for (size_t j = 0; j < mw.size() && j < model_.init_weights.size(); ++j) {
      EXPECT_EQ(mw[j].size, model_.init_weights[j].size());
      for (int64_t i = 0; i < mw[j].size; ++i) {
        (*model)->params()[mw[j].offset + i] = model_.init_weights[j].at(i);
      }
    }
    return *std::move(model);
  }

  std::string dir_;
  ImportedModel model_;
  NdArray x_, y_;
};

TEST_P(TfKeras2ImportTest, WeightsAreReadBitForBit) {
  const std::vector<NdArray> want = golden::LoadSeries(dir_, "init_w");
  ASSERT_EQ(want.size(), static_cast<size_t>(GetParam().weights));
  ASSERT_EQ(model_.init_weights.size(), want.size());
  for (size_t j = 0; j < want.size(); ++j) {
    ASSERT_EQ(model_.init_weights[j].shape(), want[j].shape()) << j;
    ASSERT_EQ(model_.init_weights[j].dtype(), DType::kFloat64) << j;
    for (int64_t i = 0; i < want[j].size(); ++i) {
      ASSERT_EQ(model_.init_weights[j].at(i), want[j].at(i))
          << "weight " << j << " element " << i;
    }
  }
}

TEST_P(TfKeras2ImportTest, ForwardMatchesKeras2Float64) {
  const int n = static_cast<int>(x_.shape()[0]);
  std::unique_ptr<Model<double>> model = LoadedModel(n);
  ASSERT_NE(model, nullptr);
  const Context ctx(*Profile::Parse("ref64"));
  const std::vector<double> x = golden::Values<double>(x_);
  const double* out = model->Forward(ctx, x.data(), n);
  const NdArray want = golden::Load(dir_, "out0");
  ASSERT_EQ(want.size(), n * model->output_shape().per_sample());
  const golden::RelError e = golden::MaxRel(out, want);
  EXPECT_LE(e.max_rel, golden::kF64RelTol)
      << "at " << e.worst << ": " << e.actual << " vs Keras 2 " << e.ref;
}

// The gradients of the first training step's loss (the first batch of 32)
// from the engine and from the float64 reference, against Keras 2's
// GradientTape.
TEST_P(TfKeras2ImportTest, FirstStepGradientsMatchKeras2Float64) {
  const int batch = model_.spec.training.batch_size;
  ASSERT_EQ(batch, 32);
  std::unique_ptr<Model<double>> model = LoadedModel(batch);
  ASSERT_NE(model, nullptr);
  const Context ctx(*Profile::Parse("ref64"));
  const int64_t per_x = x_.size() / x_.shape()[0];
  const int64_t per_y = y_.size() / y_.shape()[0];
  const std::vector<double> xs = golden::Values<double>(x_);
  const std::vector<double> ys = golden::Values<double>(y_);
  const std::vector<double> xb(xs.begin(), xs.begin() + batch * per_x);
  const std::vector<double> yb(ys.begin(), ys.begin() + batch * per_y);
  const double* pred = model->Forward(ctx, xb.data(), batch);
  const int last = static_cast<int>(y_.shape().back());
  const int64_t rows = batch * per_y / last;
  std::vector<double> dy(static_cast<size_t>(batch * per_y));
  LossBackward(model_.spec.loss, pred, yb.data(), rows, last, dy.data());
  model->Backward(ctx, dy.data());

  const std::vector<NdArray> want = golden::LoadSeries(dir_, "grads0_w");
  const std::vector<ModelWeight>& mw = model->weights();
  ASSERT_EQ(want.size(), mw.size());
  for (size_t j = 0; j < want.size(); ++j) {
    const golden::RelError e =
        golden::MaxRel(model->grads() + mw[j].offset, want[j]);
    EXPECT_LE(e.max_rel, golden::kF64RelTol)
        << "engine gradient of " << mw[j].name << " at " << e.worst << ": "
        << e.actual << " vs Keras 2 " << e.ref;
  }

  const std::vector<LayerSpec>& layers = model_.spec.model.layers;
  std::vector<RefWeights> w(layers.size());
  for (size_t j = 0; j < mw.size(); ++j) {
    const NdArray& a = model_.init_weights[j];
    w[mw[j].layer].push_back(golden::Values<double>(a));
  }
  const ActivationShape in{true, model_.spec.model.timesteps,
                           model_.spec.model.features};
  const std::vector<RefLayerGrads> g =
      RefModelBackward(layers, in, w, xb, batch, dy);
  for (size_t j = 0; j < mw.size(); ++j) {
    size_t index = 0;
    for (size_t k = 0; k < j; ++k) index += mw[k].layer == mw[j].layer;
    ASSERT_LT(index, g[mw[j].layer].dweights.size());
    const golden::RelError e =
        golden::MaxRel(g[mw[j].layer].dweights[index].data(), want[j]);
    EXPECT_LE(e.max_rel, golden::kF64RelTol)
        << "reference gradient of " << mw[j].name;
  }
}

// `driftscope train --model FILE --x --y --profile ref64`: the import
// defaults (3 epochs of batch 32, no shuffle) train as Keras 2 trained the
// same file; every step's loss, the final weights and outputs.
TEST_P(TfKeras2ImportTest, TrainingMatchesKeras2Float64) {
  RunOptions options;
  options.x = x_;
  options.y = y_;
  options.init_weights = model_.init_weights;
  absl::StatusOr<RunResult> r =
      RunJob(model_.spec, *Profile::Parse("ref64"), options);
  ASSERT_TRUE(r.ok()) << r.status();
  const NdArray losses = golden::Load(dir_, "losses");
  ASSERT_EQ(r->losses.size(), losses.size());
  ASSERT_EQ(r->losses.size(), 6);
  const golden::RelError le = golden::MaxRel(
      golden::Values<double>(r->losses).data(), losses, /*floor=*/0);
  EXPECT_LE(le.max_rel, golden::kF64RelTol)
      << "loss of step " << le.worst << ": " << le.actual << " vs Keras 2 "
      << le.ref;
  const std::vector<NdArray> want = golden::LoadSeries(dir_, "final_w");
  ASSERT_EQ(r->final_weights.size(), want.size());
  for (size_t j = 0; j < want.size(); ++j) {
    const golden::RelError e = golden::MaxRel(
        golden::Values<double>(r->final_weights[j].array).data(), want[j]);
    EXPECT_LE(e.max_rel, golden::kF64RelTol)
        << "final weight " << j << " at " << e.worst << ": " << e.actual
        << " vs Keras 2 " << e.ref;
  }
  const golden::RelError e =
      golden::MaxRel(golden::Values<double>(r->outputs).data(),
                     golden::Load(dir_, "final_out"));
  EXPECT_LE(e.max_rel, golden::kF64RelTol)
      << "final outputs at " << e.worst << ": " << e.actual << " vs Keras 2 "
      << e.ref;
}

double Float32(double v) { return static_cast<float>(v); }

TEST(TfKeras2Import, SpecCarriesTheKeras2ConfigAndCompileSettings) {
  absl::StatusOr<ImportedModel> seq =
      ImportKerasModel(CaseDir("seq_lstm_dense") + "model.h5");
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_EQ(seq->spec.model.timesteps, 6);  // batch_input_shape
  EXPECT_EQ(seq->spec.model.features, 2);
  EXPECT_TRUE(seq->compiled);
  EXPECT_EQ(seq->spec.optimizer.kind, OptimizerKind::kAdam);  // Custom>Adam
  EXPECT_EQ(seq->spec.optimizer.learning_rate, 0.01);
  ASSERT_TRUE(seq->spec.optimizer.clipnorm.has_value());
  EXPECT_EQ(*seq->spec.optimizer.clipnorm, 1.0);
  EXPECT_EQ(seq->spec.loss, LossKind::kMse);

  absl::StatusOr<ImportedModel> fn =
      ImportKerasModel(CaseDir("func_gru_rnn") + "model.h5");
  ASSERT_TRUE(fn.ok()) << fn.status();
  const ModelSpec& f = fn->spec.model;
  ASSERT_EQ(f.layers.size(), 4u);
  EXPECT_EQ(f.layers[0].kind, LayerKind::kGru);
  EXPECT_TRUE(f.layers[0].reset_after);
  EXPECT_FALSE(f.layers[1].reset_after);
  EXPECT_EQ(f.layers[2].kind, LayerKind::kSimpleRnn);
  EXPECT_EQ(f.layers[2].activation, Activation::kRelu);
  EXPECT_EQ(fn->spec.optimizer.kind, OptimizerKind::kSgd);  // Custom>SGD
  EXPECT_EQ(fn->spec.optimizer.momentum, 0.9);
  EXPECT_FALSE(fn->spec.optimizer.nesterov);
  EXPECT_EQ(fn->spec.loss, LossKind::kMae);

  absl::StatusOr<ImportedModel> impl1 =
      ImportKerasModel(CaseDir("seq_impl1") + "model.h5");
  ASSERT_TRUE(impl1.ok()) << impl1.status();
  const ModelSpec& i = impl1->spec.model;
  // Keras 2 writes `implementation`; its hard_sigmoid is 0.2x + 0.5.
  EXPECT_EQ(i.layers[0].implementation, 1);
  EXPECT_EQ(i.layers[0].recurrent_activation, Activation::kHardSigmoidKeras2);
  EXPECT_EQ(i.layers[1].implementation, 1);
  EXPECT_TRUE(impl1->spec.optimizer.nesterov);
}

// OptimizerV2 (tf.keras before 2.11, tf.keras.optimizers.legacy) trains
// with float32 roundings of its hyper-parameters; the spec holds them, and
// TrainingMatchesKeras2Float64/legacy_* shows that this is what it computes.
TEST(TfKeras2Import, LegacyOptimizersCarryTheirFloat32HyperParameters) {
  absl::StatusOr<ImportedModel> adam =
      ImportKerasModel(CaseDir("legacy_adam") + "model.h5");
  ASSERT_TRUE(adam.ok()) << adam.status();
  EXPECT_EQ(adam->spec.optimizer.kind, OptimizerKind::kAdam);
  EXPECT_EQ(adam->spec.optimizer.learning_rate, Float32(0.01));
  EXPECT_EQ(adam->spec.optimizer.beta_1, Float32(0.9));
  EXPECT_EQ(adam->spec.optimizer.beta_2, Float32(0.999));
  EXPECT_EQ(adam->spec.optimizer.epsilon, 1e-7);  // cast directly
  absl::StatusOr<ImportedModel> sgd =
      ImportKerasModel(CaseDir("legacy_sgd") + "model.h5");
  ASSERT_TRUE(sgd.ok()) << sgd.status();
  EXPECT_EQ(sgd->spec.optimizer.kind, OptimizerKind::kSgd);
  EXPECT_EQ(sgd->spec.optimizer.learning_rate, Float32(0.05));
  EXPECT_TRUE(sgd->spec.optimizer.nesterov);
  // The new (2.11+) optimizers keep the Python float.
  absl::StatusOr<ImportedModel> fresh =
      ImportKerasModel(CaseDir("seq_bidir") + "model.h5");
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->spec.optimizer.learning_rate, 0.01);
  EXPECT_EQ(fresh->spec.optimizer.beta_1, 0.9);
}

// Keras 2 writes `implementation`, so a dropout LSTM saved with
// implementation=1 imports with its per-gate masks (a Keras 3 file loses it).
TEST(TfKeras2Import, DropoutRatesAndImplementationAreCarried) {
  absl::StatusOr<ImportedModel> m = ImportKerasModel(Golden("tfk2_dropout.h5"));
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelSpec& s = m->spec.model;
  ASSERT_EQ(s.layers.size(), 3u);
  EXPECT_EQ(s.layers[0].kind, LayerKind::kLstm);
  EXPECT_DOUBLE_EQ(s.layers[0].dropout, 0.2);
  EXPECT_EQ(s.layers[0].implementation, 1);
  EXPECT_TRUE(UsesGateMasks(s.layers[0]));
  EXPECT_EQ(s.layers[1].kind, LayerKind::kGru);
  EXPECT_DOUBLE_EQ(s.layers[1].recurrent_dropout, 0.25);
  EXPECT_TRUE(UsesGateMasks(s.layers[1]));
}

void ExpectRefused(const std::string& path, const std::string& what) {
  absl::StatusOr<ImportedModel> m = ImportKerasModel(path);
  ASSERT_FALSE(m.ok()) << path << " was imported";
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument)
      << m.status();
  EXPECT_THAT(std::string(m.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr(what));
  EXPECT_EQ(std::string(m.status().message()).find('\n'), std::string::npos);
}

// Files derived from a real Keras 2 file (make_tfkeras2_goldens.py).
TEST(TfKeras2Import, BadFilesAreRefusedNamingTheFileAndTheProblem) {
  ExpectRefused(Golden("tfk2_bad_shapes.h5"),
                "the weights do not fit the config: layer 'lstm' (LSTM) "
                "kernel is (2, 12) in the file, its config needs (2, 16)");
  ExpectRefused(Golden("tfk2_bad_missing_weight.h5"),
                "weight model_weights/dense/dense/bias:0 is missing");
  ExpectRefused(Golden("tfk2_weights_only.h5"),
                "no model_config attribute: the file holds weights only");
  ExpectRefused(Golden("tfk2_bad_time_major.h5"),
                "(LSTM): time_major=True is not supported");
  ExpectRefused(Golden("tfk2_bad_legacy_rmsprop.h5"),
                "training_config: optimizer (RMSprop): tf.keras' legacy "
                "RMSprop (OptimizerV2: epsilon added outside the square "
                "root) is not supported");
}

TEST(TfKeras2Import, TruncatedFilesAreRefused) {
  std::ifstream in(CaseDir("seq_lstm_dense") + "model.h5", std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  const std::string whole = bytes.str();
  ASSERT_GT(whole.size(), 10000u);
  for (double f : {0.1, 0.5, 0.9, 0.99}) {
    const std::string path =
        absl::StrCat(::testing::TempDir(), "/tfk2_truncated_",
                     static_cast<int>(f * 100), ".h5");
    std::ofstream(path, std::ios::binary)
        << whole.substr(0, static_cast<size_t>(whole.size() * f));
    ExpectRefused(path, "truncated or corrupt");
  }
}

INSTANTIATE_TEST_SUITE_P(TfKeras2_21, TfKeras2ImportTest,
                         ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace driftscope
